import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Lab } from './lab/sshd.js';
import { startHosts, sleep, type Hosts } from './support/two-hosts.js';
import { liveCut } from './support/publish.js';
import type { JournalEntry } from '../../src/core/records/journal.js';
/**
 * What the rollback and the cutoff of one host could not do on a difusor that was down, done later under the
 * difusor's lease, on the lab (two registries and two state directories on this machine stand for hosts a and b,
 * on the same real sshd difusores):
 *   - a difusor a's rollback could not reach, moved back later by a's cron following a's hold, gets the hold marker
 *     there too, so b's cron leaves it on the rolled-back cut;
 *   - a suspension whose notice did not reach the difusor is put back up by a later publish only under the
 *     difusor's lease: another host's live lease leaves it alone (exit 3, named), an expired one is taken over.
 */

const T = 300_000;
const CUTS = ['20220605_2015_PREP', '20220605_2030_PREP', '20220605_2045_PREP'];
const [, ROLLED_BACK_TO, NEWEST] = CUTS as [string, string, string];

let hosts: Hosts;
let lab: Lab;
let cuts: string;

beforeAll(async () => {
  hosts = await startHosts({ name: 'unreached-hold', hosts: ['a', 'b'], difusores: 3, cuts: CUTS, shape: { casillas: 60, counted: 20, imageBytes: 4_000, step: 10 } });
  ({ lab, cuts } = hosts);
}, T);

afterAll(() => hosts?.stop(), T);

async function holderOf(root: string): Promise<string> {
  return readFile(path.join(root, '.lease', 'holder'), 'utf8').catch(() => 'none');
}

describe('a difusor a\'s rollback could not reach', () => {
  test('a\'s cron moves it back and holds it there too; b\'s cron then leaves it alone', async () => {
    for (const cut of CUTS) expect((await hosts.publishAs('a', { cut })).exitCode).toBe(0);
    const all = lab.difusores.map((d) => d.id);
    await hosts.expectOn(all, NEWEST);

    const [d1, d2, d3] = lab.difusores as [Lab['difusores'][number], Lab['difusores'][number], Lab['difusores'][number]];
    await d2.stop();
    const rollback = await hosts.cliAs('a', 'rollback', '--to', ROLLED_BACK_TO, '--yes');
    await d2.start();
    // The others went back and are held there; d2 is named, still on the newest, with no hold of its own.
    expect({ code: rollback.code, namesD2: rollback.out.includes(d2.id) }).toEqual({ code: 3, namesD2: true });
    await hosts.expectOn([d1.id, d3.id], ROLLED_BACK_TO);
    await hosts.expectOn([d2.id], NEWEST);
    expect(await hosts.helperOn(d2.path, 'hold', 'show')).toMatch(/^now \d+\nnone\n$/);

    // a's cron follows a's hold: d2 goes back, and the hold is set there under the lease, before the switch.
    const aCron = await hosts.publishAs('a', { latest: true });
    const o2 = aCron.outcomes.find((o) => o.id === d2.id);
    expect({ code: aCron.exitCode, cut: aCron.cut, d2: o2?.result, previous: o2?.previous, error: o2?.error }).toEqual({
      code: 0,
      cut: ROLLED_BACK_TO,
      d2: 'live',
      previous: NEWEST,
      error: undefined,
    });
    await hosts.expectOn(all, ROLLED_BACK_TO);
    expect(await hosts.helperOn(d2.path, 'hold', 'show')).toMatch(new RegExp(`^now \\d+\\nhold ${ROLLED_BACK_TO} a ${aCron.run} \\d+\\n$`));
    const journal = (await hosts.journalOf('a')).filter((e) => e.run === aCron.run);
    const held = journal.find((e) => e.phase === 'rollback-hold' && e.difusor === d2.id);
    const switched = journal.findIndex((e) => e.difusor === d2.id && e.result === 'ok' && e.phase === 'switch');
    expect(held).toMatchObject({ result: 'info', detail: { held: ROLLED_BACK_TO, from: NEWEST, host: 'a' } });
    expect(switched === -1 || journal.indexOf(held as JournalEntry) < switched).toBe(true);

    // b's cron, with the newest cut in its directory: every difusor is held, d2 included.
    const bCron = await hosts.publishAs('b', { latest: true });
    expect(bCron.exitCode).toBe(3);
    for (const o of bCron.outcomes) {
      expect({ id: o.id, result: o.result, leftAlone: o.leftAlone, error: o.error }).toEqual({
        id: o.id,
        result: 'failed',
        leftAlone: 'rollback-hold',
        error: expect.stringMatching(new RegExp(`^held on ${ROLLED_BACK_TO} by a rollback of a since `)),
      });
    }
    await hosts.expectOn(all, ROLLED_BACK_TO);
  }, T);
});

