/**
 * `npm run bench`: difusion's publish against a plain rsync and a careful rsync script, side by side
 * in one run on the same lab of real sshd difusores. The machine is shared and has 2 cores, so
 * absolute seconds are noise: read the ratios, which are taken within the same run.
 *
 *   BENCH_DIFUSORES=8     how many difusores (sshd on 127.0.0.x)
 *   BENCH_SCALE=small     ~300 casillas instead of 2,545 (a quick check that everything runs)
 *   BENCH_REPEATS=2       repeats of the timed step, method order rotated; medians reported
 *   DIFUSION_LAB_KEEP=1   leave the lab's files behind for a post-mortem
 *
 * A publish runs in a child process of its own (this file with --runner), so its peak RSS is its own; so does
 * each plain rsync step (--plain). Both run as plain JavaScript against dist/ (`npm run build`, which `npm run
 * bench` does first), as the CLI runs: this file is stripped of its types once per bench (leanRunner), so neither
 * carries ts-node's compiler, whose ~190 MB made every fork of rsync or ssh several times dearer.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { PublishRunResult } from '../src/core/publish/publish-run.js';
import type { DifusorConnector, DifusorSession, LinkTimeouts } from '../src/adapters/difusor.js';
import type { Lab, LabDifusor } from '../test/integration/lab/sshd.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const ROOT = path.resolve(HERE, '..');
const SELF = fileURLToPath(import.meta.url);

const CUT_A = '20220605_2100_PREP_DGO';
const CUT_B = '20220605_2115_PREP_DGO';
// Inside the lab registry's window (2022-06-05T20:00 to 2022-06-06T20:00, America/Mexico_City) and after both cuts.
const NOW = '2022-06-05T21:30:00';

const TARGETS = { publishOverPlain: 1.3, switchSpreadMs: 1000, noopOverPublish: 0.1 };

// ---------------------------------------------------------------------------------------------
// Shared by both sides

interface Call {
  id: string;
  what: string;
  start: number;
  end: number;
  /**
   * Only in a profile run: CPU counters (ms) at the call's start and end, of this host's processes (node and the
   * rsync and ssh it ran), of node alone, and of the difusores' side (every lab sshd and all it ran).
   */
  cpu?: { client0: number; client1: number; server0: number; server1: number; node0: number; node1: number };
}

interface PhaseEvent {
  t: number;
  id: string;
  phase: string;
}

interface RunnerJob {
  registry: string;
  cutDir: string;
  /** The lab's sshd pids: with them (and concurrency 1) every remote step is charged its CPU on both sides. */
  labPids?: number[];
  /** Connector options: compression, timeouts. */
  link?: LinkTimeouts;
}

interface RunnerReport {
  ms: number;
  /** Peak RSS once the modules are loaded, before the publish starts (kB). */
  idleKb: number;
  /** VmHWM at the end of the run (kB). */
  peakKb: number;
  /** CPU of the node process itself during runPublish (ms). */
  cpuMs: number;
  /** CPU of the node process and of the rsync and ssh it ran, during runPublish (ms). */
  clientCpuMs: number;
  /** Largest V8 heap in use, sampled every 20 ms (kB). */
  heapPeakKb: number;
  /** CPU of the whole machine during runPublish (ms, every process, other users' included). */
  machineCpuMs: number;
  marks: Record<string, number>;
  manifestFiles: number;
  events: PhaseEvent[];
  calls: Call[];
  result: PublishRunResult;
}

const RESULT_PREFIX = 'BENCH-RESULT ';

/** CPU of a process (ms), with that of its children that have ended and been waited for. */
function procCpuMs(pid: number | 'self'): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name: state ppid ... utime(14) stime(15) cutime(16) cstime(17).
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
    return ((f[11] ?? 0) + (f[12] ?? 0) + (f[13] ?? 0) + (f[14] ?? 0)) * 10;
  } catch {
    return 0;
  }
}

/** CPU of process trees (ms): live processes count their own and their reaped children's, so nothing counts twice. */
function treeCpuMs(roots: number[], descendants: (pid: number) => number[]): number {
  let total = 0;
  for (const root of roots) for (const pid of [root, ...descendants(root)]) total += procCpuMs(pid);
  return total;
}

function vmHwmKb(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) : process.resourceUsage().maxRSS;
}

/** Busy CPU of the whole machine since boot, in ms (from /proc/stat, USER_HZ = 100). */
function machineCpuMs(): number {
  const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] as string).trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
  return (user + nice + system + irq + softirq + steal) * 10;
}

// ---------------------------------------------------------------------------------------------
// The runner: one publish, in its own process

/** When the last difusor went live (its `current` switched), in ms from the run's start: what visitors see. */
function liveEverywhereMs(x: Pick<RunnerReport, 'events' | 'result'>): number {
  // A run where some difusor did not go live has no such moment.
  if (x.result.outcomes.some((o) => o.result !== 'live')) return NaN;
  return Math.max(...x.events.filter((e) => e.phase === 'live').map((e) => e.t));
}

/** Times every remote step without touching src/: the connector is a port, so it can be wrapped. */
function timedConnector(
  inner: DifusorConnector,
  calls: Call[],
  clock: () => number,
  cpu?: { client(): number; server(): number; node(): number },
): DifusorConnector {
  const timed = async <T>(id: string, what: string, fn: () => Promise<T>): Promise<T> => {
    const start = clock();
    const client0 = cpu?.client() ?? 0;
    const server0 = cpu?.server() ?? 0;
    const node0 = cpu?.node() ?? 0;
    try {
      return await fn();
    } finally {
      const call: Call = { id, what, start, end: clock() };
      if (cpu) call.cpu = { client0, client1: cpu.client(), server0, server1: cpu.server(), node0, node1: cpu.node() };
      calls.push(call);
    }
  };
  return {
    open: async (d, opts) => {
      const session = await timed(d.id, 'open', () => inner.open(d, opts));
      const wrapped: DifusorSession = {
        helper: (verb, args, opts) => timed(d.id, verb, () => session.helper(verb, args, opts)),
        transfer: (sourceDir, cut, files, onProgress, opts) =>
          timed(d.id, 'transfer', () => session.transfer(sourceDir, cut, files, onProgress, opts)),
        close: () => session.close(),
      };
      return wrapped;
    },
    dispose: () => inner.dispose(),
  };
}

