import { Flags } from '@oclif/core';
import { currentOperator, newRunId, readJournal } from '../core/records/journal.js';
import { failureSignature, keepProbe, probeDifusores, wentLiveTimes, type ProbeReport } from '../core/probe/probe.js';
import { StateStore } from '../core/records/state.js';
import { systemClock, type Clock } from '../adapters/clock.js';
import { createProbeHttp } from '../adapters/http.js';
import { onlyFlag, registryFlag } from '../ui/flags.js';
import { DifusionCommand } from '../ui/command.js';
import { chooseRenderer } from '../ui/render.js';
import { probeLines, probeTable } from '../ui/probe-view.js';

const SAMPLE_SIZE = 8;
const LOCK_WAIT_MS = 30_000;

export default class Probe extends DifusionCommand {
  static override summary = "Fetch each difusor's public URL over HTTP(S): which cut it serves, its lag, and whether sample files are intact.";
  static override description =
    'Every request carries Cache-Control: no-cache and a cache-busting query, so a difusor is seen as its visitors ' +
    "see it, CDN and cache included. The cut is identified by the SHA-256 of the served MANIFEST.sha256 against the " +
    'manifests this host published; then the aggregates (root files, datos/*.{json,csv,html,txt,xml}) and 8 random ' +
    'files (every file with --full) are streamed and hashed. Lag is 0 while the newest live cut is served, else the ' +
    'seconds since a newer cut went live. A suspended difusor must show the notice on every path. Exit 6 when any ' +
    'difusor lags beyond --max-lag, differs, does not answer, has an invalid certificate, or does not show its ' +
    'notice; each failure is journaled. Trust a private CA with NODE_EXTRA_CA_CERTS=FILE.';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --full --only ujed',
    '<%= config.bin %> <%= command.id %> --watch 15',
    '<%= config.bin %> <%= command.id %> --max-lag 60 --json',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    registry: registryFlag,
    only: onlyFlag,
    full: Flags.boolean({ description: 'fetch and hash every file of the served cut, not a sample', default: false }),
    'max-lag': Flags.integer({ description: 'seconds a difusor may stay behind the newest live cut', default: 60, min: 0, helpValue: 'SECONDS' }),
    watch: Flags.integer({ description: 'probe again every SECONDS, redrawing the table (Ctrl-C to stop)', min: 1, helpValue: 'SECONDS' }),
  };

  async run(): Promise<ProbeReport> {
    const { flags } = await this.parse(Probe);
    const registry = await this.requireRegistry(flags.registry);
    const publication = registry.publication;
    // Suspended difusores are probed too: they must be showing the notice.
    const targets = this.lookAt(registry, flags.only);
    let clock: Clock;
    try {
      clock = systemClock(process.env, { timezone: publication.timezone });
    } catch (error) {
      this.error(error instanceof Error ? error.message : String(error), { exit: 2 });
    }
    if (clock.fromEnv && !this.jsonEnabled()) this.logToStderr(`note: the clock is set by ${clock.setting}`);

    const renderer = chooseRenderer({
      isTTY: Boolean(process.stdout.isTTY),
      json: this.jsonEnabled(),
      noColor: Boolean(process.env.NO_COLOR),
      ci: Boolean(process.env.CI),
    });
    const state = new StateStore(publication.state_dir);
    const http = createProbeHttp({ connectTimeoutMs: 10_000, headersTimeoutMs: 20_000, bodyTimeoutMs: 30_000, totalTimeoutMs: 300_000, connectionsPerOrigin: 4 });
    const run = newRunId(clock.now());
    const command = `probe${flags.full ? ' --full' : ''} --max-lag ${flags['max-lag']}${flags.watch ? ` --watch ${flags.watch}` : ''}`;
    let previous: string | undefined;

    const round = async (): Promise<ProbeReport> => {
      const journal = await readJournal(publication.state_dir);
      const wentLive = new Map(targets.map((d) => [d.id, wentLiveTimes(journal, d.id)]));
      const report = await probeDifusores(
        targets,
        {
          maxLagSeconds: flags['max-lag'],
          full: flags.full,
          sampleSize: SAMPLE_SIZE,
          concurrency: publication.concurrency,
          filesPerDifusor: 4,
          now: clock.now(),
          certificateNow: new Date(),
          token: `${run}-${Date.now().toString(36)}`,
        },
        {
          http,
          knowledge: {
            cutOfManifest: (digest, bytes) => state.cutWithManifest(digest, bytes),
            manifestHashes: (cut, digest) => state.manifestHashes(cut, digest),
            wentLive: (id) => wentLive.get(id) ?? new Map(),
            fileSizes: (cut) => state.sizesOf(cut),
          },
        },
      );
      // A watch journals a round only when its failures changed: an incident is news once, not every N seconds.
      const signature = failureSignature(report);
      const kept = await keepProbe(report, {
        state,
        journal: { run, operator: currentOperator(), command, clock },
        journalThisRun: flags.watch === undefined || signature !== previous,
        lockWaitMs: LOCK_WAIT_MS,
      });
      previous = signature;
      if (kept.deferredBy) this.logToStderr(`note: the journal is locked by ${kept.deferredBy}; this probe's incidents will be journaled by the next one`);
      return report;
    };

    const show = (report: ProbeReport): void => {
      if (renderer === 'silent') {
        if (flags.watch !== undefined) this.log(JSON.stringify(report));
      } else if (renderer === 'live') {
        this.log(`${flags.watch !== undefined ? '\x1b[2J\x1b[H' : ''}${probeTable(report, publication.timezone)}`);
      } else {
        for (const line of probeLines(report, publication.timezone)) this.log(line);
      }
    };

    try {
      if (flags.watch === undefined) {
        const report = await round();
        show(report);
        this.finish(report.exitCode);
        return report;
      }
      let stopped = false;
      let pause: { timer: NodeJS.Timeout; resolve: () => void } | undefined;
      const stop = (): void => {
        stopped = true;
        if (pause) {
          clearTimeout(pause.timer);
          pause.resolve();
        }
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      let report = await round();
      show(report);
      while (!stopped) {
        await new Promise<void>((resolve) => {
          pause = { timer: setTimeout(resolve, (flags.watch as number) * 1000), resolve };
        });
        if (stopped) break;
        report = await round();
        show(report);
      }
      // Under --json every round was printed as a line already: only the last round's verdict remains to give.
      if (this.jsonEnabled()) this.exit(report.exitCode);
      this.finish(report.exitCode);
      return report;
    } finally {
      await http.close();
    }
  }
}
