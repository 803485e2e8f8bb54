/**
 * `npm run bench:probe`: what a probe costs the publication host, side by side with baselines taken in the
 * same run on the same lab (8 difusores, each a real Apache with the project's vhost, serving a PREP-shaped cut).
 *
 * - CPU seconds of a default probe of every difusor (the built CLI, user + system, as cron would run it), next
 *   to the CPU of the same CLI doing nothing (`--version`): the target is under 1 s. Measured twice: the CLI as
 *   `npm run build` leaves it, and as baseline a copy of it without what scripts/build-dist.mjs adds for
 *   start-up (dist/ as oclif root with a manifest, the precompiled registry validator): that copy runs as the
 *   CLI did before, oclif importing every command (ssh2, execa, listr2…) and ajv compiling the schema.
 * - the same default probe with `--roster DIR --metrics FILE`, as a ratio to the one without (target: under 1.10).
 * - `--full` throughput of one difusor (every file fetched, streamed and hashed) in MB/s, next to `curl`
 *   fetching the same files with the same parallelism (4 connections, keep-alive) into /dev/null.
 *
 *   BENCH_CASILLAS=1200   casillas in the cut (two acta images each)
 *   BENCH_IMAGE_KB=120    size of each acta image
 *   BENCH_DIFUSORES=8
 *   BENCH_REPEATS=3       repeats of each measure, order rotated; medians reported
 *   BENCH_CPU_PROF=DIR    write V8 CPU profiles of the probe runs there
 * The difusores' copies are hard links of one published release, so 8 of them cost the disk of one.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { listFiles, writeCut } from './prep-cut.js';
import { buildCli } from './build-cli.js';
import { publish } from '../test/integration/support/publish.js';
import { startVhost } from '../test/integration/lab/vhost.js';
import type { Apache } from '../test/integration/lab/apache.js';
import type { ProbeReport } from '../src/core/probe/probe.js';

const exec = promisify(execFile);
const ROOT = path.resolve(fileURLToPath(new URL('.', import.meta.url)), '..');
const CASILLAS = Number(process.env.BENCH_CASILLAS ?? 1200);
const IMAGE_KB = Number(process.env.BENCH_IMAGE_KB ?? 120);
const DIFUSORES = Number(process.env.BENCH_DIFUSORES ?? 8);
const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);
const C1 = '20220605_2100_PREP_DGO';
const C2 = '20220605_2115_PREP_DGO';
const CPU_TARGET_S = 1;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

/** user + system CPU seconds and wall seconds of one command, from GNU time. */
async function timed(cmd: string, args: string[]): Promise<{ cpu: number; wall: number; stdout: string; code: number }> {
  const timeFile = path.join(os.tmpdir(), `difusion-bench-time-${process.pid}`);
  let stdout = '';
  let code = 0;
  try {
    ({ stdout } = await exec('/usr/bin/time', ['-o', timeFile, '-f', '%U %S %e', cmd, ...args], { cwd: ROOT, maxBuffer: 64 << 20, env: { ...process.env, NO_COLOR: '1' } }));
  } catch (error) {
    const e = error as { stdout?: string; code?: number };
    stdout = e.stdout ?? '';
    code = e.code ?? 1;
  }
  const [user, sys, wall] = readFileSync(timeFile, 'utf8').trim().split('\n').at(-1)!.split(' ').map(Number) as [number, number, number];
  await rm(timeFile, { force: true });
  return { cpu: user + sys, wall, stdout, code };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'difusion-probe-bench-'));
  // Apache runs as www-data and must walk down to the difusores' files.
  await chmod(dir, 0o755);
  const apaches: Apache[] = [];
  try {
    process.stdout.write(`building the CLI and a cut of ${CASILLAS} casillas (${IMAGE_KB} KB images)…\n`);
    const built = await buildCli(dir, (line) => process.stdout.write(`${line}\n`));
    const pkg = path.dirname(path.dirname(built));
    const cuts = path.join(dir, 'cortes');
    const shape = { casillas: CASILLAS, counted: Math.floor(CASILLAS * 0.9), imageBytes: IMAGE_KB * 1024, seed: 'probe-bench' };
    await writeCut(path.join(cuts, C1), C1, { ...shape, counted: Math.floor(CASILLAS * 0.85) });
    await writeCut(path.join(cuts, C2), C2, shape, path.join(cuts, C1));

    const espejo = (n: number) => path.join(dir, 'espejos', `d${n}`);
    const registryOf = (urls: string[]) =>
      stringify({
        version: 1,
        publication: {
          timezone: 'America/Mexico_City',
          window: { start: '2022-06-05T20:00', end: '2022-06-06T20:00' },
          concurrency: 8,
          state_dir: path.join(dir, 'state'),
        },
        difusores: urls.map((url, i) => ({ id: `d${i + 1}`, name: `Difusor ${i + 1}`, transport: 'local', path: espejo(i + 1), public_url: url })),
      });
    const registry = path.join(dir, 'difusores.yaml');
    await mkdir(espejo(1), { recursive: true });
    await writeFile(registry, registryOf(['http://127.0.0.1/']));
    for (const cut of [C1, C2]) {
      const result = await publish(registry, path.join(cuts, cut));
      if (result.exitCode !== 0) throw new Error(`publish of ${cut} failed: ${JSON.stringify(result.outcomes)}`);
    }
    for (let n = 2; n <= DIFUSORES; n++) await exec('cp', ['-al', espejo(1), espejo(n)]);
    for (let n = 1; n <= DIFUSORES; n++) apaches.push(await startVhost({ id: `d${n}`, path: espejo(n) }));
    await writeFile(registry, registryOf(apaches.map((a) => a.url)));

    const files = ['MANIFEST.sha256', ...(await listFiles(path.join(cuts, C2)))];
    let totalBytes = 0;
    for (const f of files) totalBytes += (await stat(path.join(espejo(1), 'current', f))).size;
    const curlConfig = path.join(dir, 'curl.cfg');
    const bust = Date.now();
    await writeFile(
      curlConfig,
      files.map((f, i) => `url = "${apaches[0]!.url}${f.split('/').map(encodeURIComponent).join('/')}?bench=${bust}-${i}"\noutput = "/dev/null"\n`).join(''),
    );

    const baseline = path.join(dir, 'cli');
    await mkdir(baseline);
    for (const entry of ['bin', 'dist', 'templates', 'schema', 'package.json']) await exec('cp', ['-r', path.join(pkg, entry), baseline]);
    await symlink(path.join(ROOT, 'node_modules'), path.join(baseline, 'node_modules'));
    // Without dist/package.json, bin/run.js's oclif finds the repository's package.json, as before.
    for (const extra of ['dist/package.json', 'dist/oclif.manifest.json', 'dist/core/registry/registry-validator.cjs']) await rm(path.join(baseline, extra));

    const profile = process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF] : [];
    const cli = [...profile, built];
    const board = path.join(dir, 'sitio', 'difusores');
    const baselineCli = [...profile, path.join(baseline, 'bin/run.js')];
    const samples = {
      idle: [] as number[],
      idleWall: [] as number[],
      probe: [] as number[],
      probeWall: [] as number[],
      probeRoster: [] as number[],
      idleBaseline: [] as number[],
      probeBaseline: [] as number[],
      full: [] as number[],
      fullCpu: [] as number[],
      curl: [] as number[],
      curlCpu: [] as number[],
    };
    let checked = 0;
    let fullBytes = 0;
    for (let r = 0; r < REPEATS; r++) {
      const steps: Array<() => Promise<void>> = [
        async () => {
          const run = await timed('node', [...cli, '--version']);
          samples.idle.push(run.cpu);
          samples.idleWall.push(run.wall);
        },
        async () => {
          const run = await timed('node', [...cli, 'probe', '--registry', registry, '--json']);
          const report = JSON.parse(run.stdout) as ProbeReport;
          if (report.exitCode !== 0) throw new Error(`the default probe failed: ${run.stdout}`);
          checked = report.difusores.reduce((n, d) => n + d.filesChecked, 0);
          samples.probe.push(run.cpu);
          samples.probeWall.push(run.wall);
        },
        async () => {
          // The same round writing the public board and the metrics: what --roster costs a round.
          const run = await timed('node', [...cli, 'probe', '--registry', registry, '--json', '--roster', board, '--metrics', path.join(dir, 'difusion.prom')]);
          if ((JSON.parse(run.stdout) as ProbeReport).exitCode !== 0) throw new Error(`the probe with --roster failed: ${run.stdout}`);
          samples.probeRoster.push(run.cpu);
        },
        async () => {
          samples.idleBaseline.push((await timed('node', [...baselineCli, '--version'])).cpu);
        },
        async () => {
          const run = await timed('node', [...baselineCli, 'probe', '--registry', registry, '--json']);
          if ((JSON.parse(run.stdout) as ProbeReport).exitCode !== 0) throw new Error(`the default probe failed: ${run.stdout}`);
          samples.probeBaseline.push(run.cpu);
        },
        async () => {
          const run = await timed('node', [...cli, 'probe', '--registry', registry, '--json', '--full', '--only', 'd1']);
          const report = JSON.parse(run.stdout) as ProbeReport;
          if (report.exitCode !== 0) throw new Error(`the full probe failed: ${run.stdout.slice(0, 2000)}`);
          fullBytes = report.difusores[0]!.bytes;
          samples.full.push(run.wall);
          samples.fullCpu.push(run.cpu);
        },
        async () => {
          const run = await timed('curl', ['-s', '-f', '-H', 'Cache-Control: no-cache', '-Z', '--parallel-max', '4', '-K', curlConfig]);
          if (run.code !== 0) throw new Error(`curl failed (exit ${run.code})`);
          samples.curl.push(run.wall);
          samples.curlCpu.push(run.cpu);
        },
      ];
      for (let i = 0; i < steps.length; i++) await steps[(i + r) % steps.length]!();
    }

    const mb = (bytes: number) => bytes / 1e6;
    const probeCpu = median(samples.probe);
    const idleCpu = median(samples.idle);
    const baselineCpu = median(samples.probeBaseline);
    const baselineIdle = median(samples.idleBaseline);
    const rosterCpu = median(samples.probeRoster);
    const probeMBs = mb(fullBytes) / median(samples.full);
    const probeNetMBs = mb(fullBytes) / (median(samples.full) - median(samples.idleWall));
    const curlMBs = mb(totalBytes) / median(samples.curl);
    const lines = [
      '',
      `lab: ${DIFUSORES} difusores (Apache, project vhost), cut ${C2}: ${files.length} files, ${mb(totalBytes).toFixed(1)} MB; ${REPEATS} repeats, medians`,
      '',
      `default probe of ${DIFUSORES} difusores (${checked} files fetched and hashed in all):`,
      `                                        as built   baseline (no manifest, ajv compiles)`,
      `  CPU of the CLI process, probe          ${probeCpu.toFixed(2)} s     ${baselineCpu.toFixed(2)} s   (wall as built ${median(samples.probeWall).toFixed(2)} s)`,
      `  CPU of the same CLI, --version         ${idleCpu.toFixed(2)} s     ${baselineIdle.toFixed(2)} s   (start-up: node, oclif, modules)`,
      `  probe work alone                       ${(probeCpu - idleCpu).toFixed(2)} s     ${(baselineCpu - baselineIdle).toFixed(2)} s`,
      `  over the ${CPU_TARGET_S} s CPU target                  ${(probeCpu / CPU_TARGET_S).toFixed(2)}×      ${(baselineCpu / CPU_TARGET_S).toFixed(2)}×   (under 1× meets it)`,
      `  as built / baseline: probe ${(probeCpu / baselineCpu).toFixed(2)}×, --version ${(idleCpu / baselineIdle).toFixed(2)}×`,
      '',
      `the same round with --roster DIR --metrics FILE (the board and the textfile written after it), as built:`,
      `  CPU of the CLI process                 ${rosterCpu.toFixed(2)} s   vs ${probeCpu.toFixed(2)} s without: ${(rosterCpu / probeCpu).toFixed(2)}× (target under 1.10×)`,
      `  net of start-up                        ${(rosterCpu - idleCpu).toFixed(2)} s   vs ${(probeCpu - idleCpu).toFixed(2)} s without: ${((rosterCpu - idleCpu) / (probeCpu - idleCpu)).toFixed(2)}×`,
      '',
      `--full of one difusor, every file, side by side with curl (4 parallel connections, keep-alive):`,
      `  difusion probe --full   ${probeMBs.toFixed(1)} MB/s   (${mb(fullBytes).toFixed(1)} MB, wall ${median(samples.full).toFixed(2)} s, CPU ${median(samples.fullCpu).toFixed(2)} s, hashing every byte)`,
      `    net of its start-up   ${probeNetMBs.toFixed(1)} MB/s   (wall minus the CLI's --version wall, ${median(samples.idleWall).toFixed(2)} s)`,
      `  curl > /dev/null        ${curlMBs.toFixed(1)} MB/s   (${mb(totalBytes).toFixed(1)} MB, wall ${median(samples.curl).toFixed(2)} s, CPU ${median(samples.curlCpu).toFixed(2)} s)`,
      `  probe / curl throughput: ${(probeMBs / curlMBs).toFixed(2)} end to end, ${(probeNetMBs / curlMBs).toFixed(2)} net of start-up`,
      '',
    ];
    process.stdout.write(lines.join('\n'));
  } finally {
    for (const a of apaches) await a.stop();
    if (process.env.DIFUSION_LAB_KEEP !== '1') await rm(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