async function runner(job: RunnerJob): Promise<void> {
  const { runPublish } = await import('../src/core/publish/publish-run.js');
  const { openJournal, newRunId } = await import('../src/core/records/journal.js');
  const { createConnector } = await import('../src/adapters/difusor.js');
  const { systemClock } = await import('../src/adapters/clock.js');
  const { loadRegistry, formatProblem } = await import('../src/core/registry/registry.js');
  const { descendants } = await import('../test/integration/lab/procs.js');

  const loaded = await loadRegistry(job.registry);
  if (!loaded.ok) throw new Error(loaded.problems.map(formatProblem).join('\n'));
  const registry = loaded.registry;
  const clock = systemClock({ DIFUSION_NOW: NOW }, { timezone: registry.publication.timezone });

  const idleKb = vmHwmKb();
  const t0 = performance.now();
  const since = (): number => performance.now() - t0;
  const marks: Record<string, number> = {};
  const events: PhaseEvent[] = [];
  const calls: Call[] = [];
  let manifestFiles = 0;
  const cpu0 = process.cpuUsage();
  const client0 = procCpuMs('self');
  const machine0 = machineCpuMs();
  let heapPeak = process.memoryUsage().heapUsed;
  const sampler = setInterval(() => {
    heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
  }, 20);
  sampler.unref();
  const labPids = job.labPids;
  const nodeCpuMs = (): number => {
    const c = process.cpuUsage();
    return (c.user + c.system) / 1000;
  };
  const cpuProbe = labPids
    ? { client: () => procCpuMs('self'), server: () => treeCpuMs(labPids, descendants), node: nodeCpuMs }
    : undefined;

  const result = await runPublish(
    { registry, cutArg: job.cutDir, latest: false, only: [], dryRun: false, simulacro: false },
    {
      clock,
      connect: async (reg, targets) => {
        marks.connectorStart = since();
        const c = process.cpuUsage(cpu0);
        marks.cpuBeforeConnect = (c.user + c.system) / 1000;
        const connector = await createConnector(reg, targets, job.link);
        marks.connectorReady = since();
        return timedConnector(connector, calls, since, cpuProbe);
      },
      openJournal,
      newRunId: () => newRunId(),
      observer: { phase: (id, phase) => events.push({ t: since(), id, phase }) },
      onStart: () => {
        marks.started = since();
      },
      onManifestProgress: (done, total) => {
        marks.manifestFirst ??= since();
        marks.manifestLast = since();
        manifestFiles = total;
      },
    },
  );
  const ms = since();
  const cpu = process.cpuUsage(cpu0);
  clearInterval(sampler);
  heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
  const report: RunnerReport = {
    ms,
    idleKb,
    peakKb: vmHwmKb(),
    cpuMs: (cpu.user + cpu.system) / 1000,
    clientCpuMs: procCpuMs('self') - client0,
    heapPeakKb: Math.round(heapPeak / 1024),
    machineCpuMs: machineCpuMs() - machine0,
    marks,
    manifestFiles,
    events,
    calls,
    result,
  };
  process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(report)}\n`);
}

/** One plain step: every rsync started at once from this small process, as a shell script would. */
interface PlainJob {
  commands: string[][];
}

interface PlainReport {
  ms: number;
  /** This process and the rsync and ssh it ran (ms). */
  clientCpuMs: number;
  results: Array<{ code: number | null; stdout: string; stderr: string; endedAt: number }>;
}

async function plainRunner(job: PlainJob): Promise<void> {
  const client0 = procCpuMs('self');
  const t0 = performance.now();
  const results = (await Promise.all(job.commands.map(([cmd, ...args]) => run(cmd as string, args)))).map((r) => ({
    ...r,
    endedAt: r.endedAt - t0,
  }));
  const report: PlainReport = { ms: performance.now() - t0, clientCpuMs: procCpuMs('self') - client0, results };
  process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(report)}\n`);
}

/**
 * This file as plain JavaScript (types stripped by TypeScript's transpileModule), importing the product from dist/,
 * written once per bench into dir: what runs the publishes and the plain steps, without ts-node in the process.
 */
async function leanRunner(dir: string): Promise<string> {
  const { default: ts } = await import('typescript');
  const strip = (file: string): string =>
    ts.transpileModule(readFileSync(file, 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false },
    }).outputText;
  const dist = pathToFileURL(path.join(ROOT, 'dist')).href;
  const procs = path.join(ROOT, 'test', 'integration', 'lab', 'procs.ts');
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'procs.mjs'), strip(procs));
  const runnerFile = path.join(dir, 'publish-bench.mjs');
  await writeFile(
    runnerFile,
    strip(SELF).replaceAll("'../src/", `'${dist}/`).replaceAll("'../test/integration/lab/procs.js'", "'./procs.mjs'"),
  );
  return runnerFile;
}

// ---------------------------------------------------------------------------------------------
// The bench

type Method = 'plain' | 'careful' | 'publish' | 'publish-z';

interface Scale {
  casillas: number;
  countedA: number;
  countedB: number;
  imageBytes: number;
}

interface CmdResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** performance.now() when it ended. */
  endedAt: number;
}

const children = new Set<ChildProcess>();

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CmdResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      children.delete(child);
      reject(e);
    });
    child.on('close', (code) => {
      children.delete(child);
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), endedAt: performance.now() });
    });
  });
}

