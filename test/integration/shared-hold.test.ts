import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Lab } from './lab/sshd.js';
import { startHosts, sleep, type Hosts } from './support/two-hosts.js';
import { liveCut } from './support/publish.js';
/**
 * A rollback's hold seen by both publication hosts, and cutoff/reinstate under the difusor's lease, on the lab: two
 * registries and two state directories on this machine stand for hosts a and b, on the same real sshd difusores.
 * The hold lives on each difusor (.lease/hold), so b's cron leaves a's rollback alone; a publish by name lifts it.
 */

const T = 300_000;
const CUTS = ['20220605_2015_PREP', '20220605_2030_PREP', '20220605_2045_PREP'];
const [, ROLLED_BACK_TO, NEWEST] = CUTS as [string, string, string];

let hosts: Hosts;
let lab: Lab;
let cuts: string;

beforeAll(async () => {
  hosts = await startHosts({ name: 'shared-hold', hosts: ['a', 'b'], difusores: 3, cuts: CUTS, shape: { casillas: 60, counted: 20, imageBytes: 4_000, step: 10 } });
  ({ lab, cuts } = hosts);
}, T);

afterAll(() => hosts?.stop(), T);

const expectEverywhere = (cut: string): Promise<void> => hosts.expectOn(lab.difusores.map((d) => d.id), cut);

describe('a rollback on host a, cron on host b', () => {
  test('b\'s publish --latest leaves every difusor on the rolled-back cut, exit 3 naming the hold', async () => {
    for (const cut of CUTS) expect((await hosts.publishAs('a', { cut })).exitCode).toBe(0);
    await expectEverywhere(NEWEST);

    const rollback = await hosts.cliAs('a', 'rollback', '--yes');
    expect({ code: rollback.code, out: rollback.code === 0 ? '' : rollback.out }).toEqual({ code: 0, out: '' });
    await expectEverywhere(ROLLED_BACK_TO);
    for (const d of lab.difusores) {
      expect(await hosts.helperOn(d.path, 'hold', 'show')).toMatch(new RegExp(`^now \\d+\\nhold ${ROLLED_BACK_TO} a \\S+ \\d+\\n$`));
    }

    // b's cron, in this process and through the CLI (what cron mails).
    const cron = await hosts.publishAs('b', { latest: true });
    expect(cron.exitCode).toBe(3);
    for (const d of lab.difusores) {
      const o = cron.outcomes.find((x) => x.id === d.id);
      expect({ id: d.id, result: o?.result, leftAlone: o?.leftAlone, error: o?.error }).toEqual({
        id: d.id,
        result: 'failed',
        leftAlone: 'rollback-hold',
        error: expect.stringMatching(new RegExp(`^held on ${ROLLED_BACK_TO} by a rollback of a since \\d{4}-\\d\\d-\\d\\dT[\\d:]+Z: publish ${NEWEST} by name to lift it$`)),
      });
    }
    const cronCli = await hosts.cliAs('b', 'publish', '--latest', cuts);
    expect({ code: cronCli.code, names: cronCli.out.includes(`held on ${ROLLED_BACK_TO} by a rollback of a`) }).toEqual({ code: 3, names: true });
    await expectEverywhere(ROLLED_BACK_TO);
  }, T);

  test('b publishing the newest cut by name lifts the hold; a\'s own cron, still on its hold, moves nothing back', async () => {
    const byName = await hosts.publishAs('b', { cut: NEWEST });
    expect({ code: byName.exitCode, errors: byName.outcomes.map((o) => o.error) }).toEqual({ code: 0, errors: lab.difusores.map(() => undefined) });
    await expectEverywhere(NEWEST);
    for (const d of lab.difusores) {
      const inspect = await hosts.helperOn(d.path, 'inspect', NEWEST);
      expect({ id: d.id, held: /^hold /m.test(inspect), lifted: new RegExp(`^lifted ${ROLLED_BACK_TO} b ${byName.run} \\d+$`, 'm').test(inspect) }).toEqual({ id: d.id, held: false, lifted: true });
    }
    const lifts = (await hosts.journalOf('b')).filter((e) => e.run === byName.run && e.phase === 'rollback-hold');
    expect(lifts.map((e) => e.difusor).sort()).toEqual(lab.difusores.map((d) => d.id).sort());

    // a's cron follows a's own hold, but not over a difusor whose hold a publish by name lifted.
    const aCron = await hosts.publishAs('a', { latest: true });
    expect({ code: aCron.exitCode, cut: aCron.cut }).toEqual({ code: 3, cut: ROLLED_BACK_TO });
    for (const o of aCron.outcomes) {
      expect({ leftAlone: o.leftAlone, error: o.error }).toEqual({ leftAlone: 'newer-live', error: expect.stringContaining(`the rollback hold on ${ROLLED_BACK_TO} was lifted here by a publish by name of b`) });
    }
    await expectEverywhere(NEWEST);
    // a's operator lifts a's own hold the same way: by name.
    const aByName = await hosts.publishAs('a', { cut: NEWEST });
    expect({ code: aByName.exitCode, lifted: aByName.holdLifted }).toEqual({ code: 0, lifted: true });
    expect((await hosts.publishAs('a', { latest: true })).exitCode).toBe(0);
    await expectEverywhere(NEWEST);
  }, T);
});

