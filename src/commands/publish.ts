import { readFile } from 'node:fs/promises';
import { Args, Flags } from '@oclif/core';
import { runPublish, type PublishRunResult } from '../core/publish/publish-run.js';
import { openJournal, newRunId } from '../core/records/journal.js';
import { onlyFlag, registryFlag } from '../ui/flags.js';
import { DifusionCommand } from '../ui/command.js';
import { chooseRenderer, formatBytes } from '../ui/render.js';
import { progressTracker, renderPublishSummary, viewFor } from '../ui/publish-view.js';
import { describeStateWriteFailure, isStateWriteFailure } from '../ui/state-failure.js';
import { systemClock } from '../adapters/clock.js';

export default class Publish extends DifusionCommand {
  static override summary = 'Publish a cut to every active difusor: staged, verified, switched together.';
  static override description =
    'Sends the cut into each difusor\'s staging (unchanged files hard-linked from its live release), verifies ' +
    'every file sent with sha256sum on the difusor and that the release holds exactly the manifest, then ' +
    'switches all the ready difusores together by renaming a new symlink over `current`. A difusor that fails ' +
    'keeps its previous cut and is named in the summary. A slow one holds the others back at most ' +
    'publication.switch_deadline_s (default 20) after the first is ready; it then switches on its own as soon as ' +
    'it is verified, and the summary says how late.\n\n' +
    'Exit codes: 0 all live (or nothing to do), 1 failed everywhere, 2 refused (usage, registry, cut), ' +
    '3 partial, 4 outside the publication window, 5 another run holds the lock.';
  static override examples = [
    '<%= config.bin %> <%= command.id %> /srv/prep/cortes/20220605_2015_PREP_DGO',
    '<%= config.bin %> <%= command.id %> --latest /srv/prep/cortes',
    '<%= config.bin %> <%= command.id %> --latest /srv/prep/cortes --dry-run',
    '<%= config.bin %> <%= command.id %> --latest /srv/prep/cortes --simulacro --only ujed',
  ];
  static override enableJsonFlag = true;
  static override args = {
    cut: Args.string({ description: 'the cut directory (YYYYMMDD_HHMM[_SUFFIX]); with --latest, the directory of cuts' }),
  };
  static override flags = {
    registry: registryFlag,
    only: onlyFlag,
    latest: Flags.string({ description: 'publish the newest ready cut in DIR (cron mode)', helpValue: 'DIR' }),
    'dry-run': Flags.boolean({ description: 'connect and plan, change nothing on any difusor' }),
    simulacro: Flags.boolean({ description: 'outside the window: publish during a declared simulacro' }),
  };

  async run(): Promise<PublishRunResult> {
    const { args, flags } = await this.parse(Publish);
    const cutArg = flags.latest ?? args.cut;
    if (!cutArg || (flags.latest && args.cut)) {
      this.error('give either a cut directory or --latest DIR', { exit: 2, suggestions: ['difusion publish --help'] });
    }
    const registry = await this.requireRegistry(flags.registry);
    const tz = registry.publication.timezone;
    const clock = this.clockFor(registry, systemClock);
    const kind = chooseRenderer({
      isTTY: Boolean(process.stdout.isTTY),
      json: this.jsonEnabled(),
      noColor: 'NO_COLOR' in process.env,
      ci: process.env.CI === 'true',
    });
    const view = viewFor(kind, (line) => this.log(line), tz, () => clock.now());
    const tracker = progressTracker(view.observer);
    let startedCut: string | undefined;

    let result: PublishRunResult;
    try {
      result = await runPublish(
        { registry, cutArg, latest: Boolean(flags.latest), only: flags.only ?? [], dryRun: flags['dry-run'], simulacro: flags.simulacro },
        {
          clock,
          // ssh2 and execa load only once there is something to send: cron's --latest with nothing new never does.
          connect: async (reg, targets) => (await import('../adapters/difusor.js')).createConnector(reg, targets),
          // Only when a cutoff's notice is known to be missing: then the notice goes up again alongside the cut.
          restoreNotices: async (reg, ids, journal, lease) => {
            const [{ restoreNotices }, { createConnector }, { NOTICE_TEMPLATE }] = await Promise.all([
              import('../core/enforcement/suspension.js'),
              import('../adapters/difusor.js'),
              import('../core/enforcement/notice.js'),
            ]);
            const noticeTemplate = await readFile(NOTICE_TEMPLATE, 'utf8');
            return restoreNotices(reg, ids, {
              connect: (r, targets) => createConnector(r, targets, { rsyncAlongside: false }),
              journal,
              noticeTemplate,
              clock,
              lease,
            });
          },
          openJournal,
          newRunId: () => newRunId(),
          observer: tracker.observer,
          onStart: (info) => {
            startedCut = info.cut;
            if (kind !== 'silent') {
              const mode = info.mode === 'window' ? '' : ` (${info.mode})`;
              this.log(`${info.cut}${mode}: ${info.files} files, ${formatBytes(info.bytes)} → ${info.targets.length} difusores`);
              if (info.wouldRefuse) this.log(`note: a real run would be refused now: ${info.wouldRefuse}`);
              if (info.held) {
                const who = info.held.difusores ? `${info.held.difusores.join(', ')} kept` : '--latest stays';
                this.log(`note: rollback hold: ${who} on ${info.held.cut} (rolled back at ${info.held.at}); publish a cut by name to move forward`);
              }
            }
            view.start(info.targets);
          },
        },
      );
    } catch (error) {
      await view.finish();
      if (isStateWriteFailure(error)) {
        const { message, suggestions } = await describeStateWriteFailure(error, registry.publication.state_dir, tracker.progress(startedCut));
        this.error(message, { exit: 1, suggestions });
      }
      this.refuse(error);
    }
    await view.finish();
    if (!this.jsonEnabled()) this.log(`\n${renderPublishSummary(result, registry.publication.switch_deadline_s)}`);
    if (!this.jsonEnabled() && result.holdLifted) this.log(`the rollback hold on ${result.held?.cut} is lifted: publish --latest follows the newest cut again`);
    this.finish(result.exitCode);
    return result;
  }
}