async function mustRun(what: string, cmd: string, args: string[]): Promise<CmdResult> {
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`${what}: ${cmd} exited ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  return r;
}

function totalBytesSent(rsyncStats: string): number {
  const m = /Total bytes sent: ([\d,.]+)/.exec(rsyncStats);
  return m ? Number((m[1] as string).replace(/[,.]/g, '')) : NaN;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};
const secs = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;
const times = (x: number): string => `${x.toFixed(2)}×`;
const pct = (x: number): string => `${(x * 100).toFixed(1)} %`;
const kbToMb = (kb: number): string => `${(kb / 1024).toFixed(1)} MiB`;
const pad = (s: string, w: number): string => (s.length >= w ? s : s + ' '.repeat(w - s.length));
const lpad = (s: string, w: number): string => (s.length >= w ? s : ' '.repeat(w - s.length) + s);
const verdict = (ok: boolean): string => (ok ? 'met' : 'MISSED');

interface StepResult {
  ms: number;
  bytes: number[];
  spreadMs: number;
  clientCpuMs: number;
  serverCpuMs: number;
}

type PublishStep = RunnerReport & { wallMs: number; serverCpuMs: number };

class Bench {
  private knownHostsFile = '';
  private registryFile = '';

  readonly members: LabDifusor[];

  constructor(
    readonly lab: Lab,
    readonly tmp: string,
    readonly cutsDir: string,
    readonly descendants: (pid: number) => number[],
    /** leanRunner's file: what runs each publish and each plain step. */
    readonly runner: string,
    /** Only these of the lab's difusores (default: all). */
    readonly ids?: string[],
  ) {
    this.members = ids ? ids.map((id) => lab.difusor(id)) : lab.difusores;
  }

  get labPids(): number[] {
    return this.members.map((d) => d.sshdPid);
  }

  /** CPU of every lab sshd and all it ran (ms). */
  serverCpu(): number {
    return treeCpuMs(this.labPids, this.descendants);
  }

  /** A registry for the same lab with other publication settings. */
  registryWith(publication: Record<string, unknown>, file: string): Promise<string> {
    return this.lab.writeRegistry({ publication, ...(this.ids ? { only: this.ids } : {}) }, path.join(this.tmp, file));
  }

  async init(): Promise<void> {
    this.knownHostsFile = path.join(this.tmp, 'known_hosts');
    await writeFile(this.knownHostsFile, this.lab.knownHosts(), { mode: 0o600 });
    this.registryFile = await this.lab.writeRegistry(this.ids ? { only: this.ids } : {}, path.join(this.tmp, `difusores-${path.basename(this.cutsDir)}-${this.ids?.length ?? 'all'}.yaml`));
    for (const d of this.members) {
      await mkdir(path.join(d.path, 'plain'), { recursive: true });
      await mkdir(path.join(d.path, 'careful', 'releases'), { recursive: true });
    }
  }

  cut(name: string): string {
    return path.join(this.cutsDir, name);
  }

  /** OpenSSH as a plain script would use it: the lab's key, its pinned host keys, nothing else. */
  sshArgs(d: LabDifusor): string[] {
    return [
      '-F', '/dev/null',
      '-p', String(d.port),
      '-i', this.lab.clientKeyFile,
      '-o', 'IdentitiesOnly=yes',
      '-o', `UserKnownHostsFile=${this.knownHostsFile}`,
      '-o', 'GlobalKnownHostsFile=/dev/null',
      '-o', 'StrictHostKeyChecking=yes',
      '-o', 'BatchMode=yes',
    ];
  }

  rsyncArgs(d: LabDifusor, source: string, dest: string, extra: string[] = []): string[] {
    return [
      '-a', '--delete', '--stats', ...extra,
      '-e', ['ssh', ...this.sshArgs(d)].join(' '),
      `${source}/`, `root@${d.host}:${dest}/`,
    ];
  }

  rsyncTo(d: LabDifusor, source: string, dest: string, extra: string[] = []): Promise<CmdResult> {
    return mustRun(`rsync to ${d.id}`, 'rsync', this.rsyncArgs(d, source, dest, extra));
  }

  ssh(d: LabDifusor, command: string): Promise<CmdResult> {
    return mustRun(`ssh to ${d.id}`, 'ssh', [...this.sshArgs(d), `root@${d.host}`, command]);
  }

  /** Every difusor at once, from a small process of its own, timed inside it like a publish. */
  async plain(cut: string): Promise<StepResult> {
    const job: PlainJob = { commands: this.members.map((d) => ['rsync', ...this.rsyncArgs(d, this.cut(cut), `${d.path}/plain`)]) };
    const server0 = this.serverCpu();
    const r = await run(process.execPath, [this.runner, '--plain', JSON.stringify(job)], { cwd: ROOT });
    const line = r.stdout.split('\n').find((l) => l.startsWith(RESULT_PREFIX));
    if (r.code !== 0 || !line) throw new Error(`plain runner exited ${r.code}:\n${r.stderr.trim()}`);
    const report = JSON.parse(line.slice(RESULT_PREFIX.length)) as PlainReport;
    const failed = report.results.find((x) => x.code !== 0);
    if (failed) throw new Error(`plain rsync exited ${failed.code}: ${failed.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    const ends = report.results.map((x) => x.endedAt);
    return {
      ms: report.ms,
      bytes: report.results.map((x) => totalBytesSent(x.stdout)),
      spreadMs: Math.max(...ends) - Math.min(...ends),
      clientCpuMs: report.clientCpuMs,
      serverCpuMs: this.serverCpu() - server0,
    };
  }

  /** A careful script: a new release per cut sharing unchanged files by --link-dest, then one ssh per difusor to switch. */
  async careful(cut: string, previous?: string): Promise<StepResult> {
    const [client0, server0, t0] = [procCpuMs('self'), this.serverCpu(), performance.now()];
    const rs = await Promise.all(
      this.members.map((d) =>
        this.rsyncTo(d, this.cut(cut), `${d.path}/careful/releases/${cut}`, previous ? [`--link-dest=../${previous}`] : []),
      ),
    );
    const switches = await Promise.all(
      this.members.map((d) =>
        this.ssh(d, `cd ${d.path} && ln -s releases/${cut} careful/current.new && mv -T careful/current.new careful/current`),
      ),
    );
    const ms = performance.now() - t0;
    const ends = switches.map((r) => r.endedAt);
    return {
      ms,
      bytes: rs.map((r) => totalBytesSent(r.stdout)),
      spreadMs: Math.max(...ends) - Math.min(...ends),
      clientCpuMs: procCpuMs('self') - client0,
      serverCpuMs: this.serverCpu() - server0,
    };
  }

  async publish(cut: string, registry = this.registryFile, profile = false, link?: LinkTimeouts): Promise<PublishStep> {
    const job: RunnerJob = { registry, cutDir: this.cut(cut), ...(profile ? { labPids: this.labPids } : {}), ...(link ? { link } : {}) };
    const [server0, t0] = [this.serverCpu(), performance.now()];
    // BENCH_CPU_PROF=DIR: a V8 profile of each publish.
    const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF] : [];
    const r = await run(process.execPath, [...prof, this.runner, '--runner', JSON.stringify(job)], { cwd: ROOT });
    const wallMs = performance.now() - t0;
    const serverCpuMs = this.serverCpu() - server0;
    const line = r.stdout.split('\n').find((l) => l.startsWith(RESULT_PREFIX));
    if (r.code !== 0 || !line) {
      throw new Error(`publish runner for ${cut} exited ${r.code}:\n${r.stderr.trim()}\n${r.stdout.trim().slice(-2000)}`);
    }
    const report = JSON.parse(line.slice(RESULT_PREFIX.length)) as RunnerReport;
    const failed = report.result.outcomes.filter((o) => o.result === 'failed');
    if (failed.length > 0) {
      throw new Error(`publish of ${cut} failed on ${failed.map((o) => `${o.id} (${o.failedPhase}: ${o.error})`).join('; ')}`);
    }
    return { ...report, wallMs, serverCpuMs };
  }

  /** Back to "cut A live, no trace of B" on every method, so each repeat times the same step. */
  async resetToA(): Promise<void> {
    await this.plain(CUT_A);
    await Promise.all(
      this.members.map((d) =>
        this.ssh(
          d,
          `cd ${d.path} && ln -s releases/${CUT_A} careful/current.new && mv -T careful/current.new careful/current && rm -rf careful/releases/${CUT_B}` +
            ` && ln -s releases/${CUT_A} .current.new && mv -T .current.new current && rm -rf releases/${CUT_B}`,
        ),
      ),
    );
    // Publishing A again leaves the host as it was before B: A's hashes in the cache, A live everywhere.
    const again = await this.publish(CUT_A);
    if (again.result.outcomes.some((o) => o.result !== 'up-to-date')) throw new Error('reset: A was not up to date everywhere');
  }
}

async function contentDelta(aDir: string, bDir: string): Promise<{ files: number; bytes: number; total: number; totalBytes: number }> {
  const { listFiles } = await import('./prep-cut.js');
  const [a, b] = await Promise.all([listFiles(aDir), listFiles(bDir)]);
  const inA = new Set(a);
  let files = 0;
  let bytes = 0;
  let totalBytes = 0;
  for (const p of b) {
    const sb = await stat(path.join(bDir, p));
    totalBytes += sb.size;
    if (inA.has(p)) {
      const sa = await stat(path.join(aDir, p));
      if (sa.ino === sb.ino && sa.dev === sb.dev) continue;
      if (sa.size === sb.size && (await readFile(path.join(aDir, p))).equals(await readFile(path.join(bDir, p)))) continue;
    }
    files++;
    bytes += sb.size;
  }
  return { files, bytes, total: b.length, totalBytes };
}

