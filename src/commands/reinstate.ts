import { Args } from '@oclif/core';
import { reinstate, type ReinstateResult } from '../core/enforcement/suspension.js';
import { registryFileStore } from '../core/registry/registry-edit.js';
import type { Cancelled } from '../core/publish/operation.js';
import { registryFlag, yesFlag } from '../ui/flags.js';
import { DifusionCommand } from '../ui/command.js';
import { confirmPlan, requireConsent } from '../ui/confirm.js';
import { operationPorts } from '../adapters/operation-ports.js';
import { planLines } from '../ui/suspension-view.js';
import { systemClock } from '../adapters/clock.js';

export default class Reinstate extends DifusionCommand {
  static override summary = 'Lift a suspension: deliver the newest published cut and switch it in over the notice.';
  static override description =
    'Delivers the newest cut this host has published to the difusor through the normal pipeline (staged, ' +
    'verified, switched atomically); its switch is the only one the helper lets replace a notice. Once the ' +
    'difusor serves the cut, the registry says status: active again (suspended_at and suspension_reason are ' +
    'removed, comments kept) and later publishes include it. The notice release is pruned afterwards. On a ' +
    'terminal it shows what will change and asks; --yes answers (required without a terminal).\n\n' +
    'Exit codes: 0 serving the cut, 1 the delivery failed (still suspended; run it again) or the operator said ' +
    'no, 2 refused (usage, registry, not suspended, nothing published yet), 5 another run holds the lock.';
  static override examples = ['<%= config.bin %> <%= command.id %> canal-12', '<%= config.bin %> <%= command.id %> canal-12 --yes --json'];
  static override enableJsonFlag = true;
  static override args = { id: Args.string({ description: 'difusor id', required: true }) };
  static override flags = { registry: registryFlag, yes: yesFlag };

  async run(): Promise<ReinstateResult | Cancelled> {
    const { args, flags } = await this.parse(Reinstate);
    const registry = await this.requireRegistry(flags.registry);
    const clock = this.clockFor(registry, systemClock);
    let result: ReinstateResult | Cancelled;
    try {
      requireConsent('reinstate', flags.yes);
      result = await reinstate(
        { registry, id: args.id },
        {
          ...operationPorts(clock),
          registry: registryFileStore(registry.file),
          confirm: (plan) => confirmPlan(planLines(plan), { yes: flags.yes, log: (l) => this.say(l), quiet: this.jsonEnabled() }),
        },
      );
    } catch (error) {
      this.refuse(error);
    }
    if (!this.jsonEnabled()) {
      if ('cancelled' in result && result.cancelled) this.log('cancelled: nothing changed');
      else if (result.exitCode === 0) this.log(`${result.difusor}: serves ${result.cut} again and is active; its notice release was pruned`);
      else this.logToStderr(`${result.difusor}: not reinstated: ${result.error}\n  it stays suspended; run the same reinstate again once the cause is fixed`);
    }
    this.finish(result.exitCode);
    return result;
  }
}