describe('a notice a later publish puts back up, under the difusor\'s lease', () => {
  test('another host\'s live lease leaves it alone (exit 3, named); an expired one is taken over and journaled', async () => {
    const d = lab.difusores[0]!;
    const others = lab.difusores.slice(1).map((x) => x.id);
    await d.stop();
    const cut = await hosts.cliAs('b', 'cutoff', d.id, '--reason', 'simulacro de corte', '--yes');
    await d.start();
    expect({ code: cut.code, suspended: await hosts.statusIn('b', d.id) }).toEqual({ code: 1, suspended: 'suspended' });
    const servedBefore = await liveCut(d.path);
    expect(servedBefore).toMatch(/^releases\//);

    // a's run holds d's lease: b's publish puts the cut elsewhere and leaves d's notice for later, saying whose lease.
    expect(await hosts.helperOn(d.path, 'lease', 'take', 'a', 'a-long-run', '3600')).toMatch(/\ntaken /);
    const held = await hosts.cliAs('b', 'publish', path.join(cuts, NEWEST));
    expect({ code: held.code, names: held.out.includes('held by a (run a-long-run) since'), notInPlace: held.out.includes('its notice is NOT in place') }).toEqual({
      code: 3,
      names: true,
      notInPlace: true,
    });
    expect(await liveCut(d.path)).toBe(servedBefore);
    expect(await holderOf(d.path)).toMatch(/^a a-long-run /);
    await hosts.expectOn(others, NEWEST);
    const leftAlone = (await hosts.journalOf('b')).filter((e) => e.phase === 'cutoff' && e.difusor === d.id).at(-1);
    expect(leftAlone).toMatchObject({ result: 'failed', detail: { retry: true, leftAlone: 'held', host: 'b' } });
    await hosts.helperOn(d.path, 'lease', 'release', 'a', 'a-long-run');

    // a's run died holding it: once expired (the difusor's clock), b's next publish takes it over and puts the notice up.
    const short = await hosts.helperOn(d.path, 'lease', 'take', 'a', 'a-dead-run', '1');
    const expiry = Number(/\ntaken \d+ (\d+)\n/.exec(short)?.[1]);
    while (Date.now() / 1000 <= expiry) await sleep(200);
    const restored = await hosts.cliAs('b', 'publish', path.join(cuts, NEWEST));
    expect({ code: restored.code, out: restored.code === 0 ? '' : restored.out }).toEqual({ code: 0, out: '' });
    expect(restored.out).toMatch(/its missing notice is now in place \(notices\/\d{8}_\d{6}\)/);
    expect(await liveCut(d.path)).toMatch(/^notices\/\d{8}_\d{6}$/);
    expect(await holderOf(d.path)).toBe('none');
    const takeover = (await hosts.journalOf('b')).filter((e) => e.phase === 'lease-takeover' && e.difusor === d.id).at(-1);
    expect(takeover?.detail).toMatchObject({ host: 'b', tookOverFrom: { host: 'a', run: 'a-dead-run' } });
    expect((await hosts.journalOf('b')).filter((e) => e.phase === 'cutoff' && e.difusor === d.id).at(-1)).toMatchObject({ result: 'ok', detail: { retry: true } });
  }, T);
});