/** Where a publish spent its time: run-level segments, per-difusor phases and per-step calls. */
function breakdown(r: RunnerReport): string[] {
  const m = r.marks;
  const firstEvent = (phase: string): number => Math.min(...r.events.filter((e) => e.phase === phase).map((e) => e.t));
  const lastEvent = (phase: string): number => Math.max(...r.events.filter((e) => e.phase === phase).map((e) => e.t));
  const stageStart = firstEvent('connecting');
  const lastReady = lastEvent('ready');
  const firstSwitch = firstEvent('switching');
  const lastLive = lastEvent('live');
  const f = (ms: number): string => lpad(Number.isFinite(ms) ? ms.toFixed(0) : '-', 6);
  const lines = [
    `  run level (ms)  total ${f(r.ms)} | before manifest (scan, lock, journal) ${f((m.manifestFirst ?? 0) - 0)} | ` +
      `manifest of ${r.manifestFiles} files ${f((m.manifestLast ?? 0) - (m.manifestFirst ?? 0))} | ` +
      `save manifest+cache ${f((m.started ?? 0) - (m.manifestLast ?? 0))} | connector ${f((m.connectorReady ?? 0) - (m.connectorStart ?? 0))}`,
    `                  stage, first connect → last ready ${f(lastReady - stageStart)} | ready → first switch ${f(firstSwitch - lastReady)} | ` +
      `switches ${f(lastLive - firstSwitch)} | after (prune, state, journal) ${f(r.ms - lastLive)}`,
    `                  node CPU ${f(r.cpuMs)} | machine CPU (all processes) ${f(r.machineCpuMs)} = ${(r.machineCpuMs / r.ms).toFixed(2)} cores busy on average`,
  ];
  // Phases as the observer saw them: each lasts until the difusor's next phase.
  const byPhase = new Map<string, number[]>();
  for (const id of new Set(r.events.map((e) => e.id))) {
    const evs = r.events.filter((e) => e.id === id).sort((a, b) => a.t - b.t);
    evs.forEach((e, i) => {
      const next = evs[i + 1];
      if (!next) return;
      const list = byPhase.get(e.phase) ?? [];
      list.push(next.t - e.t);
      byPhase.set(e.phase, list);
    });
  }
  const row = (name: string, xs: number[]): string =>
    `    ${pad(name, 12)} ${f(Math.min(...xs))} ${f(median(xs))} ${f(Math.max(...xs))}`;
  lines.push('  per difusor phase (ms)  min    med    max');
  for (const [phase, xs] of byPhase) lines.push(row(phase, xs));
  const byCall = new Map<string, number[]>();
  for (const c of r.calls) {
    const list = byCall.get(c.what) ?? [];
    list.push(c.end - c.start);
    byCall.set(c.what, list);
  }
  lines.push('  per difusor remote step (ms)  min    med    max   (open = ssh2 handshake, transfer = rsync, others = helper verbs)');
  for (const [what, xs] of byCall) lines.push(row(what, xs));
  return lines;
}

/**
 * CPU per kind of remote step. Calls of one kind that overlap (the switches, the prunes: all difusores at
 * once) are charged together, from the first start to the last end, since their counters overlap.
 */
function cpuPerStep(calls: Call[]): Map<string, { here: number; node: number; there: number; count: number }> {
  const out = new Map<string, { here: number; node: number; there: number; count: number }>();
  const kinds = [...new Set(calls.map((c) => c.what))];
  for (const what of kinds) {
    const cs = calls.filter((c) => c.what === what && c.cpu).sort((a, b) => a.start - b.start);
    let here = 0;
    let node = 0;
    let there = 0;
    let group: Call[] = [];
    const close = (): void => {
      if (group.length === 0) return;
      const counters = group.map((c) => c.cpu as NonNullable<Call['cpu']>);
      here += Math.max(...counters.map((c) => c.client1)) - Math.min(...counters.map((c) => c.client0));
      node += Math.max(...counters.map((c) => c.node1)) - Math.min(...counters.map((c) => c.node0));
      there += Math.max(...counters.map((c) => c.server1)) - Math.min(...counters.map((c) => c.server0));
      group = [];
    };
    let groupEnd = -Infinity;
    for (const c of cs) {
      if (c.start > groupEnd) close();
      group.push(c);
      groupEnd = Math.max(groupEnd, c.end);
    }
    close();
    out.set(what, { here, node, there, count: cs.length });
  }
  return out;
}

function scaleFromEnv(): { name: string; scale: Scale } {
  if (process.env.BENCH_SCALE === 'small') {
    return { name: 'small', scale: { casillas: 300, countedA: 260, countedB: 295, imageBytes: 120_000 } };
  }
  if (process.env.BENCH_SCALE === 'durango') {
    return { name: 'durango', scale: { casillas: 2545, countedA: 2200, countedB: 2500, imageBytes: 120_000 } };
  }
  // PERFORMANCE.md's shape: the next cut adds ~7 % of the actas and rewrites every page (~20 MB per difusor).
  return { name: 'full', scale: { casillas: 1200, countedA: 1000, countedB: 1080, imageBytes: 120_000 } };
}

async function memoryRun(lab: Lab, tmp: string, scale: Scale, factor: number, descendants: (pid: number) => number[], runner: string) {
  const { writeCut } = await import('./prep-cut.js');
  const dir = path.join(tmp, `mem${factor}`);
  const cutsDir = path.join(dir, 'cuts');
  const shape = { imageBytes: 2_000, seed: `mem${factor}` };
  const casillas = scale.casillas * factor;
  await writeCut(path.join(cutsDir, CUT_A), CUT_A, { ...shape, casillas, counted: scale.countedA * factor });
  await writeCut(path.join(cutsDir, CUT_B), CUT_B, { ...shape, casillas, counted: scale.countedB * factor }, path.join(cutsDir, CUT_A));
  const overrides: Record<string, Record<string, unknown>> = {};
  for (const d of lab.difusores) {
    const p = path.join(d.dir, `mem${factor}`);
    await mkdir(p, { recursive: true });
    overrides[d.id] = { path: p };
  }
  const registry = await lab.writeRegistry(
    { publication: { state_dir: path.join(dir, 'state') }, difusores: overrides },
    path.join(dir, 'difusores.yaml'),
  );
  const memBench = new Bench(lab, tmp, cutsDir, descendants, runner);
  const full = await memBench.publish(CUT_A, registry);
  const incremental = await memBench.publish(CUT_B, registry);
  for (const d of lab.difusores) await rm(path.join(d.dir, `mem${factor}`), { recursive: true, force: true });
  await rm(dir, { recursive: true, force: true });
  return { factor, files: incremental.manifestFiles, full, incremental };
}

interface Section {
  tmp: string;
  say(line?: string): void;
  progress(line: string): void;
  /** Registers a lab for cleanup, even if the section throws. */
  track<L extends Lab>(lab: L): L;
  descendants: (pid: number) => number[];
  /** leanRunner's file. */
  runner: string;
}

