import { compareCutIds, parseCutId } from '../shared/cut-id.js';
import type { DifusorHold } from './plan.js';

/**
 * Never backwards by accident: a publish never switches a difusor to a cut older (by the cut's time in its id)
 * than the one it serves; only rollback moves a difusor back. A cut of the same time under another suffix is
 * not older: it is the institute's correction of that cut.
 */
export function newerCutLive(cut: string, live: string | undefined): string | undefined {
  if (!live || live === cut) return undefined;
  const sending = parseCutId(cut);
  const serving = parseCutId(live);
  if (!sending || !serving) return undefined;
  return serving.wall > sending.wall ? `a newer cut is live: ${live} (this run's cut is ${cut}; only difusion rollback moves a difusor back)` : undefined;
}

/** A difusor's hold time (the difusor's epoch seconds) as the operator reads it. */
function isoOf(epochS: number): string {
  return new Date(epochS * 1000).toISOString().replace('.000Z', 'Z');
}

/**
 * A rollback's hold on the difusor (whichever host rolled back): `publish --latest` does not put a newer cut back
 * over it; a publish by name (the operator moving forward) lifts it. Undefined when the hold does not stop this cut.
 */
export function heldByRollback(cut: string, live: string | undefined, hold: DifusorHold | undefined): string | undefined {
  if (!hold || live === cut || compareCutIds(hold.cut, cut) >= 0) return undefined;
  return `held on ${hold.cut} by a rollback of ${hold.host} since ${isoOf(hold.since)}: publish ${cut} by name to lift it`;
}

/**
 * This host's cron following its own rollback hold moves a difusor back only while that difusor is still held: one
 * whose hold on the cut a publish by name lifted (this host's or the other's) moved forward on purpose.
 */
export function holdLiftedThere(cut: string, lifted: DifusorHold | undefined): string | undefined {
  if (!lifted || lifted.cut !== cut) return undefined;
  return `the rollback hold on ${cut} was lifted here by a publish by name of ${lifted.host} at ${isoOf(lifted.since)}; publish a cut by name on this host to lift its own hold too`;
}
