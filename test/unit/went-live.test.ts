import { appendFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { wentLiveTimes } from '../../src/core/probe/probe.js';
import { foldWentLive, readWentLive, readWentLiveOf, verifyJournalCopies, wentLiveFor } from '../../src/core/probe/went-live.js';
import { openJournal, type JournalEntry } from '../../src/core/records/journal.js';
import { mergeJournals } from '../../src/core/records/merged-journal.js';

const cut = (m: number): string => `20220605_${String(20 + Math.floor(m / 60)).padStart(2, '0')}${String(m % 60).padStart(2, '0')}_PREP_DGO`;
let seq = 0;
function entry(phase: string, c: number, minute: number, difusor?: string, result: JournalEntry['result'] = 'ok'): JournalEntry {
  seq += 1;
  return { seq, at: new Date(Date.UTC(2022, 5, 6, 2, minute)).toISOString(), run: 'r', operator: 'o', command: 'c', phase, result, cut: cut(c), ...(difusor ? { difusor } : {}), prev: '0'.repeat(64), detail: { pad: 'x'.repeat(200) } };
}

// Switches on several difusores, a failed switch, a rollback of one, a rollback of all, a cut going live again.
const night: JournalEntry[] = [
  entry('switch', 15, 16, 'a'),
  entry('switch', 15, 17, 'b'),
  entry('switch', 30, 31, 'b'),
  entry('switch', 30, 30, 'a'),
  entry('switch', 45, 46, 'a', 'failed'),
  entry('rollback', 15, 40, 'a'),
  entry('switch', 45, 47, 'b'),
  entry('stage', 60, 50, 'b'),
  entry('rollback', 30, 55),
  entry('switch', 45, 58, 'c'),
  entry('switch', 60, 61, 'c'),
  // The alternate site: cut 75 was switched by the other host; this one found it live on c at 80 and on a at 78.
  { ...entry('check', 75, 80, 'c', 'skipped'), detail: { reason: 'already live' } },
  { ...entry('check', 75, 78, 'a', 'skipped'), detail: { reason: 'already live' } },
  // A cut found live after its own switch keeps the switch's time; a skip for another reason says nothing.
  { ...entry('check', 60, 70, 'c', 'skipped'), detail: { reason: 'already live' } },
  { ...entry('check', 90, 71, 'c', 'skipped'), detail: { reason: 'held' } },
];

it("a cut only found live (the other host switched it) counts from the first time it was found, never later than that", () => {
  const times = wentLiveTimes(night, 'b');
  expect(times.get(cut(75))).toEqual(new Date(Date.UTC(2022, 5, 6, 2, 78)));
  expect(times.get(cut(60))).toEqual(new Date(Date.UTC(2022, 5, 6, 2, 61)));
  expect(times.has(cut(90))).toBe(false);
});
const IDS = ['a', 'b', 'c', 'nuevo'];

it('folding the journal in pieces gives what wentLiveTimes gives over all of it, for every difusor', () => {
  for (let split = 0; split <= night.length; split++) {
    const fold = foldWentLive(foldWentLive({ common: {}, own: {} }, night.slice(0, split)), night.slice(split));
    for (const id of IDS) expect([id, split, wentLiveFor(fold, id)]).toEqual([id, split, wentLiveTimes(night, id)]);
  }
});

describe('read from the journal file, only what was appended since', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'difusion-went-live-'));
    await mkdir(path.join(dir, 'rounds'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));
  const line = (e: JournalEntry): string => `${JSON.stringify(e)}\n`;

  it('round after round, a torn last line waiting for its end, a replaced journal read again', async () => {
    const journal = path.join(dir, 'journal.jsonl');
    for (let i = 0; i < night.length; i++) {
      await appendFile(journal, line(night[i] as JournalEntry));
      const fold = await readWentLive(dir);
      for (const id of IDS) expect(wentLiveFor(fold, id)).toEqual(wentLiveTimes(night.slice(0, i + 1), id));
    }
    const torn = line(entry('switch', 75, 76, 'a'));
    await appendFile(journal, torn.slice(0, 40));
    expect(wentLiveFor(await readWentLive(dir), 'a')).toEqual(wentLiveTimes(night, 'a'));
    await appendFile(journal, torn.slice(40));
    expect(wentLiveFor(await readWentLive(dir), 'a').has(cut(75))).toBe(true);
    await writeFile(journal, line(entry('switch', 90, 91, 'z')).padEnd(8000, ' ').trimEnd() + '\n');
    expect([...wentLiveFor(await readWentLive(dir), 'a').keys()]).toEqual([cut(90)]);
  });
});

