import type { DifusorSession } from '../difusor-port.js';
import type { LeaseClaim } from './lease.js';
import { printable, shownLine } from './helper-answer.js';

/**
 * A rollback's hold on the difusor itself (.lease/hold), where the other publication host sees it too: its cron's
 * `publish --latest` leaves the difusor on this cut. Set by rollback, and by this host's publish --latest following
 * its rollback hold when it moves a difusor back that the rollback could not reach: both under the lease, before the
 * switch (a run killed between the two leaves the difusor held, never unheld and back). Says why when it could not
 * be set (a restricted difusor whose installed helper predates protocol 5): the switch goes on, the outcome names it.
 */
export async function holdThere(session: DifusorSession, cut: string, claim: Pick<LeaseClaim, 'host' | 'run'>): Promise<string | undefined> {
  try {
    const out = await session.helper('hold', ['set', cut, claim.host, claim.run]);
    if (out.code !== 0) {
      // The difusor's words go into the outcome and the journal: escaped, the last two lines at most 200 characters each.
      const said = (out.stderr || out.stdout).trim().split('\n').filter(Boolean).slice(-2).map((l) => printable(l.slice(0, 200))).join(' | ');
      return `hold failed (exit ${out.code}): ${said || 'no message'}`;
    }
    if (!out.stdout.includes(`\nhold ${cut} ${claim.host} ${claim.run} `)) {
      const last = out.stdout.trim().split('\n').pop();
      return `the difusor answered: ${last ? shownLine(last) : '(nothing)'}`;
    }
    return undefined;
  } catch (error) {
    return printable(error instanceof Error ? error.message : String(error));
  }
}

/** A difusor moved back whose hold could not be recorded there: what the other host's cron may do, and what to do. */
export function holdNotRecorded(why: string): string {
  return `live, but the rollback's hold is not recorded on the difusor (${why}): the other host's publish --latest may put the newer cut back there; stop its cron until a cut is published by name`;
}
