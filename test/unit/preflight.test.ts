import { localDifusor } from './support/difusor.js';
import { deltaBytes, predictLive, preflight } from '../../src/core/preflight.js';
import type { DifusorConnector, HelperOutput } from '../../src/ports/difusor.js';

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

describe('predictLive and deltaBytes', () => {
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
