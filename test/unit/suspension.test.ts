import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { cutoff, checkReason, restoreNotices, type CutoffPlan, type ReinstatePlan } from '../../src/core/enforcement/suspension.js';
import { writeFileSync } from 'node:fs';
import { StateStore } from '../../src/core/records/state.js';
import { chooseTarget, rollback } from '../../src/core/enforcement/rollback.js';
import { readHold } from '../../src/core/records/hold.js';
import { NOTICE_FAILED, RunRefusal } from '../../src/core/publish/publish-run.js';
import { parseRegistry } from '../../src/core/registry/registry.js';
import type { RegistryStore } from '../../src/core/registry/registry-edit.js';
import type { Journal, JournalRecord } from '../../src/core/records/journal.js';
import type { DifusorConnector, HelperOutput } from '../../src/adapters/difusor.js';
import type { Registry } from '../../src/core/registry/types.js';

/** The cutoff core with its ports faked: a difusor that is down, one whose disk refuses the notice, a registry that cannot be written. */

const TEMPLATE = readFileSync(new URL('../../templates/aviso.html', import.meta.url), 'utf8');
const NOW = new Date('2022-06-06T02:10:00Z');

let stateDir: string;
beforeEach(() => {
  stateDir = mkdtempSync(path.join(tmpdir(), 'difusion-susp-unit-'));
});
afterEach(() => rmSync(stateDir, { recursive: true, force: true }));

function registryText(suspended?: { at: string; reason: string }): string {
  return [
    'version: 1',
    'publication:',
    '  timezone: America/Mexico_City',
    "  window: { start: '2022-06-05T20:00', end: '2022-06-06T20:00' }",
    `  state_dir: ${stateDir}`,
    'difusores:',
    '  - id: ujed',
    '    name: UJED',
    '    transport: local',
    '    path: /srv/ujed',
    '    public_url: http://localhost/ujed/',
    ...(suspended ? ['    status: suspended', `    suspended_at: '${suspended.at}'`, `    suspension_reason: ${suspended.reason}`] : []),
    '',
  ].join('\n');
}

function setup(
  helper: (verb: string, args: string[]) => HelperOutput | Error,
  opts: { writeFails?: boolean; suspended?: { at: string; reason: string }; leaseAnswers?: boolean } = {},
) {
  const parsed = parseRegistry(registryText(opts.suspended), path.join(stateDir, 'difusores.yaml'));
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  const registry: Registry = parsed.registry;
  let text = registryText(opts.suspended);
  const calls: string[] = [];
  /** The difusor's lease (taken before anything changes there, released after), apart from the steps. */
  const leaseCalls: string[] = [];
  const journal: JournalRecord[] = [];
  const store: RegistryStore = {
    read: async () => text,
    write: async (t) => {
      if (opts.writeFails) throw new Error('EROFS: read-only file system');
      text = t;
    },
  };
  const connector: DifusorConnector = {
    open: async () => ({
      helper: async (verb, args) => {
        if (verb === 'lease' && !opts.leaseAnswers) {
          leaseCalls.push([verb, ...args].join(' '));
          return ok(`now 100\n${args[0] === 'release' ? 'released' : 'taken 100 220'}\n`);
        }
        calls.push([verb, ...args].join(' '));
        const out = helper(verb, args);
        if (out instanceof Error) throw out;
        return out;
      },
      transfer: async () => {
        throw new Error('no transfer in a cutoff');
      },
      close: () => undefined,
    }),
    dispose: async () => undefined,
  };
  const ports = {
    clock: { now: () => NOW, fromEnv: false },
    connect: async () => connector,
    openJournal: async (): Promise<Journal> => ({
      file: 'journal.jsonl',
      append: async (record) => {
        journal.push(record);
        return { ...record, seq: journal.length, at: NOW.toISOString(), run: 'r', operator: 'o', command: 'c', prev: '' };
      },
    }),
    newRunId: () => 'run-1',
    registry: store,
    noticeTemplate: TEMPLATE,
    confirm: async () => true,
  };
  return { registry, ports, calls, leaseCalls, journal, text: () => text };
}

const ok = (stdout = ''): HelperOutput => ({ code: 0, stdout, stderr: '' });

