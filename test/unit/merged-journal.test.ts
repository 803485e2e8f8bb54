import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GENESIS_PREV, openJournal, type JournalEntry, type JournalRecord } from '../../src/core/records/journal.js';
import { MergedJournalError, cutsSwitchedTo, journalLabel, mergeJournals, readMergedJournal } from '../../src/core/records/merged-journal.js';

function entry(fields: Partial<JournalEntry> & Pick<JournalEntry, 'seq' | 'at' | 'run'>): JournalEntry {
  return { operator: 'prep@x', command: 'publish --latest /srv/cortes', phase: 'stage', result: 'ok', prev: GENESIS_PREV, ...fields };
}

describe('mergeJournals', () => {
  test('entries of both hosts in time order, each with its host', () => {
    const a = [
      entry({ seq: 1, at: '2022-06-06T01:00:00.000Z', run: 'ra', host: 'primario' }),
      entry({ seq: 2, at: '2022-06-06T01:02:00.000Z', run: 'ra', host: 'primario' }),
    ];
    const b = [entry({ seq: 1, at: '2022-06-06T01:01:00.000Z', run: 'rb', host: 'alterno' })];
    const merged = mergeJournals([
      { label: 'primario', entries: a },
      { label: 'alterno', entries: b },
    ]);
    expect(merged.map((e) => [e.at.slice(11, 16), e.host, e.seq])).toEqual([
      ['01:00', 'primario', 1],
      ['01:01', 'alterno', 1],
      ['01:02', 'primario', 2],
    ]);
  });

  test('the same instant: by host, then by seq', () => {
    const at = '2022-06-06T01:00:00.000Z';
    const merged = mergeJournals([
      { label: 'b', entries: [entry({ seq: 7, at, run: 'rb', host: 'b' }), entry({ seq: 8, at, run: 'rb', host: 'b' })] },
      { label: 'a', entries: [entry({ seq: 9, at, run: 'ra', host: 'a' }), entry({ seq: 3, at, run: 'ra2', host: 'a' })] },
    ]);
    expect(merged.map((e) => `${e.host}${e.seq}`)).toEqual(['a3', 'a9', 'b7', 'b8']);
  });

  test('an entry without host takes its run\'s start entry host, else the journal\'s label', () => {
    const old = [
      entry({ seq: 1, at: '2022-06-06T01:00:00.000Z', run: 'r1', phase: 'start', result: 'info', detail: { host: 'pub1' } }),
      entry({ seq: 2, at: '2022-06-06T01:00:01.000Z', run: 'r1' }),
      entry({ seq: 3, at: '2022-06-06T01:05:00.000Z', run: 'probe-run', command: 'probe', phase: 'probe' }),
    ];
    const merged = mergeJournals([{ label: '/copias/alterno.jsonl', entries: old }]);
    expect(merged.map((e) => e.host)).toEqual(['pub1', 'pub1', '/copias/alterno.jsonl']);
  });

  test('an entry found in two copies is kept once', () => {
    const e = entry({ seq: 1, at: '2022-06-06T01:00:00.000Z', run: 'r', host: 'a' });
    expect(mergeJournals([{ label: 'a', entries: [e] }, { label: 'a', entries: [{ ...e }] }])).toHaveLength(1);
  });

  test('a journal\'s label is the one host its entries name, else the fallback', () => {
    expect(journalLabel([entry({ seq: 1, at: 'x', run: 'r', host: 'a' }), entry({ seq: 2, at: 'x', run: 'r', phase: 'start', detail: { host: 'a' } })], 'f')).toBe('a');
    expect(journalLabel([entry({ seq: 1, at: 'x', run: 'r', host: 'a' }), entry({ seq: 2, at: 'x', run: 's', host: 'b' })], 'f')).toBe('f');
    expect(journalLabel([], 'f')).toBe('f');
  });

  test('the cuts switched to: switches that happened, not those found live already', () => {
    const at = '2022-06-06T01:00:00.000Z';
    expect(
      cutsSwitchedTo([
        entry({ seq: 1, at, run: 'r', phase: 'switch', cut: 'c1', difusor: 'd' }),
        entry({ seq: 2, at, run: 'r', phase: 'switch', cut: 'c2', difusor: 'd', detail: { switched: false } }),
        entry({ seq: 3, at, run: 'r', phase: 'switch', result: 'failed', cut: 'c3', difusor: 'd' }),
      ]),
    ).toEqual(['c1']);
  });
});

