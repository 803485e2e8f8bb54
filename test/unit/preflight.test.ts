import { localDifusor } from './support/difusor.js';
import { deltaBytes, estimateSpeed, predictLive, preflight } from '../../src/core/publish/preflight.js';
import { compressible } from '../../src/core/publish/compression.js';
import { HELPER_PROTOCOL } from '../../src/core/publish/status.js';
import type { DifusorConnector, HelperOutput } from '../../src/adapters/difusor.js';

const difusor = localDifusor;

/** A connector whose `throughput` takes the time a link of `bytesPerMs` would, on a clock the test owns. */
function fakeLinks(bytesPerMs: Record<string, number>, clock: { t: number }, answer?: (stdin: string) => HelperOutput): DifusorConnector {
  return {
    open: async (d) => ({
      helper: async (verb, _args, opts = {}) => {
        clock.t += 10;
        if (verb === 'status') return { code: 0, stdout: 'free 100000000\nrsync 3.1.2\nwritable yes\n', stderr: '' };
        if (verb === 'throughput') {
          const stdin = opts.stdin ?? '';
          clock.t += stdin.length / (bytesPerMs[d.id] as number);
          return answer?.(stdin) ?? { code: 0, stdout: `received ${stdin.length}\n`, stderr: '' };
        }
        return { code: 2, stdout: '', stderr: `unexpected ${verb}` };
      },
      transfer: async () => ({ filesSent: 0, bytesSent: 0 }),
      close: () => undefined,
    }),
    dispose: async () => undefined,
  };
}

const httpGet = async () => ({ ok: true, status: 200 });

