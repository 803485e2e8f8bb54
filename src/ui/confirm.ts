import { createInterface } from 'node:readline/promises';
import { RunRefusal } from '../core/publish/publish-run.js';

/**
 * cutoff, reinstate and rollback change what the public sees outside the normal flow: on a terminal
 * they show the plan and ask; --yes answers for scripts; without a terminal and without --yes they
 * refuse (exit 2) before connecting to anything. The terminal is an object so command tests can
 * stand in for a person.
 */
export interface Terminal {
  interactive(): boolean;
  ask(question: string): Promise<string>;
}

export const terminal: Terminal = {
  interactive: () => Boolean(process.stdin.isTTY && process.stdout.isTTY),
  async ask(question) {
    const rl = createInterface({ input: process.stdin, output: process.stdout });
    try {
      return await rl.question(question);
    } finally {
      rl.close();
    }
  },
};

/** Refuses, before anything is contacted, a run that nobody can confirm. */
export function requireConsent(command: string, yes: boolean): void {
  if (yes || terminal.interactive()) return;
  throw new RunRefusal(`${command} changes what the public sees and there is no terminal to confirm it on`, 2, [
    `run it on a terminal to review the plan, or add --yes to confirm in advance`,
  ]);
}

/** Shows the plan; true when --yes was given or the operator answers yes. */
export async function confirmPlan(lines: string[], opts: { yes: boolean; log(line: string): void; quiet: boolean }): Promise<boolean> {
  // Nobody is asked to confirm a plan they were not shown, --json or not.
  if (!opts.quiet || !opts.yes) for (const line of lines) opts.log(line);
  if (opts.yes) return true;
  const answer = await terminal.ask('Proceed? [y/N] ');
  return /^\s*(y|yes|s|si|sí)\s*$/i.test(answer);
}
