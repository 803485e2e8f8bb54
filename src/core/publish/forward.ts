import { parseCutId } from '../shared/cut-id.js';

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
