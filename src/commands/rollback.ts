import { Flags } from '@oclif/core';
import { rollback, type RollbackResult } from '../core/enforcement/rollback.js';
import type { Cancelled } from '../core/publish/operation.js';
import { onlyFlag, registryFlag, yesFlag } from '../ui/flags.js';
import { DifusionCommand } from '../ui/command.js';
import { confirmPlan, requireConsent } from '../ui/confirm.js';
import { operationPorts } from '../adapters/operation-ports.js';
import { rollbackPlanLines } from '../ui/suspension-view.js';
import { renderTable } from '../ui/render.js';
import { describeStateWriteFailure, isStateWriteFailure } from '../ui/state-failure.js';
import { systemClock } from '../adapters/clock.js';

export default class Rollback extends DifusionCommand {
  static override summary = 'Point difusores back to an earlier published release (default: the one before the live one).';
  static override description =
    'Asks every targeted active difusor what it serves and holds, then switches `current` back to CUT (default: ' +
    'the newest release older than the newest live cut) on each one that holds it, after checking its copy ' +
    'against the manifest this host published. Difusores lacking the release are named and keep what they ' +
    'serve; suspended ones keep their notice. Afterwards `publish --latest` stays on CUT (a rollback hold in ' +
    'the state directory, and on each difusor for the other publication host) until a cut is published by name. ' +
    'On a terminal it shows the plan and asks; --yes ' +
    'answers (required without a terminal).\n\n' +
    'Exit codes: 0 every targeted difusor on CUT, 1 none could go back (or the operator said no), 2 refused ' +
    '(usage, registry, no terminal without --yes, nothing to go back to, a --to this host never published or newer than the live cut), 3 partial, 5 another run holds the lock.';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --to 20220605_2015_PREP_DGO --yes',
    '<%= config.bin %> <%= command.id %> --only ujed --yes --json',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    registry: registryFlag,
    only: onlyFlag,
    to: Flags.string({ description: 'the cut to go back to (default: the one before the live one)', helpValue: 'CUT' }),
    yes: yesFlag,
  };

  async run(): Promise<RollbackResult | Cancelled> {
    const { flags } = await this.parse(Rollback);
    const registry = await this.requireRegistry(flags.registry);
    const clock = this.clockFor(registry, systemClock);
    let result: RollbackResult | Cancelled;
    try {
      requireConsent('rollback', flags.yes);
      result = await rollback(
        { registry, to: flags.to, only: flags.only ?? [] },
        {
          ...operationPorts(clock),
          confirm: (plan) => confirmPlan(rollbackPlanLines(plan), { yes: flags.yes, log: (l) => this.say(l), quiet: this.jsonEnabled() }),
        },
      );
    } catch (error) {
      if (isStateWriteFailure(error)) {
        const { message, suggestions } = await describeStateWriteFailure(error, registry.publication.state_dir);
        this.error(message, { exit: 1, suggestions });
      }
      this.refuse(error);
    }
    if (!this.jsonEnabled()) {
      if ('cancelled' in result && result.cancelled) this.log('cancelled: nothing changed');
      else {
        this.log(renderTable(['difusor', 'result', 'was', 'error'], result.outcomes.map((o) => [o.id, o.result === 'live' ? `live ${result.to}` : 'failed', o.from ?? '-', o.error ?? ''])));
        const lacking = result.outcomes.filter((o) => o.result === 'failed').map((o) => o.id);
        if (lacking.length > 0) this.logToStderr(`not rolled back: ${lacking.join(', ')} (they keep what they served)`);
        if (result.hold) {
          const who = result.hold.difusores ? `keeps ${result.hold.difusores.join(', ')}` : 'stays';
          this.log(`publish --latest now ${who} on ${result.to}; publish a cut by name to move forward`);
        }
      }
    }
    this.finish(result.exitCode);
    return result;
  }
}