describe('cutoff and reinstate under the difusor\'s lease', () => {
  test('a lease another host holds (or its admin forged) leaves the difusor untouched, named, but suspended in the registry all the same; once released, the notice goes up', async () => {
    const d = lab.difusores[0]!;
    expect(await hosts.helperOn(d.path, 'lease', 'take', 'b', 'b-long-run', '3600')).toMatch(/\ntaken /);

    const held = await hosts.cliAs('a', 'cutoff', d.id, '--reason', 'simulacro de corte', '--yes');
    expect({ code: held.code, names: /held by b \(run b-long-run\) since /.test(held.out) }).toEqual({ code: 3, names: true });
    expect(await liveCut(d.path)).toBe(`releases/${NEWEST}`);
    expect(await hosts.statusIn('a', d.id)).toBe('suspended');
    expect(held.out).toContain('its notice is NOT in place');
    expect(await readFile(path.join(d.path, '.lease', 'holder'), 'utf8')).toMatch(/^b b-long-run /);

    expect(await hosts.helperOn(d.path, 'lease', 'release', 'b', 'b-long-run')).toMatch(/\nreleased\n$/);
    const cut = await hosts.cliAs('a', 'cutoff', d.id, '--reason', 'simulacro de corte', '--yes');
    expect({ code: cut.code, out: cut.code === 0 ? '' : cut.out }).toEqual({ code: 0, out: '' });
    expect(await liveCut(d.path)).toMatch(/^notices\/\d{8}_\d{6}$/);
    expect(await hosts.statusIn('a', d.id)).toBe('suspended');

    // reinstate: the same under another host's lease ...
    await hosts.helperOn(d.path, 'lease', 'take', 'b', 'b-long-run', '3600');
    const heldBack = await hosts.cliAs('a', 'reinstate', d.id, '--yes');
    expect({ code: heldBack.code, names: /held by b \(run b-long-run\) since /.test(heldBack.out) }).toEqual({ code: 3, names: true });
    expect(await liveCut(d.path)).toMatch(/^notices\//);
    expect(await hosts.statusIn('a', d.id)).toBe('suspended');
    await hosts.helperOn(d.path, 'lease', 'release', 'b', 'b-long-run');

    // ... and an expired one (its holder gone) taken over and journaled.
    const short = await hosts.helperOn(d.path, 'lease', 'take', 'b', 'b-dead-run', '1');
    const expiry = Number(/\ntaken \d+ (\d+)\n/.exec(short)?.[1]);
    while (Date.now() / 1000 <= expiry) await sleep(200);
    const back = await hosts.cliAs('a', 'reinstate', d.id, '--yes');
    expect({ code: back.code, out: back.code === 0 ? '' : back.out }).toEqual({ code: 0, out: '' });
    await expectEverywhere(NEWEST);
    expect(await hosts.statusIn('a', d.id)).toBe('active');
    const takeovers = (await hosts.journalOf('a')).filter((e) => e.phase === 'lease-takeover' && e.difusor === d.id);
    expect(takeovers.at(-1)?.detail).toMatchObject({ host: 'a', tookOverFrom: { host: 'b', run: 'b-dead-run' } });
  }, T);
});
