import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireLock, describeHolder, isLockHeld, processIsAlive, type Lock, type LockHolder } from '../../src/core/records/lock.js';

let stateDir: string;

beforeEach(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'difusion-lock-'));
});

afterEach(async () => {
  await rm(stateDir, { recursive: true, force: true });
});

const lockFile = (): string => join(stateDir, 'lock');

function asLock(result: Lock | { held: LockHolder }): Lock {
  if (isLockHeld(result)) throw new Error(`expected the lock, but it is held by ${describeHolder(result.held)}`);
  return result;
}

function holderRecord(overrides: Partial<LockHolder> = {}): LockHolder {
  return {
    pid: 4312,
    host: hostname(),
    user: 'prep',
    since: '2022-06-06T01:15:02.000Z',
    command: 'publish --latest',
    runId: '20220606T011502Z-aaaaaa',
    ...overrides,
  };
}

describe('acquireLock', () => {
  it('creates the state dir and writes who holds the lock', async () => {
    const nested = join(stateDir, 'a', '.difusion');
    const lock = asLock(
      await acquireLock(nested, { runId: 'run-1', command: 'publish' }, { user: 'operador', now: () => new Date('2022-06-06T01:00:00Z') }),
    );
    const written = JSON.parse(await readFile(join(nested, 'lock'), 'utf8')) as LockHolder;
    expect(written).toEqual({
      pid: process.pid,
      host: hostname(),
      user: 'operador',
      since: '2022-06-06T01:00:00.000Z',
      command: 'publish',
      runId: 'run-1',
    });
    expect(lock.holder).toEqual(written);
    expect(lock.tookOverFrom).toBeUndefined();
    expect(lock.takeoverReason).toBeUndefined();
    await lock.release();
  });

  it('of two concurrent runs, one holds the lock and the other learns who', async () => {
    const [a, b] = await Promise.all([
      acquireLock(stateDir, { runId: 'run-a', command: 'publish --latest' }, { pid: 1001, isAlive: () => true, user: 'cron' }),
      acquireLock(stateDir, { runId: 'run-b', command: 'publish 20220605_2015' }, { pid: 1002, isAlive: () => true, user: 'ana' }),
    ]);
    const winners = [a, b].filter((result) => !isLockHeld(result)) as Lock[];
    const losers = [a, b].filter(isLockHeld);
    expect(winners).toHaveLength(1);
    expect(losers).toHaveLength(1);
    const held = losers[0]!.held;
    expect(held).toEqual(winners[0]!.holder);
    expect(held.host).toBe(hostname());
    expect(typeof held.pid).toBe('number');
    expect(['cron', 'ana']).toContain(held.user);
    expect(Date.parse(held.since)).not.toBeNaN();
    expect(describeHolder(held)).toContain(`pid ${held.pid} (${held.user}@${held.host})`);
  });

  it('many concurrent runs in one process: exactly one holds it', async () => {
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, index) => acquireLock(stateDir, { runId: `run-${index}`, command: 'publish' })),
    );
    expect(results.filter((result) => !isLockHeld(result))).toHaveLength(1);
    for (const result of results.filter(isLockHeld)) expect(result.held.pid).toBe(process.pid);
  });

  it('a second run while the first is alive is refused, and may take it after release', async () => {
    const first = asLock(await acquireLock(stateDir, { runId: 'run-1', command: 'publish' }));
    const second = await acquireLock(stateDir, { runId: 'run-2', command: 'cutoff ujed' });
    expect(isLockHeld(second) && second.held.runId).toBe('run-1');
    await first.release();
    const third = asLock(await acquireLock(stateDir, { runId: 'run-3', command: 'cutoff ujed' }));
    expect(third.holder.runId).toBe('run-3');
    await third.release();
  });

  it('takes over from a dead process on this host and reports whom it replaced', async () => {
    const stale = holderRecord({ pid: 999_999 });
    await writeFile(lockFile(), JSON.stringify(stale) + '\n');
    const lock = asLock(
      await acquireLock(stateDir, { runId: 'run-new', command: 'publish' }, { isAlive: (pid) => pid !== 999_999 }),
    );
    expect(lock.tookOverFrom).toEqual(stale);
    expect(lock.takeoverReason).toContain('pid 999999');
    expect(JSON.parse(await readFile(lockFile(), 'utf8')).runId).toBe('run-new');
    await lock.release();
  });

  it('judges a really exited process dead with the default process check', async () => {
    const exited = spawnSync(process.execPath, ['-e', '0']).pid;
    await writeFile(lockFile(), JSON.stringify(holderRecord({ pid: exited })));
    const lock = asLock(await acquireLock(stateDir, { runId: 'run-new', command: 'publish' }));
    expect(lock.tookOverFrom?.pid).toBe(exited);
    await lock.release();
  });

  it('respects a live process on this host with the default process check', async () => {
    await writeFile(lockFile(), JSON.stringify(holderRecord({ pid: process.ppid })));
    const result = await acquireLock(stateDir, { runId: 'run-new', command: 'publish' });
    expect(isLockHeld(result) && result.held.pid).toBe(process.ppid);
  });

  it('only one of several runs takes over the same stale lock', async () => {
    await writeFile(lockFile(), JSON.stringify(holderRecord({ pid: 999_999 })));
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, index) =>
        acquireLock(stateDir, { runId: `run-${index}`, command: 'publish' }, { pid: 2000 + index, isAlive: (pid) => pid !== 999_999 }),
      ),
    );
    const winners = results.filter((result) => !isLockHeld(result)) as Lock[];
    expect(winners).toHaveLength(1);
    expect(winners[0]!.tookOverFrom?.pid).toBe(999_999);
    for (const result of results.filter(isLockHeld)) expect(result.held).toEqual(winners[0]!.holder);
    expect((await readdir(stateDir)).sort()).toEqual(['lock']);
  });

  it.each([
    ['empty', ''],
    ['half-written', '{"pid":4312,"host":"utc-pub'],
    ['not a lock record', '{"hello":"world"}'],
  ])('takes over a corrupt (%s) lock file', async (_label, content) => {
    await writeFile(lockFile(), content);
    const lock = asLock(await acquireLock(stateDir, { runId: 'run-new', command: 'publish' }));
    expect(lock.tookOverFrom).toBeUndefined();
    expect(lock.takeoverReason).toMatch(/lock file was (empty|not a lock record)/);
    expect(JSON.parse(await readFile(lockFile(), 'utf8')).runId).toBe('run-new');
    await lock.release();
  });

  it('takes over a lock left by an earlier run whose pid this process now has', async () => {
    await writeFile(lockFile(), JSON.stringify(holderRecord({ pid: process.pid, runId: 'crashed-run' })));
    const lock = asLock(await acquireLock(stateDir, { runId: 'run-new', command: 'publish' }));
    expect(lock.tookOverFrom?.runId).toBe('crashed-run');
    await lock.release();
  });

  it('respects a lock from another host, however old, unless staleAfterMs says otherwise', async () => {
    const remote = holderRecord({ host: 'otro-servidor', pid: 1, since: '2022-06-05T00:00:00.000Z' });
    await writeFile(lockFile(), JSON.stringify(remote));
    let processChecks = 0;
    const isAlive = (): boolean => {
      processChecks++;
      return false;
    };
    const now = () => new Date('2022-06-06T01:00:00Z');
    const held = await acquireLock(stateDir, { runId: 'run-new', command: 'publish' }, { isAlive, now });
    expect(isLockHeld(held) && held.held).toEqual(remote);
    expect(processChecks).toBe(0);

    const young = await acquireLock(stateDir, { runId: 'run-new', command: 'publish' }, { now, staleAfterMs: 26 * 3600_000 });
    expect(isLockHeld(young)).toBe(true);

    const lock = asLock(await acquireLock(stateDir, { runId: 'run-new', command: 'publish' }, { now, staleAfterMs: 3600_000 }));
    expect(lock.tookOverFrom).toEqual(remote);
    expect(lock.takeoverReason).toContain('otro-servidor');
    await lock.release();
  });
});

