import { appendFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { wentLiveTimes } from '../../src/core/probe/probe.js';
import { foldWentLive, readWentLive, wentLiveFor } from '../../src/core/probe/went-live.js';
import type { JournalEntry } from '../../src/core/records/journal.js';

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