describe('cutoff with its ports faked', () => {
  test('a difusor that does not answer: the registry says suspended all the same, exit 1, journaled as failed', async () => {
    const s = setup(() => new Error('connect ECONNREFUSED 203.0.113.7:22'));
    const result = await cutoff({ registry: s.registry, id: 'ujed', reason: 'r' }, s.ports);
    expect(result).toMatchObject({ exitCode: 1, notice: '20220605_211000', error: expect.stringContaining('ECONNREFUSED') });
    expect(s.text()).toContain('status: suspended');
    expect(s.journal).toEqual([expect.objectContaining({ phase: 'cutoff', result: 'failed', difusor: 'ujed', detail: { reason: 'r', notice: '20220605_211000', from: null } })]);
  });

  test('a disk that refuses the notice: nothing is switched, exit 1 names the helper\'s words', async () => {
    const s = setup((verb) => (verb === 'status' ? ok('live 20220605_2015\n') : verb === 'notice-switch' ? { code: 2, stdout: '', stderr: 'difusion-helper: cannot move the notice into notices/20220605_211000\n' } : ok()));
    const result = await cutoff({ registry: s.registry, id: 'ujed', reason: 'r' }, s.ports);
    expect(result).toMatchObject({ exitCode: 1, error: 'notice-switch failed (exit 2): difusion-helper: cannot move the notice into notices/20220605_211000' });
    expect(s.calls).toEqual([
      'status',
      'notice-put 20220605_211000 index.html',
      'notice-put 20220605_211000 aviso.json',
      'notice-put 20220605_211000 MANIFEST.sha256',
      'notice-switch 20220605_211000',
      // What the refused switch left staged is freed before the run ends.
      'discard --notice 20220605_211000',
    ]);
  });

  test('a registry that cannot be written stops the cutoff before anything reaches the difusor', async () => {
    const s = setup((verb) => (verb === 'status' ? ok('live 20220605_2015\n') : ok()), { writeFails: true });
    await expect(cutoff({ registry: s.registry, id: 'ujed', reason: 'r' }, s.ports)).rejects.toThrow(/EROFS/);
    expect(s.calls).toEqual(['status']);
    expect(s.journal).toEqual([expect.objectContaining({ phase: 'cutoff', result: 'failed', error: expect.stringContaining('registry: EROFS') })]);
  });

  test('a switch that leaves current elsewhere is a failure, and a live notice\'s stamp is not reused', async () => {
    const s = setup((verb) => (verb === 'status' ? ok('notice 20220605_211000\n') : verb === 'notice-switch' ? ok('live releases/x\n') : ok()));
    const result = await cutoff({ registry: s.registry, id: 'ujed', reason: 'r' }, s.ports);
    expect(result).toMatchObject({ exitCode: 1, notice: '20220605_211001', error: 'current points to releases/x after the switch' });
  });

  test('run again on a suspended difusor: the notice goes up, the reason may change, the moment of the suspension does not', async () => {
    const s = setup((verb) => (verb === 'status' ? ok('live 20220605_2015\n') : verb === 'notice-switch' ? ok('live notices/20220605_200500\n') : ok()), {
      suspended: { at: '2022-06-05T20:05:00-05:00', reason: 'Alteró cifras' },
    });
    let shown = '';
    const confirm = async (plan: CutoffPlan | ReinstatePlan) => ((shown = plan.action === 'cutoff' ? plan.local : ''), true);
    const result = await cutoff({ registry: s.registry, id: 'ujed', reason: 'Alteró cifras del acta 12' }, { ...s.ports, confirm });
    expect(shown).toMatch(/^2022-06-05 20:05/);
    expect(result).toMatchObject({ exitCode: 0, notice: '20220605_200500' });
    expect(s.text()).toContain("suspended_at: '2022-06-05T20:05:00-05:00'");
    expect(s.text()).toContain('suspension_reason: "Alteró cifras del acta 12"');
    const aviso = s.calls.find((c) => c.startsWith('notice-put 20220605_200500 aviso.json'));
    expect(aviso).toBeDefined();
    expect(s.journal).toEqual([
      expect.objectContaining({ phase: 'cutoff', result: 'ok', detail: expect.objectContaining({ suspendedSince: '2022-06-05T20:05:00-05:00' }) }),
    ]);
  });

  test('another run holds the difusor\'s lease (perhaps forged by its admin): the difusor left alone, suspended in the registry all the same, its notice left to the next publish, exit 3 naming the holder', async () => {
    const s = setup(
      (verb, args) =>
        verb === 'status' ? ok('live 20220605_2015\n') : verb === 'lease' && args[0] === 'take' ? ok('now 1654480000\nheld sitio-b run-b 1654479990 1654480100\n') : ok(),
      { leaseAnswers: true },
    );
    const result = await cutoff({ registry: s.registry, id: 'ujed', reason: 'r' }, s.ports);
    expect(result).toMatchObject({ exitCode: 3, leftAlone: 'held', error: expect.stringMatching(/^held by sitio-b \(run run-b\) since 2022-06-06T01:46:30Z, 100 s left/) });
    expect(s.calls).toEqual(['status', expect.stringMatching(/^lease take \S+ run-1 120 --host-lock$/)]);
    expect(s.text()).toContain('status: suspended');
    expect(s.journal).toEqual([expect.objectContaining({ phase: 'cutoff', result: 'failed', detail: expect.objectContaining({ leftAlone: 'held' }) })]);
    // Every later publish says the notice is missing, and puts it up once it holds the lease.
    expect((await new StateStore(s.registry.publication.state_dir).readRecord('ujed')).lastResult).toMatchObject({ result: NOTICE_FAILED });
  });

  test('the lease is taken before the registry changes and released after the switch', async () => {
    const s = setup((verb) => (verb === 'status' ? ok('live 20220605_2015\n') : verb === 'notice-switch' ? ok('live notices/20220605_211000\n') : ok()));
    const result = await cutoff({ registry: s.registry, id: 'ujed', reason: 'r' }, s.ports);
    expect(result).toMatchObject({ exitCode: 0 });
    expect(s.leaseCalls).toEqual([expect.stringMatching(/^lease take \S+ run-1 120 --host-lock$/), expect.stringMatching(/^lease release \S+ run-1$/)]);
  });

  test('"no" at the prompt: nothing is asked of the difusor but its status, nothing is written', async () => {
    const s = setup((verb) => (verb === 'status' ? ok('live 20220605_2015\n') : ok()));
    const result = await cutoff({ registry: s.registry, id: 'ujed', reason: 'r' }, { ...s.ports, confirm: async () => false });
    expect(result).toEqual({ cancelled: true, exitCode: 1 });
    expect(s.calls).toEqual(['status']);
    expect(s.text()).toBe(registryText());
    expect(s.journal).toEqual([]);
  });
});