/** The headline figures of each section, printed side by side at the end. */
interface Headline {
  label: string;
  value: string;
}

/** Loopback: 8 sshd difusores on 127.0.0.x; the CPU, not the link, is the limit. */
async function loopbackSection(ctx: Section): Promise<Headline[]> {
  const { startLab } = await import('../test/integration/lab/sshd.js');
  const { writeCut } = await import('./prep-cut.js');
  const { tmp, say, progress, track, descendants } = ctx;
  const n = Number(process.env.BENCH_DIFUSORES ?? 8);
  const repeats = Math.max(1, Number(process.env.BENCH_REPEATS ?? 2));
  const detail = process.env.BENCH_DETAIL === '1';
  // BENCH_DETAIL=profile: only the per-step CPU profile, without the careful script and the memory runs.
  const profiling = detail || process.env.BENCH_DETAIL === 'profile';
  const { name: scaleName, scale } = scaleFromEnv();
  const loadAtStart = os.loadavg()[0] as number;
  progress(`starting a lab of ${n} difusores in ${tmp}`);
  const lab = track(await startLab({ difusores: n, baseDir: path.join(tmp, 'lab') }));
  const cutsDir = path.join(tmp, 'cuts');
  progress(`writing cut A (${scale.countedA} of ${scale.casillas} casillas) and cut B (${scale.countedB})`);
  await writeCut(path.join(cutsDir, CUT_A), CUT_A, { casillas: scale.casillas, counted: scale.countedA, imageBytes: scale.imageBytes, seed: 'bench' });
  await writeCut(
    path.join(cutsDir, CUT_B),
    CUT_B,
    { casillas: scale.casillas, counted: scale.countedB, imageBytes: scale.imageBytes, seed: 'bench' },
    path.join(cutsDir, CUT_A),
  );
  const delta = await contentDelta(path.join(cutsDir, CUT_A), path.join(cutsDir, CUT_B));

  const bench = new Bench(lab, tmp, cutsDir, descendants, ctx.runner);
  await bench.init();

  progress('seeding every method with cut A (untimed)');
  await bench.plain(CUT_A);
  if (detail) await bench.careful(CUT_A);
  await bench.publish(CUT_A);

  // The careful link-dest script is a reference kept for BENCH_DETAIL runs; it costs a third more seeding.
  const methods: Method[] = detail ? ['plain', 'careful', 'publish', 'publish-z'] : ['plain', 'publish', 'publish-z'];
  const publishZRuns: PublishStep[] = [];
  const plainRuns: StepResult[] = [];
  const carefulRuns: StepResult[] = [];
  const publishRuns: PublishStep[] = [];
  const noopRuns: PublishStep[] = [];
  const orders: string[] = [];
  for (let r = 0; r < repeats; r++) {
    const order = methods.map((_, i) => methods[(i + r) % methods.length] as Method);
    orders.push(order.join(' → '));
    for (const method of order) {
      progress(`repeat ${r + 1}/${repeats}: ${method} of cut B`);
      if (method === 'plain') plainRuns.push(await bench.plain(CUT_B));
      else if (method === 'careful') carefulRuns.push(await bench.careful(CUT_B, CUT_A));
      else if (method === 'publish-z') {
        publishZRuns.push(await bench.publish(CUT_B, undefined, false, { compress: true }));
        await bench.resetToA();
      } else {
        publishRuns.push(await bench.publish(CUT_B));
        const noop = await bench.publish(CUT_B);
        if (noop.result.outcomes.some((o) => o.result !== 'up-to-date')) throw new Error('the second publish of B was not a no-op');
        noopRuns.push(noop);
        // The other publish method of this repeat must find A live again.
        await bench.resetToA();
      }
    }
    progress(`repeat ${r + 1}/${repeats}: back to cut A everywhere (untimed)`);
    await bench.resetToA();
  }

  // One difusor at a time, so each remote step can be charged the CPU it cost on both sides.
  let profile: PublishStep | undefined;
  let mem: Array<Awaited<ReturnType<typeof memoryRun>>> = [];
  if (profiling) {
    progress('profile: publish of B with concurrency 1, CPU charged per remote step');
    profile = await bench.publish(CUT_B, await bench.registryWith({ concurrency: 1 }, 'difusores-profile.yaml'), true);
  }
  if (detail) {
    progress('memory: whole publishes (A then B) at 1× and 2× casillas, 2 kB images');
    mem = [await memoryRun(lab, tmp, scale, 1, descendants, ctx.runner), await memoryRun(lab, tmp, scale, 2, descendants, ctx.runner)];
  }

  // ------------------------------------------------------------------ the report
  const med = {
    plain: median(plainRuns.map((x) => x.ms)),
    careful: median(carefulRuns.map((x) => x.ms)),
    publish: median(publishRuns.map((x) => x.ms)),
    publishLive: median(publishRuns.map(liveEverywhereMs)),
    publishZ: median(publishZRuns.map((x) => x.ms)),
    publishWall: median(publishRuns.map((x) => x.wallMs)),
    noop: median(noopRuns.map((x) => x.ms)),
    noopWall: median(noopRuns.map((x) => x.wallMs)),
    spread: median(publishRuns.map((x) => x.result.switchSpreadMs ?? NaN)),
    carefulSpread: median(carefulRuns.map((x) => x.spreadMs)),
    plainSpread: median(plainRuns.map((x) => x.spreadMs)),
  };
  const perDifusor = (xs: number[][]): number => median(xs.map((x) => median(x)));
  const bytes = {
    publish: perDifusor(publishRuns.map((x) => x.result.outcomes.map((o) => o.bytesSent))),
    plain: perDifusor(plainRuns.map((x) => x.bytes)),
    careful: perDifusor(carefulRuns.map((x) => x.bytes)),
  };
  const ratios = {
    publishOverPlain: med.publish / med.plain,
    liveOverPlain: med.publishLive / med.plain,
    publishOverCareful: med.publish / med.careful,
    carefulOverPlain: med.careful / med.plain,
    noopOverPublish: med.noop / med.publish,
  };

  const cols = (cells: string[], widths: number[]): string => cells.map((c, i) => (i === 0 ? pad(c, widths[0] as number) : lpad(c, widths[i] as number))).join('  ');
  const w = [52, ...Array.from({ length: repeats }, () => 10), 10];
  say(`difusion publish bench — ${n} difusores over real sshd on loopback, ${os.cpus().length} cores, load average ${loadAtStart.toFixed(2)} at start`);
  say(
    `scale ${scaleName}: ${scale.casillas} casillas × 2 actas of ${scale.imageBytes} B; ` +
      `cut A ${CUT_A} (${scale.countedA} counted) → cut B ${CUT_B} (${scale.countedB} counted)`,
  );
  say(
    `cut B: ${delta.total} files, ${mb(delta.totalBytes)}; changed by content since A: ${delta.files} files, ${mb(delta.bytes)} ` +
      `(the delta, per difusor; ${mb(delta.bytes * n)} for all ${n})`,
  );
  say(`repeats: ${repeats}, order per repeat: ${orders.join(' | ')}`);
  say();
  say(cols(['cut A → B, all difusores in parallel', ...plainRuns.map((_, i) => `rep ${i + 1}`), 'median'], w));
  const timingRow = (label: string, xs: number[]): string => cols([label, ...xs.map(secs), secs(median(xs))], w);
  say(timingRow('plain    rsync -a --delete into the live dir', plainRuns.map((x) => x.ms)));
  say(timingRow('careful  rsync --link-dest release + ssh switch', carefulRuns.map((x) => x.ms)));
  say(timingRow('publish  difusion runPublish, incremental', publishRuns.map((x) => x.ms)));
  say(timingRow('publish  same, until live everywhere (before prune)', publishRuns.map(liveEverywhereMs)));
  say(timingRow('publish  same, process wall (node start included)', publishRuns.map((x) => x.wallMs)));
  say(timingRow('publish -z  rsync --compress --skip-compress=jpg/zip/…', publishZRuns.map((x) => x.ms)));
  say(timingRow('no-op    difusion runPublish of B again', noopRuns.map((x) => x.ms)));
  say(timingRow('no-op    same, process wall', noopRuns.map((x) => x.wallMs)));
  say();
  // Wall time on a shared 2-core machine depends on everyone's load; CPU charged to our own processes does not.
  const wc = [52, 10, 10, 10, 10];
  say(cols(['CPU per step, median (this bench\'s processes only)', 'here', 'difusores', 'total', '× plain'], wc));
  const cpuOf = (xs: Array<{ clientCpuMs: number; serverCpuMs: number }>) => ({
    client: median(xs.map((x) => x.clientCpuMs)),
    server: median(xs.map((x) => x.serverCpuMs)),
    total: median(xs.map((x) => x.clientCpuMs + x.serverCpuMs)),
  });
  const cpu = { plain: cpuOf(plainRuns), careful: cpuOf(carefulRuns), publish: cpuOf(publishRuns), noop: cpuOf(noopRuns) };
  const cpuRow = (label: string, c: { client: number; server: number; total: number }): string =>
    cols([label, secs(c.client), secs(c.server), secs(c.total), times(c.total / cpu.plain.total)], wc);
  say(cpuRow('plain', cpu.plain));
  say(cpuRow('careful', cpu.careful));
  say(cpuRow('publish (here = node + its rsync and ssh)', cpu.publish));
  say(cpuRow('no-op', cpu.noop));
  say();
  const wr = [44, 12, 12, 8];
  say(cols(['figure', 'value', 'target', ''], wr));
  say(cols(['publish / plain', times(ratios.publishOverPlain), `≤ ${times(TARGETS.publishOverPlain)}`, verdict(ratios.publishOverPlain <= TARGETS.publishOverPlain)], wr));
  say(cols(['publish / careful', times(ratios.publishOverCareful), '', ''], wr));
  say(cols(['careful / plain', times(ratios.carefulOverPlain), '', ''], wr));
  say(cols(['publish / plain, in CPU', times(cpu.publish.total / cpu.plain.total), '', ''], wr));
  say(cols(['careful / plain, in CPU', times(cpu.careful.total / cpu.plain.total), '', ''], wr));
  say(cols(['no-op / incremental publish', pct(ratios.noopOverPublish), `≤ ${pct(TARGETS.noopOverPublish)}`, verdict(ratios.noopOverPublish <= TARGETS.noopOverPublish)], wr));
  say(cols(['switch spread, publish (max−min switchedAt)', `${med.spread.toFixed(0)} ms`, `≤ ${TARGETS.switchSpreadMs} ms`, verdict(med.spread <= TARGETS.switchSpreadMs)], wr));
  say(cols(['switch spread, careful (ssh switch ends)', `${med.carefulSpread.toFixed(0)} ms`, '', ''], wr));
  say(cols(['finish spread, plain (live dir mixed meanwhile)', `${med.plainSpread.toFixed(0)} ms`, '', ''], wr));
  say();
  say(cols(['bytes sent per difusor (median)', 'bytes', '× delta', ''], wr));
  say(cols(['content delta (files changed A → B)', mb(delta.bytes), times(1), ''], wr));
  say(cols(['publish (rsync Total bytes sent)', mb(bytes.publish), times(bytes.publish / delta.bytes), `${times(bytes.publish / bytes.plain)} plain`], wr));
  say(cols(['plain (rsync --stats)', mb(bytes.plain), times(bytes.plain / delta.bytes), ''], wr));
  say(cols(['careful (rsync --stats)', mb(bytes.careful), times(bytes.careful / delta.bytes), ''], wr));
  say();
  const peak = median(publishRuns.map((x) => x.peakKb));
  const idle = median(publishRuns.map((x) => x.idleKb));
  say(`peak RSS of the publish process (incremental B, median): ${kbToMb(peak)} (${kbToMb(idle)} of it before the run: node and the modules)`);
  const [m1, m2] = mem;
  const memRatio = m1 && m2 ? m2.incremental.peakKb / m1.incremental.peakKb : NaN;
  if (m1 && m2) {
    say('memory in the number of files (whole publish, 2 kB images, fresh difusor dirs and state):');
    const wm = [24, 8, 12, 12, 14, 12];
    say(cols(['  size', 'files', 'peak full', 'peak incr.', 'incr. − idle', 'heap incr.'], wm));
    for (const m of mem) {
      say(
        cols(
          [
            `  ${m.factor}× (${scale.casillas * m.factor} casillas)`,
            String(m.files),
            kbToMb(m.full.peakKb),
            kbToMb(m.incremental.peakKb),
            kbToMb(m.incremental.peakKb - m.incremental.idleKb),
            kbToMb(m.incremental.heapPeakKb),
          ],
          wm,
        ),
      );
    }
    const memRatioNet = (m2.incremental.peakKb - m2.incremental.idleKb) / Math.max(1, m1.incremental.peakKb - m1.incremental.idleKb);
    const perFileB = ((m2.incremental.peakKb - m1.incremental.peakKb) * 1024) / Math.max(1, m2.files - m1.files);
    say(`  2× / 1× peak RSS: ${times(memRatio)} (above idle: ${times(memRatioNet)}); ≈ ${perFileB.toFixed(0)} B of peak per extra file`);
    say();
  }
  say(`where the time goes, incremental publish of B (per repeat):`);
  publishRuns.forEach((x, i) => {
    say(` repeat ${i + 1}: ${secs(x.ms)}`);
    for (const l of breakdown(x)) say(l);
  });
  say(` no-op, repeat 1: ${secs((noopRuns[0] as RunnerReport).ms)}`);
  for (const l of breakdown(noopRuns[0] as RunnerReport)) say(l);
  say();
  if (profile) {
    say(`CPU per remote step, one difusor at a time (concurrency 1; publish took ${secs(profile.ms)}, node CPU ${secs(profile.cpuMs)}):`);
    const wp = [12, 10, 12, 12, 12, 12, 12];
    say(cols(['  step', 'wall med', 'here/dif.', 'there/dif.', 'Σ here', '(Σ node)', 'Σ difusores'], wp));
    let sumHere = 0;
    let sumThere = 0;
    for (const [what, { here, node, there, count }] of cpuPerStep(profile.calls)) {
      sumHere += here;
      sumThere += there;
      const walls = profile.calls.filter((c) => c.what === what).map((c) => c.end - c.start);
      say(
        cols(
          [
            `  ${what}`,
            `${median(walls).toFixed(0)} ms`,
            `${(here / count).toFixed(0)} ms`,
            `${(there / count).toFixed(0)} ms`,
            secs(here),
            `(${secs(node)})`,
            secs(there),
          ],
          wp,
        ),
      );
    }
    say(cols(['  all steps', '', '', '', secs(sumHere), '', secs(sumThere)], wp));
    say(
      `  outside the remote steps: here ${secs(profile.clientCpuMs - sumHere)} (of which before the first connection: ` +
        `${secs(profile.marks.cpuBeforeConnect ?? NaN)} for scan, manifest, journal), difusores ${secs(profile.serverCpuMs - sumThere)}`,
    );
    say();
  }
  const met = [
    ratios.publishOverPlain <= TARGETS.publishOverPlain,
    med.spread <= TARGETS.switchSpreadMs,
    ratios.noopOverPublish <= TARGETS.noopOverPublish,
  ];
  say(
    `summary: publish ${times(ratios.publishOverPlain)} plain (target ≤ ${times(TARGETS.publishOverPlain)}, ${verdict(met[0] as boolean)}), ` +
      `${times(ratios.publishOverCareful)} careful, ${times(cpu.publish.total / cpu.plain.total)} plain in CPU; switch spread ${med.spread.toFixed(0)} ms (≤ ${TARGETS.switchSpreadMs}, ${verdict(met[1] as boolean)}); ` +
      `no-op ${pct(ratios.noopOverPublish)} of publish (≤ ${pct(TARGETS.noopOverPublish)}, ${verdict(met[2] as boolean)}); ` +
      `sent ${times(bytes.publish / delta.bytes)} the delta; peak RSS ${kbToMb(peak)}${detail ? `, ${times(memRatio)} at 2× files` : ''} — ${met.filter(Boolean).length}/3 targets met`,
  );
  return [
    { label: `loopback, ${n} difusores: publish / plain parallel rsync`, value: `${times(ratios.publishOverPlain)} (target ≤ 1.00×)` },
    { label: 'loopback: publish until live everywhere / plain', value: times(ratios.liveOverPlain) },
    { label: 'loopback: publish -z / publish (compression on a fast link)', value: times(med.publishZ / med.publish) },
    { label: 'loopback: switch spread', value: `${med.spread.toFixed(0)} ms` },
  ];
}