describe('preflight speed', () => {
  it('measures each link, predicts the delta live time, and names the one beyond the minute (exit 3)', async () => {
    // One difusor per run: the fake's clock is shared, so concurrent links would charge each other's time.
    const run = async (id: string) => {
      const clock = { t: 0 };
      return preflight(
        [difusor(id)],
        { neededBytes: 0, httpTimeoutMs: 1000, speed: { probeBytes: 1_000_000, deltaBytes: 20_000_000, limitSeconds: 60 } },
        // 10 MB/s and 250 kB/s (2 Mbit/s).
        { connector: fakeLinks({ fast: 10_000, thin: 250 }, clock), httpGet, now: () => clock.t },
      );
    };
    const [fastReport, thinReport] = [await run('fast'), await run('thin')];
    expect(fastReport.exitCode).toBe(0);
    const report = { exitCode: thinReport.exitCode, difusores: [...fastReport.difusores, ...thinReport.difusores] };
    const fast = report.difusores[0];
    const thin = report.difusores[1];
    expect(fast?.checks.filter((c) => !c.ok)).toEqual([]);
    expect(fast?.ready).toBe(true);
    expect(fast?.speed?.predictedSeconds).toBeLessThan(60);
    expect(thin?.ready).toBe(false);
    expect(thin?.speed?.bytesPerSecond).toBeGreaterThan(200_000);
    expect(thin?.speed?.bytesPerSecond).toBeLessThan(300_000);
    expect(thin?.checks.find((c) => c.name === 'speed')?.detail).toMatch(/^2\.0 Mbit\/s: the newest cut's delta \(20\.0 MB\) would take ~8\d\.\d s, beyond the 60 s rule/);
    expect(report.exitCode).toBe(3);
  });

  it('a thin link is told what compression would do; a difusor with compress: true is predicted on the compressed delta', async () => {
    const speed = { probeBytes: 1_000_000, deltaBytes: 20_000_000, compressedDeltaBytes: 14_000_000, limitSeconds: 60 };
    const run = async (d: ReturnType<typeof difusor>) => {
      const clock = { t: 0 };
      return preflight([d], { neededBytes: 0, httpTimeoutMs: 1000, speed }, { connector: fakeLinks({ [d.id]: 250 }, clock), httpGet, now: () => clock.t });
    };
    const plain = (await run(difusor('thin'))).difusores[0];
    expect(plain?.checks.find((c) => c.name === 'speed')?.detail).toMatch(
      /^2\.0 Mbit\/s: the newest cut's delta \(20\.0 MB\) would take ~8\d\.\d s, beyond the 60 s rule; with compress: true it would send 14\.0 MB and be live in ~5\d\.\d s; give this difusor/,
    );
    const zipped = await run({ ...difusor('thin'), compress: true });
    expect(zipped.exitCode).toBe(0);
    expect(zipped.difusores[0]?.speed).toMatchObject({ deltaBytes: 20_000_000, wireBytes: 14_000_000 });
    expect(zipped.difusores[0]?.checks.find((c) => c.name === 'speed')?.detail).toMatch(/delta \(20\.0 MB, 14\.0 MB compressed\) would be live in ~5\d\.\d s$/);
  });

  it('a timed transfer that comes back short is a failure, not a speed', async () => {
    const clock = { t: 0 };
    const report = await preflight(
      [difusor('a')],
      { neededBytes: 0, httpTimeoutMs: 1000, speed: { probeBytes: 1000, deltaBytes: 0, limitSeconds: 60 } },
      { connector: fakeLinks({ a: 100 }, clock, () => ({ code: 2, stdout: '', stderr: 'difusion-helper: cannot write under /srv/a/.staging' })), httpGet, now: () => clock.t },
    );
    expect(report.difusores[0]?.checks.find((c) => c.name === 'speed')).toEqual({
      name: 'speed',
      ok: false,
      detail: 'the timed transfer failed: difusion-helper: cannot write under /srv/a/.staging',
    });
  });
});

describe('preflight: the installed helper of a restricted difusor', () => {
  const statusSaying = (protocol: string): DifusorConnector => ({
    open: async () => ({
      helper: async () => ({ code: 0, stdout: `free 100000000\n${protocol}rsync 3.1.2\nwritable yes\n`, stderr: '' }),
      transfer: async () => ({ filesSent: 0, bytesSent: 0 }),
      close: () => undefined,
    }),
    dispose: async () => undefined,
  });
  const run = (d: ReturnType<typeof difusor>, protocol: string) =>
    preflight([d], { neededBytes: 0, httpTimeoutMs: 1000 }, { connector: statusSaying(protocol), httpGet });

  it('names one older than this client: not ready, with what to do', async () => {
    const report = await run({ ...difusor('radio'), access: 'restricted' }, '');
    expect(report.exitCode).toBe(3);
    expect(report.difusores[0]?.checks.find((c) => c.name === 'helper')).toEqual({
      name: 'helper',
      ok: false,
      detail: `the installed helper speaks protocol 1, this difusion needs ${HELPER_PROTOCOL}: the difusor's admin reinstalls it (difusion onboard radio prints it); until then every publish fails there`,
    });
  });

  it('accepts the current one, and never asks it of a shell account (its helper is sent inline)', async () => {
    expect((await run({ ...difusor('radio'), access: 'restricted' }, `protocol ${HELPER_PROTOCOL}\n`)).exitCode).toBe(0);
    expect((await run(difusor('uni'), '')).exitCode).toBe(0);
  });
});

describe('predictLive, deltaBytes and compression', () => {
  it('gives no compression advice where it would not gain a second', () => {
    const link = { connectMs: 0, roundTripMs: 0, bytesPerSecond: 10_000_000 };
    expect(estimateSpeed(link, { probeBytes: 0, deltaBytes: 20_000_000, compressedDeltaBytes: 15_000_000, limitSeconds: 60 }, false).compressedSeconds).toBeUndefined();
    expect(estimateSpeed(link, { probeBytes: 0, deltaBytes: 20_000_000, compressedDeltaBytes: 5_000_000, limitSeconds: 60 }, false)).toMatchObject({ predictedSeconds: 2, compressedSeconds: 0.5 });
  });

  it('compresses text and names without a suffix, never images, archives or media (rsync --skip-compress)', () => {
    expect(['index.html', 'datos/resultados.csv', 'api/casillas.json', 'LEEME', 'a.b/c'].map(compressible)).toEqual([true, true, true, true, true]);
    expect(['actas/1.jpg', 'ACTA.JPG', 'base.zip', 'informe.pdf', 'x.tar.gz'].map(compressible)).toEqual([false, false, false, false, false]);
  });

  it('adds the connection and five round trips to the delta at the measured rate', () => {
    expect(predictLive({ connectMs: 500, roundTripMs: 100, bytesPerSecond: 1_000_000, deltaBytes: 12_000_000 })).toBe(13);
  });

  it('counts only new or changed files', () => {
    const next = [
      { path: 'a', size: 10, sha256: 'x' },
      { path: 'b', size: 20, sha256: 'y' },
      { path: 'c', size: 40, sha256: 'z' },
    ];
    expect(deltaBytes(next, new Map([['a', 'x'], ['b', 'old']]))).toBe(60);
    expect(deltaBytes(next, undefined)).toBe(70);
  });
});