describe('a notice a later publish puts back up (restoreNotices), under the difusor\'s lease', () => {
  const suspended = { at: '2022-06-05T20:05:00-05:00', reason: 'sin respuesta' };
  const claim = { host: 'primario', run: 'run-7', seconds: 120, hostLocked: true };

  /** A suspension whose cutoff could not deliver its notice, as the publish finds it: the registry on disk, the record. */
  async function missingNotice(helper: Parameters<typeof setup>[0]) {
    const s = setup(helper, { suspended, leaseAnswers: true });
    writeFileSync(s.registry.file, s.text());
    await new StateStore(stateDir).recordResult('ujed', { at: NOW.toISOString(), cut: '20220605_200500', result: 'notice-failed', error: 'ssh: connect timed out' });
    const journal = await s.ports.openJournal();
    const restore = () => restoreNotices(s.registry, ['ujed'], { connect: s.ports.connect, journal, noticeTemplate: TEMPLATE, clock: s.ports.clock, lease: claim });
    return { ...s, restore };
  }
  const lease = (answer: string) => (verb: string, args: string[]) =>
    verb === 'lease' ? ok(args[0] === 'release' ? 'now 1\nreleased\n' : answer) : verb === 'status' ? ok('live 20220605_2015\n') : verb === 'notice-switch' ? ok(`live notices/${args[0]}\n`) : ok();

  test('taken before anything is asked or written there, released after the switch', async () => {
    const s = await missingNotice(lease('now 1\ntaken 1 121\n'));
    const [restored] = await s.restore();
    expect(restored).toEqual({ id: 'ujed', notice: expect.stringMatching(/^\d{8}_\d{6}$/) });
    expect(s.calls[0]).toBe('lease take primario run-7 120 --host-lock');
    expect(s.calls[1]).toBe('status');
    expect(s.calls.slice(-2)).toEqual([`notice-switch ${restored?.notice}`, 'lease release primario run-7']);
    expect((await new StateStore(stateDir).readRecord('ujed')).lastResult).toMatchObject({ result: 'notice' });
  });

  test('another run\'s live lease: left alone (nothing asked, nothing written), named, still missing for the next publish', async () => {
    const s = await missingNotice(lease('now 1654480000\nheld alterno run-b 1654479990 1654480100\n'));
    const [restored] = await s.restore();
    expect(restored).toMatchObject({ id: 'ujed', leftAlone: 'held', error: expect.stringMatching(/^held by alterno \(run run-b\) since 2022-06-06T01:46:30Z, 100 s left/) });
    expect(s.calls).toEqual(['lease take primario run-7 120 --host-lock']);
    expect(s.journal).toEqual([expect.objectContaining({ phase: 'cutoff', result: 'failed', difusor: 'ujed', detail: expect.objectContaining({ retry: true, leftAlone: 'held', host: 'primario' }) })]);
    expect((await new StateStore(stateDir).readRecord('ujed')).lastResult).toMatchObject({ result: 'notice-failed', error: expect.stringMatching(/^held by alterno/) });
  });

  test('an expired lease is taken over and journaled with whose it was', async () => {
    const s = await missingNotice(lease('now 2000\ntakeover alterno run-b 900 1020\ntaken 2000 2120\n'));
    const [restored] = await s.restore();
    expect(restored?.error).toBeUndefined();
    expect(s.journal.map((e) => `${e.phase} ${e.result}`)).toEqual(['lease-takeover info', 'cutoff ok']);
    expect(s.journal[0]).toMatchObject({ difusor: 'ujed', detail: { host: 'primario', tookOverFrom: { host: 'alterno', run: 'run-b' } } });
  });

  test('an older helper that has no lease verb: not put up, said (as a difusor whose lease cannot be asked)', async () => {
    const s = await missingNotice((verb) => (verb === 'lease' ? { code: 2, stdout: '', stderr: 'difusion-helper: refused: unknown verb lease\n' } : ok()));
    const [restored] = await s.restore();
    expect(restored).toMatchObject({ error: expect.stringContaining('unknown verb lease') });
    expect(restored?.leftAlone).toBeUndefined();
    expect(s.calls).toEqual(['lease take primario run-7 120 --host-lock']);
  });
});

