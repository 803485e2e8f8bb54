import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Flags, type Interfaces } from '@oclif/core';
import { currentOperator, newRunId } from '../core/records/journal.js';
import { failureSignature, keepProbe, probeDifusores, type ProbeReport } from '../core/probe/probe.js';
import { readWentLive, verifyJournalCopies, wentLiveFor } from '../core/probe/went-live.js';
import { MergedJournalError } from '../core/records/merged-journal.js';
import { StateStore, writeAtomically, type CutManifestSource } from '../core/records/state.js';
import { cutLibrary, lastCutsDir } from '../core/publish/cut-library.js';
import { ProbeHistory } from '../core/records/probe-history.js';
import { foldRound, roundOf, type BoardSummary } from '../core/probe/board.js';
import { writeBoardDir } from '../core/probe/board-files.js';
import type { Difusor, Registry } from '../core/registry/types.js';
import { systemClock, type Clock } from '../adapters/clock.js';
import { createProbeHttp } from '../adapters/http.js';
import { journalFlag, onlyFlag, registryFlag } from '../ui/flags.js';
import { DifusionCommand } from '../ui/command.js';
import { chooseRenderer } from '../ui/render.js';
import { probeLines, probeTable } from '../ui/probe-view.js';
import { publicBoardFiles } from '../ui/board-html.js';
import { boardMetrics } from '../ui/board-metrics.js';

const SAMPLE_SIZE = 8;
const LOCK_WAIT_MS = 30_000;
const ROSTER_TEMPLATE = new URL('../../templates/roster.html', import.meta.url);

type ProbeFlags = Interfaces.InferredFlags<typeof Probe.flags>;

/** What every round of one probe command shares. */
interface Night {
  registry: Registry;
  targets: Difusor[];
  clock: Clock;
  renderer: ReturnType<typeof chooseRenderer>;
  state: StateStore;
  history: ProbeHistory<BoardSummary>;
  http: ReturnType<typeof createProbeHttp>;
  run: string;
  command: string;
  /** The other host's journal copies (--journal), verified at the start, read each round only where they grew. */
  journalCopies: string[];
  /** The last journaled round's failures, so a watch journals only news. */
  lastSignature?: string;
}