describe("two journals: this host's and a copy of the other host's (probe --journal)", () => {
  let dir: string;
  let copy: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'difusion-went-live-two-'));
    await mkdir(path.join(dir, 'rounds'));
    await mkdir(path.join(dir, 'copia'));
    copy = path.join(dir, 'copia', 'journal.jsonl');
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));
  const line = (e: JournalEntry): string => `${JSON.stringify(e)}\n`;
  const on = (host: string, e: JournalEntry): JournalEntry => ({ ...e, host });
  const found = (c: number, minute: number, difusor: string): JournalEntry => ({ ...entry('check', c, minute, difusor, 'skipped'), detail: { reason: 'already live' } });

  // Each journal in its own time order; together they interleave. primario rolls every difusor back to 30 at 50,
  // which withdraws alterno's 45 switched at 46 and at 50 (the same instant: alterno's entry goes first, by host).
  const primario = [
    on('primario', entry('switch', 15, 16, 'a')),
    on('primario', entry('switch', 15, 17, 'b')),
    on('primario', entry('switch', 30, 31, 'a')),
    on('primario', entry('rollback', 30, 50)),
    on('primario', entry('rollback', 15, 57, 'b')),
    on('primario', found(60, 62, 'c')),
    on('primario', entry('switch', 75, 76, 'a')),
  ];
  const alterno = [
    on('alterno', entry('switch', 30, 33, 'c')),
    on('alterno', entry('switch', 45, 46, 'c')),
    on('alterno', entry('switch', 45, 50, 'b')),
    on('alterno', entry('switch', 60, 55, 'b')),
    on('alterno', entry('switch', 60, 56, 'c')),
    on('alterno', entry('rollback', 45, 70, 'c')),
    on('alterno', entry('switch', 90, 80, 'c')),
  ];
  const merged = (a: JournalEntry[], b: JournalEntry[]): JournalEntry[] =>
    mergeJournals([
      { label: 'primario', entries: a },
      { label: 'alterno', entries: b },
    ]);

  /** Rounds in which each journal has grown to [primario's count, alterno's count]. */
  const schedules: Record<string, Array<[number, number]>> = {
    'both growing together': primario.map((_, i) => [i + 1, i + 1]),
    'the copy arriving only at the end of the night': [...primario.map((_, i): [number, number] => [i + 1, 0]), ...alterno.map((_, i): [number, number] => [primario.length, i + 1])],
    "the copy ahead of this host's journal": [...alterno.map((_, i): [number, number] => [0, i + 1]), ...primario.map((_, i): [number, number] => [i + 1, alterno.length])],
    'both whole at once': [[primario.length, alterno.length]],
  };

  for (const [name, rounds] of Object.entries(schedules)) {
    it(`${name}: every round's fold is wentLiveTimes over the two journals merged so far, for every difusor`, async () => {
      const own = path.join(dir, 'journal.jsonl');
      let written: [number, number] = [0, 0];
      for (const [a, b] of rounds) {
        for (const e of primario.slice(written[0], a)) await appendFile(own, line(e));
        for (const e of alterno.slice(written[1], b)) await appendFile(copy, line(e));
        written = [a, b];
        if (b === 0) await writeFile(copy, '', { flag: 'a' });
        // Dated 2022, this host's entries are not on the machine's clock: only what they say bounds the wait.
        const fold = await readWentLive(dir, [copy], -Infinity);
        const all = merged(primario.slice(0, a), alterno.slice(0, b));
        for (const id of IDS) expect([id, a, b, wentLiveFor(fold, id)]).toEqual([id, a, b, wentLiveTimes(all, id)]);
      }
      // The late copy's switch of 45 at 46 went before primario's rollback to 30 at 50: withdrawn, whatever came first.
      const last = await readWentLive(dir, [copy], -Infinity);
      expect(wentLiveFor(last, 'a').has(cut(45))).toBe(false);
      expect(wentLiveFor(last, 'a').get(cut(60))).toEqual(new Date(Date.UTC(2022, 5, 6, 2, 55)));
      // This host's fold alone is kept apart and knows nothing of alterno's cuts.
      expect(wentLiveFor(await readWentLive(dir), 'a')).toEqual(wentLiveTimes(primario, 'a'));
    });
  }

  it("a standby whose own journal stays quiet keeps nothing of the copy waiting: its journal is written on the machine's clock", async () => {
    const own = path.join(dir, 'journal.jsonl');
    await writeFile(own, line(primario[0] as JournalEntry));
    const keptFile = (): Promise<{ pending: unknown[] }> =>
      readdir(path.join(dir, 'rounds')).then(async ([name]) => JSON.parse(await readFile(path.join(dir, 'rounds', name as string), 'utf8')) as { pending: unknown[] });
    for (const [i, e] of alterno.entries()) {
      await appendFile(copy, line(e));
      // The round's time: a few minutes after the copy's newest entry.
      const fold = await readWentLive(dir, [copy], Date.parse(e.at) + 5 * 60_000);
      for (const id of IDS) expect(wentLiveFor(fold, id)).toEqual(wentLiveTimes(merged(primario.slice(0, 1), alterno.slice(0, i + 1)), id));
      // Only the copy's newest entry waits (an entry of the same instant may still come from the copy).
      expect((await keptFile()).pending.length).toBeLessThanOrEqual(1);
    }
  });

  it('a copy replaced by another (rsync of a journal started anew) is read again from the start, with this host\'s', async () => {
    const own = path.join(dir, 'journal.jsonl');
    await writeFile(own, primario.map(line).join(''));
    await writeFile(copy, alterno.map(line).join(''));
    for (const id of IDS) expect(wentLiveFor(await readWentLive(dir, [copy]), id)).toEqual(wentLiveTimes(merged(primario, alterno), id));
    // Rewritten whole with more lines, the same first ones (what rsync -t does every minute): read on from where it was.
    const more = [on('alterno', entry('switch', 105, 90, 'b'))];
    await writeFile(copy, [...alterno, ...more].map(line).join(''));
    expect(wentLiveFor(await readWentLive(dir, [copy]), 'b')).toEqual(wentLiveTimes(merged(primario, [...alterno, ...more]), 'b'));
    // Another journal in its place, shorter: nothing of the old one stays.
    const anew = [on('alterno', entry('switch', 120, 95, 'c'))];
    await writeFile(copy, anew.map(line).join(''));
    for (const id of IDS) expect(wentLiveFor(await readWentLive(dir, [copy]), id)).toEqual(wentLiveTimes(merged(primario, anew), id));
    expect(wentLiveFor(await readWentLive(dir, [copy]), 'b').has(cut(105))).toBe(false);
    // Longer, with other first lines: the same.
    const longer = [on('alterno', entry('switch', 30, 32, 'b')), ...alterno.slice(1), ...more, ...anew];
    await writeFile(copy, longer.map(line).join(''));
    for (const id of IDS) expect(wentLiveFor(await readWentLive(dir, [copy]), id)).toEqual(wentLiveTimes(merged(primario, longer), id));
  });

  it('while a copy stops growing, what waits for it is bounded: past the cap the oldest are folded, a late entry going before them folds after', async () => {
    const own = path.join(dir, 'journal.jsonl');
    const kept = path.join(dir, 'rounds', 'capped.json');
    const journals = [
      { file: own, label: 'primario' },
      { file: copy, label: 'alterno' },
    ];
    await writeFile(copy, line(alterno[0] as JournalEntry));
    const night = [15, 30, 45, 60, 75, 90].map((c, i) => on('primario', entry('switch', c, 40 + i, 'a')));
    for (const e of night) {
      await appendFile(own, line(e));
      const fold = await readWentLiveOf(kept, journals, 3);
      expect(wentLiveFor(fold, 'a')).toEqual(wentLiveTimes(merged(night.slice(0, night.indexOf(e) + 1), alterno.slice(0, 1)), 'a'));
      expect((JSON.parse(await readFile(kept, 'utf8')) as { pending: unknown[] }).pending.length).toBeLessThanOrEqual(3);
    }
    // alterno's rollback of every difusor to 15 at 42 went before primario's 45 at 42 (by host), which was folded
    // already (only the last 3 still wait): it withdraws 45 with 30. Exact, with room to wait, 45 stays live.
    const rollback = on('alterno', entry('rollback', 15, 42));
    await appendFile(copy, line(rollback));
    const late = wentLiveFor(await readWentLiveOf(kept, journals, 3), 'a');
    expect([...late.keys()].sort()).toEqual([cut(15), cut(60), cut(75), cut(90)]);
    const exact = wentLiveTimes(merged(night, [alterno[0] as JournalEntry, rollback]), 'a');
    expect([...exact.keys()].sort()).toEqual([cut(15), cut(45), cut(60), cut(75), cut(90)]);
    expect(wentLiveFor(await readWentLiveOf(path.join(dir, 'rounds', 'roomy.json'), journals), 'a')).toEqual(exact);
  });

  it('a copy is verified once, as report verifies it: missing, this host\'s own, given twice, naming this host or altered, it is refused naming the file (and line)', async () => {
    const own = path.join(dir, 'journal.jsonl');
    await writeFile(own, '');
    await expect(verifyJournalCopies(dir, [path.join(dir, 'nada.jsonl')])).rejects.toMatchObject({ exitCode: 2, message: expect.stringContaining('nada.jsonl: no such journal file') });
    await expect(verifyJournalCopies(dir, [own])).rejects.toMatchObject({ exitCode: 2, message: expect.stringContaining("this host's own journal") });
    // A real journal of the other host, with its chain and head: accepted, then given twice, then altered.
    const journal = await openJournal(path.join(dir, 'copia'), { run: 'r', operator: 'o', command: 'publish', host: 'alterno' });
    for (const minute of [1, 2, 3]) await journal.append({ phase: 'switch', result: 'ok', difusor: 'a', cut: cut(minute) });
    expect(await verifyJournalCopies(dir, [path.relative(process.cwd(), copy)])).toEqual([{ file: copy }]);
    await expect(verifyJournalCopies(dir, [copy, path.join(dir, 'copia', '..', 'copia', 'journal.jsonl')])).rejects.toMatchObject({ exitCode: 2, message: expect.stringContaining('given twice') });
    // As report and status verify it: a copy never speaks for this host; one without its head is said so.
    await expect(verifyJournalCopies(dir, [copy], 'alterno')).rejects.toMatchObject({ exitCode: 6, line: 1, message: expect.stringContaining('which is this host') });
    const alone = path.join(dir, 'alterno.jsonl');
    await writeFile(alone, await readFile(copy));
    expect(await verifyJournalCopies(dir, [alone])).toEqual([{ file: alone, caveat: expect.stringContaining('a removal of its last lines cannot be detected') }]);
    const lines = (await readFile(copy, 'utf8')).split('\n');
    lines[1] = (lines[1] as string).replace(cut(2), cut(59));
    await writeFile(copy, lines.join('\n'));
    await expect(verifyJournalCopies(dir, [copy])).rejects.toMatchObject({ exitCode: 6, line: 2, message: expect.stringContaining(`${copy}:2: `) });
  });
});