describe('checkReason', () => {
  test('trims, and refuses empty, multi-line, invisible-character and overlong reasons', () => {
    expect(checkReason('  Alteró cifras  ')).toBe('Alteró cifras');
    for (const bad of ['', '  ', 'a\nb', 'a\u202Eb', 'x'.repeat(1001)]) expect(() => checkReason(bad)).toThrow(RunRefusal);
  });
});

describe('rollback target', () => {
  const A = '20220605_2015';
  const B = '20220605_2030';
  const C = '20220605_2045';
  test('default: the newest release older than the newest live cut', () => {
    expect(chooseTarget(undefined, [C, B], [A, B, C])).toEqual({ to: B, from: C });
    expect(chooseTarget(undefined, [B], [A, B, C])).toEqual({ to: A, from: B });
  });
  test('--to is taken as given once it is a cut id', () => {
    expect(chooseTarget(A, [C], [])).toEqual({ to: A, from: C });
    expect(() => chooseTarget('../x', [C], [])).toThrow(/a cut id is/);
  });
  test('nothing live or nothing older is refused', () => {
    expect(() => chooseTarget(undefined, [], [A])).toThrow(/no targeted difusor serves a cut/);
    expect(() => chooseTarget(undefined, [A], [A])).toThrow(/no difusor holds a release older than/);
  });
});