export default class Probe extends DifusionCommand {
  static override summary = "Fetch each difusor's public URL over HTTP(S): which cut it serves, its lag, and whether sample files are intact.";
  static override description =
    'Every request carries Cache-Control: no-cache and a cache-busting query, so a difusor is seen as its visitors ' +
    "see it, CDN and cache included. The cut is identified by the SHA-256 of the served MANIFEST.sha256 against the " +
    'manifests this host published; then the aggregates (root files, datos/*.{json,csv,html,txt,xml}) and 8 random ' +
    'files (every file with --full) are streamed and hashed. Lag is 0 while the newest live cut is served, else the ' +
    'seconds since a newer cut went live. A suspended difusor must show the notice on every path. Exit 6 when any ' +
    'difusor lags beyond --max-lag, differs, does not answer, has an invalid certificate, or does not show its ' +
    'notice; each failure is journaled. Trust a private CA with NODE_EXTRA_CA_CERTS=FILE. With --journal FILE (the other ' +
    "publication host's journal, copied here) a cut that host switched counts from its switch, not from when this host " +
    'first found it live; each copy is verified when the probe starts (an altered one is refused naming the file and ' +
    'line, exit 6), then each round reads only what it gained.';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --full --only ujed',
    '<%= config.bin %> <%= command.id %> --watch 15',
    '<%= config.bin %> <%= command.id %> --max-lag 60 --json',
    '<%= config.bin %> <%= command.id %> --watch 15 --journal /var/lib/difusion-alterno/journal.jsonl',
    '<%= config.bin %> <%= command.id %> --watch 60 --roster /srv/prep/sitio/difusores --metrics /var/lib/node_exporter/textfile/difusion.prom',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    registry: registryFlag,
    only: onlyFlag,
    full: Flags.boolean({ description: 'fetch and hash every file of the served cut, not a sample', default: false }),
    'max-lag': Flags.integer({ description: 'seconds a difusor may stay behind the newest live cut', default: 60, min: 0, helpValue: 'SECONDS' }),
    watch: Flags.integer({ description: 'probe again every SECONDS, redrawing the table (Ctrl-C to stop)', min: 1, helpValue: 'SECONDS' }),
    roster: Flags.string({ description: 'after each round, rewrite the public board in DIR (index.html, board.json, rounds.csv, rounds.jsonl, roster.json, logos/, data/<n>/)', helpValue: 'DIR' }),
    metrics: Flags.string({ description: "after each round, write the Prometheus textfile FILE (node_exporter's textfile collector)", helpValue: 'FILE' }),
    cuts: Flags.string({
      description: "the cuts directory (as given to publish --latest): a cut the other publication host published is known by this host's copy of it (default: where this host last published from)",
      helpValue: 'DIR',
    }),
    journal: journalFlag,
  };

  async run(): Promise<ProbeReport> {
    const { flags } = await this.parse(Probe);
    const night = await this.prepare(flags);
    try {
      if (flags.watch === undefined) {
        const report = await this.probeRound(night, flags);
        this.show(night, report, flags.watch);
        this.finish(report.exitCode);
        return report;
      }
      const report = await this.watchRounds(night, flags, flags.watch);
      // Under --json every round was printed as a line already: only the last round's verdict remains to give.
      if (this.jsonEnabled()) this.exit(report.exitCode);
      this.finish(report.exitCode);
      return report;
    } finally {
      await night.http.close();
    }
  }

  /** Registry, targets (suspended ones too: they must show the notice), clock, renderer, state, history, HTTP. */
  private async prepare(flags: ProbeFlags): Promise<Night> {
    const registry = await this.requireRegistry(flags.registry);
    const publication = registry.publication;
    const clock = this.clockFor(registry, systemClock);
    const run = newRunId(clock.now());
    const journalCopies = await this.verifiedCopies(publication.state_dir, flags.journal ?? []);
    return {
      registry,
      targets: this.lookAt(registry, flags.only),
      clock,
      renderer: chooseRenderer({ isTTY: Boolean(process.stdout.isTTY), json: this.jsonEnabled(), noColor: Boolean(process.env.NO_COLOR), ci: Boolean(process.env.CI) }),
      state: new StateStore(publication.state_dir, await this.cutsLibrary(publication.state_dir, flags.cuts)),
      history: new ProbeHistory(publication.state_dir, foldRound),
      http: createProbeHttp({ connectTimeoutMs: 10_000, headersTimeoutMs: 20_000, bodyTimeoutMs: 30_000, totalTimeoutMs: 300_000, connectionsPerOrigin: 4 }),
      run,
      command: `probe${flags.full ? ' --full' : ''} --max-lag ${flags['max-lag']}${flags.watch ? ` --watch ${flags.watch}` : ''}${journalCopies.map((f) => ` --journal ${f}`).join('')}`,
      journalCopies,
    };
  }

  /** Each copy verified once, before the first round; a watch then reads only what it gains (an rsync'd copy grows). */
  private async verifiedCopies(stateDir: string, files: string[]): Promise<string[]> {
    try {
      const copies = await verifyJournalCopies(stateDir, files);
      for (const copy of copies) if (copy.caveat) this.logToStderr(`note: ${copy.file}: ${copy.caveat}`);
      return copies.map((copy) => copy.file);
    } catch (error) {
      if (error instanceof MergedJournalError) this.error(error.message, { exit: error.exitCode });
      throw error;
    }
  }

  /** The standby of the alternate site learns the cuts the other host published from its own copies. */
  private async cutsLibrary(stateDir: string, cutsFlag: string | undefined): Promise<CutManifestSource | undefined> {
    const dir = cutsFlag ?? (await lastCutsDir(stateDir));
    return dir ? cutLibrary(dir, { hashCacheFile: path.join(stateDir, 'hash-cache') }) : undefined;
  }

  /** One round: probe, journal and keep the result, add it to the history, then the board and the metrics. */
  private async probeRound(night: Night, flags: ProbeFlags): Promise<ProbeReport> {
    const started = performance.now();
    const report = await this.probeEach(night, flags);
    const tookMs = performance.now() - started;
    await this.keepRound(night, report, flags.watch !== undefined);
    const { summary } = await night.history.append(roundOf(report, tookMs));
    if (flags.roster || flags.metrics) await this.writeBoard(night, summary, flags);
    return report;
  }

  private async probeEach(night: Night, flags: ProbeFlags): Promise<ProbeReport> {
    const { state, clock, targets } = night;
    // Only the journals' entries since the last round are read: the fold so far is kept in the state dir.
    const fold = await readWentLive(night.registry.publication.state_dir, night.journalCopies);
    const wentLive = new Map(targets.map((d) => [d.id, wentLiveFor(fold, d.id)]));
    return probeDifusores(
      targets,
      {
        maxLagSeconds: flags['max-lag'],
        full: flags.full,
        sampleSize: SAMPLE_SIZE,
        concurrency: night.registry.publication.concurrency,
        filesPerDifusor: 4,
        now: clock.now(),
        certificateNow: new Date(),
        token: `${night.run}-${Date.now().toString(36)}`,
      },
      {
        http: night.http,
        knowledge: {
          cutOfManifest: (digest, bytes) => state.cutWithManifest(digest, bytes),
          manifestHashes: (cut, digest) => state.manifestHashes(cut, digest),
          wentLive: (id) => wentLive.get(id) ?? new Map(),
          fileSizes: (cut) => state.sizesOf(cut),
        },
      },
    );
  }

  /** A watch journals a round only when its failures changed: an incident is news once, not every N seconds. */
  private async keepRound(night: Night, report: ProbeReport, watching: boolean): Promise<void> {
    const signature = failureSignature(report);
    const kept = await keepProbe(report, {
      state: night.state,
      journal: { run: night.run, operator: currentOperator(), command: night.command, clock: night.clock },
      journalThisRun: !watching || signature !== night.lastSignature,
      lockWaitMs: LOCK_WAIT_MS,
    });
    night.lastSignature = signature;
    if (kept.deferredBy) this.logToStderr(`note: the journal is locked by ${kept.deferredBy}; this probe's incidents will be journaled by the next one`);
  }

  /** The public board in --roster DIR and the Prometheus textfile, from the history's summary (never the whole log). */
  private async writeBoard(night: Night, summary: BoardSummary, flags: ProbeFlags): Promise<void> {
    let made;
    try {
      made = await publicBoardFiles({
        registry: night.registry,
        summary,
        at: night.clock.now(),
        maxLagSeconds: flags['max-lag'],
        rosterTemplate: await readFile(ROSTER_TEMPLATE, 'utf8'),
        readLogo: (file) => readFile(file),
      });
    } catch (error) {
      this.refuse(error);
    }
    if (flags.roster) await writeBoardDir(path.resolve(flags.roster), made.files, night.history);
    if (flags.metrics) await writeAtomically(path.resolve(flags.metrics), boardMetrics(made.board));
  }

  private show(night: Night, report: ProbeReport, watch: number | undefined): void {
    const tz = night.registry.publication.timezone;
    if (night.renderer === 'silent') {
      if (watch !== undefined) this.log(JSON.stringify(report));
    } else if (night.renderer === 'live') {
      if (watch !== undefined) this.redrawScreen(probeTable(report, tz));
      else this.log(probeTable(report, tz));
    } else {
      for (const line of probeLines(report, tz)) this.log(line);
    }
  }

  /** Round after round every `seconds` until SIGINT or SIGTERM; the last round's report. */
  private async watchRounds(night: Night, flags: ProbeFlags, seconds: number): Promise<ProbeReport> {
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
    let report = await this.probeRound(night, flags);
    this.show(night, report, seconds);
    while (!stopped) {
      await new Promise<void>((resolve) => {
        pause = { timer: setTimeout(resolve, seconds * 1000), resolve };
      });
      if (stopped) break;
      report = await this.probeRound(night, flags);
      this.show(night, report, seconds);
    }
    return report;
  }
}