describe('readMergedJournal', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'difusion-merged-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function journalOf(host: string, minutes: number[], records: JournalRecord[] = []): Promise<string> {
    const stateDir = join(dir, `state-${host}`);
    let i = 0;
    const journal = await openJournal(stateDir, {
      run: `run-${host}`,
      operator: `prep@${host}`,
      host,
      command: 'publish --latest /srv/cortes',
      clock: { now: () => new Date(Date.UTC(2022, 5, 6, 1, minutes[i++] ?? 59)), fromEnv: false },
    });
    for (const m of minutes) await journal.append(records[minutes.indexOf(m)] ?? { phase: 'stage', result: 'ok', detail: { m } });
    return stateDir;
  }

  test('this host\'s journal and a copy of the other\'s, verified and merged', async () => {
    const a = await journalOf('primario', [0, 2, 4]);
    const b = await journalOf('alterno', [1, 3]);
    await mkdir(join(dir, 'copias'));
    const copy = join(dir, 'copias', 'alterno.jsonl');
    await copyFile(join(b, 'journal.jsonl'), copy);
    const merged = await readMergedJournal(a, [copy]);
    expect(merged.entries.map((e) => `${e.host}@${e.at.slice(14, 16)}`)).toEqual(['primario@00', 'alterno@01', 'primario@02', 'alterno@03', 'primario@04']);
    expect(merged.journals).toEqual([
      { file: join(a, 'journal.jsonl'), host: 'primario', entries: 3, own: true, head: 'checked' },
      { file: copy, host: 'alterno', entries: 2, own: false, head: 'none' },
    ]);
    // A whole state directory copied: its head goes with it.
    expect((await readMergedJournal(a, [join(b, 'journal.jsonl')])).journals[1]).toMatchObject({ head: 'checked', headFile: join(b, 'journal.head'), seenBefore: 2 });
  });

  test('a tampered copy is refused, naming the file and line (exit 6)', async () => {
    const a = await journalOf('primario', [0]);
    const b = await journalOf('alterno', [1, 2, 3]);
    const copy = join(dir, 'alterno.jsonl');
    const lines = (await readFile(join(b, 'journal.jsonl'), 'utf8')).split('\n');
    lines[1] = lines[1]!.replace('"m":2', '"m":9');
    await writeFile(copy, lines.join('\n'));
    const refused = await readMergedJournal(a, [copy]).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(MergedJournalError);
    expect(refused).toMatchObject({ file: copy, exitCode: 6, line: 2, message: expect.stringContaining(`${copy}:2: line 2 (seq 2) was edited`) });
  });

  test('this host\'s own journal altered is refused too', async () => {
    const a = await journalOf('primario', [0, 1]);
    const b = await journalOf('alterno', [2]);
    const file = join(a, 'journal.jsonl');
    await writeFile(file, (await readFile(file, 'utf8')).replace('"m":0', '"m":5'));
    await expect(readMergedJournal(a, [join(b, 'journal.jsonl')])).rejects.toMatchObject({ file, exitCode: 6, line: 1 });
  });

  test('a missing file, this host\'s own journal, or one file twice is a bad flag (exit 2)', async () => {
    const a = await journalOf('primario', [0]);
    const b = await journalOf('alterno', [1]);
    const other = join(b, 'journal.jsonl');
    await expect(readMergedJournal(a, [join(dir, 'nope.jsonl')])).rejects.toMatchObject({ exitCode: 2, message: expect.stringContaining('no such journal file') });
    await expect(readMergedJournal(a, [join(a, 'journal.jsonl')])).rejects.toMatchObject({ exitCode: 2, message: expect.stringContaining("this host's own journal") });
    await expect(readMergedJournal(a, [other, other])).rejects.toMatchObject({ exitCode: 2, message: expect.stringContaining('given twice') });
  });
});