describe('rollback hold', () => {
  const A = '20220605_2015';
  const B = '20220605_2030';
  const status = ok(`live ${B}\nrelease ${A}\nrelease ${B}\n`);
  /** The lease every switch is made under (the alternate site): taken, then released. */
  const lease = (args: string[]): HelperOutput => ok(`now 1\n${args[0] === 'release' ? 'released' : 'taken 1 121'}\n`);

  test('is on disk before the switch: a rollback killed right after switching still keeps cron off the newer cut', async () => {
    let holdAtSwitch: unknown;
    let holdThere: string | undefined;
    let holdThereAtSwitch: string | undefined;
    const s = setup((verb) => (verb === 'status' ? status : verb === 'switch' ? new Error('switch seen') : ok()));
    s.ports.connect = async () => ({
      open: async () => ({
        helper: async (verb: string, args: string[]) => {
          if (verb === 'status') return status;
          if (verb === 'lease') return lease(args);
          if (verb === 'hold') {
            holdThere = args.join(' ');
            return ok(`now 1\nhold ${args[1]} ${args[2]} ${args[3]} 1\n`);
          }
          holdAtSwitch = await readHold(stateDir);
          holdThereAtSwitch = holdThere;
          return ok(`live releases/${A}\n`);
        },
        transfer: async () => {
          throw new Error('no transfer in a rollback');
        },
        close: () => undefined,
      }),
      dispose: async () => undefined,
    });
    const result = await rollback({ registry: s.registry, only: [] }, s.ports);
    expect(result).toMatchObject({ exitCode: 0, to: A, hold: { cut: A } });
    expect(holdAtSwitch).toMatchObject({ cut: A, from: B, run: 'run-1' });
    // And on the difusor, where the other publication host sees it, under the lease, before the switch.
    expect(holdThereAtSwitch).toMatch(new RegExp(`^set ${A} \\S+ run-1$`));
  });

  test('a difusor whose helper cannot keep the hold (older than protocol 5) goes back all the same, named, exit 3', async () => {
    const s = setup((verb, args) =>
      verb === 'status'
        ? status
        : verb === 'lease'
          ? lease(args)
          : verb === 'hold'
            ? { code: 2, stdout: '', stderr: 'difusion-helper: refused: unknown verb hold\n' }
            : ok(`live releases/${A}\n`),
    );
    const result = await rollback({ registry: s.registry, only: [] }, s.ports);
    expect(result).toMatchObject({
      exitCode: 3,
      outcomes: [{ id: 'ujed', result: 'live', error: expect.stringMatching(/^live, but the rollback's hold is not recorded on the difusor \(hold failed \(exit 2\): difusion-helper: refused: unknown verb hold\)/) }],
    });
    expect(s.journal).toContainEqual(expect.objectContaining({ phase: 'rollback-hold', result: 'failed', difusor: 'ujed' }));
  });

  test('a standby rolling back to a cut the other host published checks the release against its own copy of that cut', async () => {
    // The standby published B from its cuts directory; A, the other host's, is there too but not in its state dir.
    const cuts = path.join(stateDir, 'cortes');
    mkdirSync(path.join(cuts, A), { recursive: true });
    writeFileSync(path.join(cuts, A, 'index.html'), 'a');
    await new StateStore(stateDir).saveSource(B, path.join(cuts, B));
    const s = setup((verb, args) =>
      verb === 'status' ? status : verb === 'lease' ? lease(args) : verb === 'audit' ? ok('check 1\nx MANIFEST.sha256: FAILED\n') : ok(`live releases/${A}\n`),
    );
    const result = await rollback({ registry: s.registry, only: [] }, s.ports);
    // Audited at all only because the manifest was learned: without one the difusores are taken at their word.
    expect(s.calls).toContain(`audit ${A}`);
    expect(result).toMatchObject({ exitCode: 1, outcomes: [{ id: 'ujed', result: 'failed', error: expect.stringMatching(new RegExp(`^releases/${A} differs from what was published`)) }] });
    expect(s.calls).not.toContain(`switch ${A}`);
  });

  test('a rollback whose every switch fails leaves no hold of its own behind', async () => {
    const s = setup((verb, args) =>
      verb === 'status' ? status : verb === 'lease' ? lease(args) : verb === 'switch' ? { code: 2, stdout: '', stderr: 'difusion-helper: cannot switch current\n' } : ok(),
    );
    const result = await rollback({ registry: s.registry, only: [] }, s.ports);
    expect(result).toMatchObject({ exitCode: 1, hold: undefined });
    expect(await readHold(stateDir)).toBeUndefined();
  });
});
