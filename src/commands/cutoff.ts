import { readFile } from 'node:fs/promises';
import { Args, Flags } from '@oclif/core';
import { cutoff, type CutoffResult } from '../core/enforcement/suspension.js';
import { NOTICE_TEMPLATE } from '../core/enforcement/notice.js';
import { registryFileStore } from '../core/registry/registry-edit.js';
import type { Cancelled } from '../core/publish/operation.js';
import { registryFlag, yesFlag } from '../ui/flags.js';
import { DifusionCommand } from '../ui/command.js';
import { confirmPlan, requireConsent } from '../ui/confirm.js';
import { operationPorts } from '../adapters/operation-ports.js';
import { planLines } from '../ui/suspension-view.js';
import { systemClock } from '../adapters/clock.js';

export default class Cutoff extends DifusionCommand {
  static override summary = 'Suspend a difusor: its site shows the mandated notice on every path; later publishes skip it.';
  static override description =
    'Writes status: suspended (with suspended_at and suspension_reason) into the registry, keeping its comments, ' +
    'then sends the notice (aviso) to the difusor as a release of its own, notices/<YYYYMMDD_HHMMSS>/ with ' +
    'index.html, aviso.json and MANIFEST.sha256, checked there and switched over `current` atomically. The vhost ' +
    'installed at onboarding answers every path with it (503, Cache-Control: no-store). On a terminal it shows ' +
    'what will change and asks; --yes answers (required without a terminal). Running it again re-sends the ' +
    'notice, e.g. to a difusor that was down the first time.\n\n' +
    'Exit codes: 0 notice live, 1 the notice did not reach the difusor (the registry still says suspended) or ' +
    'the operator said no, 2 refused (usage, registry, no terminal without --yes), 5 another run holds the lock.';
  static override examples = [
    '<%= config.bin %> <%= command.id %> canal-12 --reason "Alteró los resultados publicados"',
    '<%= config.bin %> <%= command.id %> canal-12 --reason "Publicó resultados antes de la hora oficial" --yes --json',
  ];
  static override enableJsonFlag = true;
  static override args = { id: Args.string({ description: 'difusor id', required: true }) };
  static override flags = {
    registry: registryFlag,
    reason: Flags.string({ description: 'why the institute suspends it (shown on the notice)', required: true, helpValue: 'TEXT' }),
    yes: yesFlag,
  };

  async run(): Promise<CutoffResult | Cancelled> {
    const { args, flags } = await this.parse(Cutoff);
    const registry = await this.requireRegistry(flags.registry);
    const clock = this.clockFor(registry, systemClock);
    let result: CutoffResult | Cancelled;
    try {
      requireConsent('cutoff', flags.yes);
      result = await cutoff(
        { registry, id: args.id, reason: flags.reason },
        {
          ...operationPorts(clock),
          registry: registryFileStore(registry.file),
          noticeTemplate: await readFile(NOTICE_TEMPLATE, 'utf8'),
          confirm: (plan) => confirmPlan(planLines(plan), { yes: flags.yes, log: (l) => this.say(l), quiet: this.jsonEnabled() }),
        },
      );
    } catch (error) {
      this.refuse(error);
    }
    if (!this.jsonEnabled()) {
      if ('cancelled' in result && result.cancelled) this.log('cancelled: nothing changed');
      else if (result.exitCode === 0) this.log(`${result.difusor}: the notice ${result.notice} is live; publishes skip it until \`difusion reinstate ${result.difusor}\``);
      else if (result.leftAlone) {
        this.logToStderr(
          `${result.difusor}: the registry says suspended (publishes skip it), but its notice is NOT in place: ${result.error}\n` +
            '  every later publish puts it up once that run is over (or run the same cutoff again then)',
        );
      }
      else {
        this.logToStderr(`${result.difusor}: the registry says suspended (publishes skip it), but the notice did not reach it: ${result.error}`);
        this.logToStderr(`  run the same cutoff again once it answers`);
      }
    }
    this.finish(result.exitCode);
    return result;
  }
}