/** Behind a shaped link: the difusores' sshd in a network namespace, tc htb on the veth (see test/integration/lab/wan.ts). */
async function wanSection(ctx: Section): Promise<Headline[]> {
  const { startWanLab } = await import('../test/integration/lab/wan.js');
  const { writeCut } = await import('./prep-cut.js');
  const { tmp, say, progress, track, descendants } = ctx;
  const uplinkMbit = Number(process.env.BENCH_UPLINK_MBIT ?? 80);
  const thinMbit = Number(process.env.BENCH_THIN_MBIT ?? 2);
  const fast = Number(process.env.BENCH_WAN_DIFUSORES ?? 5);
  const repeats = Math.max(1, Number(process.env.BENCH_REPEATS ?? 2));
  const small = process.env.BENCH_SCALE === 'small';
  const shape = { casillas: small ? 200 : 600, imageBytes: 120_000, pageBytes: 6_000, seed: 'wan' };
  const counted = small ? [100, 115] : [300, 345];

  progress(`starting a lab WAN of ${fast + 1} difusores (namespace, veth, htb ${uplinkMbit} Mbit/s; d${fast + 1} also on ${thinMbit} Mbit/s)`);
  const lab = track(await startWanLab({ difusores: fast + 1, baseDir: path.join(tmp, 'wan') }));
  const thinId = `d${fast + 1}`;
  const fastIds = lab.difusores.slice(0, fast).map((d) => d.id);
  const cutsDir = path.join(tmp, 'wan-cuts');
  progress(`writing the link's cuts A (${counted[0]} of ${shape.casillas} casillas) and B (${counted[1]}), pages of ~${shape.pageBytes} B`);
  await writeCut(path.join(cutsDir, CUT_A), CUT_A, { ...shape, counted: counted[0] as number });
  await writeCut(path.join(cutsDir, CUT_B), CUT_B, { ...shape, counted: counted[1] as number }, path.join(cutsDir, CUT_A));
  const delta = await contentDelta(path.join(cutsDir, CUT_A), path.join(cutsDir, CUT_B));

  const uplink = new Bench(lab, tmp, cutsDir, descendants, ctx.runner, fastIds);
  const everyone = new Bench(lab, tmp, cutsDir, descendants, ctx.runner);
  await uplink.init();
  await everyone.init();
  progress('seeding cut A on every difusor, link unshaped (untimed)');
  await lab.shape(undefined);
  await everyone.plain(CUT_A);
  await everyone.publish(CUT_A);

  const bytesPerS = (uplinkMbit * 1e6) / 8;
  const limitMs = (fast * delta.bytes * 1000) / bytesPerS;
  const shaped = async <T>(fn: () => Promise<T>, thin = false): Promise<T> => {
    await lab.shape({ uplinkMbit, ...(thin ? { thin: { id: thinId, mbit: thinMbit } } : {}) });
    try {
      return await fn();
    } finally {
      await lab.shape(undefined);
    }
  };

  const methods = ['plain', 'publish', 'publish-z'] as const;
  const runs = { plain: [] as StepResult[], publish: [] as PublishStep[], publishZ: [] as PublishStep[] };
  for (let r = 0; r < repeats; r++) {
    for (const [i] of methods.entries()) {
      const method = methods[(i + r) % methods.length] as (typeof methods)[number];
      progress(`shaped link, repeat ${r + 1}/${repeats}: ${method} of cut B to ${fast} difusores`);
      if (method === 'plain') runs.plain.push(await shaped(() => uplink.plain(CUT_B)));
      else if (method === 'publish') runs.publish.push(await shaped(() => uplink.publish(CUT_B)));
      else runs.publishZ.push(await shaped(() => uplink.publish(CUT_B, undefined, false, { compress: true })));
      await uplink.resetToA();
    }
  }

  progress(`thin link: publish of cut B to all ${fast + 1}, ${thinId} on ${thinMbit} Mbit/s, default switch deadline`);
  const thin = await shaped(() => everyone.publish(CUT_B), true);
  const liveAt = (id: string): number => Math.max(...thin.events.filter((e) => e.id === id && e.phase === 'live').map((e) => e.t));
  const readyAt = (id: string): number => Math.min(...thin.events.filter((e) => e.id === id && e.phase === 'ready').map((e) => e.t));
  const firstReady = Math.min(...fastIds.map(readyAt));
  const lastFastReady = Math.max(...fastIds.map(readyAt));
  const fastLive = Math.max(...fastIds.map(liveAt));
  const slowLive = liveAt(thinId);
  const slowOwn = (thin.result.outcomes.find((o) => o.id === thinId)?.seconds ?? NaN) * 1000;
  const thinLimitMs = (delta.bytes * 1000 * 8) / (thinMbit * 1e6);

  const med = {
    plain: median(runs.plain.map((x) => x.ms)),
    publish: median(runs.publish.map((x) => x.ms)),
    publishLive: median(runs.publish.map(liveEverywhereMs)),
    publishZ: median(runs.publishZ.map((x) => x.ms)),
  };
  const cols = (cells: string[], widths: number[]): string => cells.map((c, i) => (i === 0 ? pad(c, widths[0] as number) : lpad(c, widths[i] as number))).join('  ');
  const w = [60, ...Array.from({ length: repeats }, () => 10), 10];
  const row = (label: string, xs: number[]): string => cols([label, ...xs.map(secs), secs(median(xs))], w);
  say();
  say(`shaped link — ${fast} difusores in a network namespace behind one ${uplinkMbit} Mbit/s uplink (tc htb on a veth)`);
  say(`cut B: changed since A ${delta.files} files, ${mb(delta.bytes)} per difusor; N·D/B = ${fast} × ${mb(delta.bytes)} / ${uplinkMbit} Mbit/s = ${secs(limitMs)}`);
  say(cols(['cut A → B through the link', ...runs.plain.map((_, i) => `rep ${i + 1}`), 'median'], w));
  say(row('plain    rsync -a --delete, all difusores in parallel', runs.plain.map((x) => x.ms)));
  say(row('publish  difusion runPublish', runs.publish.map((x) => x.ms)));
  say(row('publish  same, until live everywhere (before prune)', runs.publish.map(liveEverywhereMs)));
  say(row('publish -z  with rsync --compress --skip-compress', runs.publishZ.map((x) => x.ms)));
  say(row('N·D/B    the link\'s limit', runs.plain.map(() => limitMs)));
  say(`  publish / plain ${times(med.publish / med.plain)} (target ≤ 1.00×); publish / N·D/B ${times(med.publish / limitMs)} (target ≤ 1.15×); ` +
    `plain / N·D/B ${times(med.plain / limitMs)}; publish -z / publish ${times(med.publishZ / med.publish)}`);
  say(`  live everywhere / plain ${times(med.publishLive / med.plain)}; live everywhere / N·D/B ${times(med.publishLive / limitMs)}`);
  say(`  bytes sent per difusor: publish ${mb(median(runs.publish.flatMap((x) => x.result.outcomes.map((o) => o.bytesSent))))}, ` +
    `publish -z ${mb(median(runs.publishZ.flatMap((x) => x.result.outcomes.map((o) => o.bytesSent))))}, plain ${mb(median(runs.plain.flatMap((x) => x.bytes)))}`);
  say('  where the time goes, publish through the link, repeat 1:');
  for (const l of breakdown(runs.publish[0] as RunnerReport)) say(l);
  say();
  say(`thin link — the same ${fast} plus ${thinId} on ${thinMbit} Mbit/s of its own, switch deadline ${20} s (the default):`);
  say(`  fast difusores ready ${secs(firstReady)} (first) to ${secs(lastFastReady)} (last); live at ${secs(fastLive)}; switch spread among them ${thin.result.switchSpreadMs ?? NaN} ms`);
  say(`  ${thinId}: live at ${secs(slowLive)} (its own staging and switch ${secs(slowOwn)}; D/b = ${secs(thinLimitMs)}), late by ${thin.result.outcomes.find((o) => o.id === thinId)?.lateSeconds ?? NaN} s`);
  say(`  before the deadline the fast ones waited for the slowest: they would have gone live at ${secs(slowLive)}`);
  return [
    { label: `shaped link, ${fast} × ${mb(delta.bytes)} over ${uplinkMbit} Mbit/s: publish / plain rsync`, value: `${times(med.publish / med.plain)} (target ≤ 1.00×)` },
    { label: 'shaped link: publish / N·D/B', value: `${times(med.publish / limitMs)} (target ≤ 1.15×); plain / N·D/B ${times(med.plain / limitMs)}` },
    { label: 'shaped link: live everywhere / plain; / N·D/B', value: `${times(med.publishLive / med.plain)}; ${times(med.publishLive / limitMs)}` },
    { label: 'shaped link: publish -z / publish', value: times(med.publishZ / med.publish) },
    { label: `thin link (${thinId} on ${thinMbit} Mbit/s): fast difusores live at`, value: `${secs(fastLive)} (first ready ${secs(firstReady)} + deadline)` },
    { label: `thin link: ${thinId} live at`, value: `${secs(slowLive)} (own time ${secs(slowOwn)}, D/b ${secs(thinLimitMs)})` },
    { label: 'thin link: switch spread among the on-time difusores', value: `${thin.result.switchSpreadMs ?? NaN} ms` },
  ];
}