describe('Lock.release', () => {
  it('is idempotent', async () => {
    const lock = asLock(await acquireLock(stateDir, { runId: 'run-1', command: 'publish' }));
    await lock.release();
    await lock.release();
    await expect(readdir(stateDir)).resolves.toEqual([]);
  });

  it('does not remove a lock that is no longer ours', async () => {
    const lock = asLock(await acquireLock(stateDir, { runId: 'run-1', command: 'publish' }));
    const someoneElse = JSON.stringify(holderRecord({ runId: 'run-other' })) + '\n';
    await writeFile(lockFile(), someoneElse);
    await lock.release();
    expect(await readFile(lockFile(), 'utf8')).toBe(someoneElse);
  });

  it('a released run id in this process no longer counts as alive', async () => {
    const lock = asLock(await acquireLock(stateDir, { runId: 'run-1', command: 'publish' }));
    const content = await readFile(lockFile(), 'utf8');
    await lock.release();
    await writeFile(lockFile(), content);
    const next = asLock(await acquireLock(stateDir, { runId: 'run-2', command: 'publish' }));
    expect(next.tookOverFrom?.runId).toBe('run-1');
    await next.release();
  });
});

describe('processIsAlive', () => {
  test('a zombie (exited, not yet reaped) holds nothing', async () => {
    // sh forks a child that exits a moment later, once sh has become sleep, which never waits for it: a zombie.
    // (A child exiting at once could be reaped by sh itself before the exec, on a loaded machine.)
    const parent = spawn('sh', ['-c', 'sh -c "sleep 0.3; exit 0" & echo $!; exec sleep 5'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const pid = await new Promise<number>((resolve) => parent.stdout.once('data', (d: Buffer) => resolve(Number(String(d).trim()))));
    await new Promise((resolve) => setTimeout(resolve, 900));
    try {
      // Still in the process table (kill(pid, 0) succeeds), so only the zombie check can call it dead.
      expect(() => process.kill(pid, 0)).not.toThrow();
      expect(processIsAlive(pid)).toBe(false);
      expect(processIsAlive(process.pid)).toBe(true);
    } finally {
      parent.kill('SIGKILL');
    }
  });
});