async function main(): Promise<void> {
  const { descendants } = await import('../test/integration/lab/procs.js');
  const say = (line = ''): void => void process.stdout.write(`${line}\n`);
  const progress = (line: string): void => void process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
  const only = process.env.BENCH_ONLY;

  const tmp = await mkdtemp(path.join(os.tmpdir(), 'difusion-bench-'));
  const labs: Lab[] = [];
  let cleaned = false;
  const cleanup = async (): Promise<void> => {
    if (cleaned) return;
    cleaned = true;
    for (const c of children) c.kill('SIGKILL');
    for (const lab of labs) await lab.stop().catch((e: Error) => progress(`lab stop: ${e.message}`));
    if (process.env.DIFUSION_LAB_KEEP !== '1') await rm(tmp, { recursive: true, force: true });
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    progress(`${signal}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const ctx: Section = {
    tmp,
    say,
    progress,
    descendants,
    runner: await leanRunner(path.join(tmp, 'runner')),
    track: (lab) => {
      labs.push(lab);
      return lab;
    },
  };
  try {
    const started = performance.now();
    const headlines: Headline[] = [];
    if (only !== 'wan') {
      headlines.push(...(await loopbackSection(ctx)));
      // The loopback lab's sshd are not needed any more: free the CPU for the link sections.
      for (const lab of labs.splice(0)) await lab.stop();
    }
    if (only !== 'loopback') headlines.push(...(await wanSection(ctx)));
    say();
    say(`side by side, one run (${secs(performance.now() - started)}, load average ${(os.loadavg()[0] as number).toFixed(2)} at the end):`);
    for (const h of headlines) say(`  ${pad(h.label, 64)} ${h.value}`);
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

if (process.argv[2] === '--plain') {
  await plainRunner(JSON.parse(process.argv[3] as string) as PlainJob);
} else if (process.argv[2] === '--runner') {
  await runner(JSON.parse(process.argv[3] as string) as RunnerJob);
  // ssh2 sockets closing in the background must not hold the process (or its RSS figure) open.
  process.exit(0);
} else {
  await main();
}
