import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GENESIS_PREV, openJournal, verifyJournalFile, type JournalEntry, type JournalRecord } from '../../src/core/records/journal.js';
import {
  MergedJournalError,
  NO_HEAD_CAVEAT,
  cutsSwitchedTo,
  headCaveat,
  journalLabel,
  mergeJournals,
  readMergedJournal,
  seenRecordFile,
} from '../../src/core/records/merged-journal.js';
import type { MemoriaReport } from '../../src/core/memoria/report.js';
import { renderReportHtml } from '../../src/ui/report-html.js';

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

  /** What someone who can write the copy can do: edit entries and chain them again, so the chain alone passes. */
  function rechained(entries: Array<Record<string, unknown>>): string {
    let prev = GENESIS_PREV;
    const out: string[] = [];
    entries.forEach((e, i) => {
      const { prev: _old, ...rest } = e;
      const line = JSON.stringify({ ...rest, seq: i + 1, prev });
      out.push(line);
      prev = createHash('sha256').update(line).digest('hex');
    });
    return out.join('\n') + '\n';
  }

  const linesOf = async (file: string): Promise<string[]> => (await readFile(file, 'utf8')).split('\n').filter(Boolean);

  describe('a copy without its head', () => {
    test('is carried as head "none", said by the same caveat as journal verify, and in the memoria\'s note', async () => {
      const a = await journalOf('primario', [0]);
      const b = await journalOf('alterno', [1, 2, 3]);
      const copy = join(dir, 'alterno.jsonl');
      // Its last two lines removed: the chain of what is left is whole, nothing can tell.
      await writeFile(copy, (await linesOf(join(b, 'journal.jsonl'))).slice(0, -2).join('\n') + '\n');
      const merged = await readMergedJournal(a, [copy]);
      expect(merged.journals.map((j) => [j.host, j.head])).toEqual([
        ['primario', 'checked'],
        ['alterno', 'none'],
      ]);
      expect(headCaveat(merged.journals[0]!)).toBeUndefined();
      expect(headCaveat(merged.journals[1]!)).toBe(NO_HEAD_CAVEAT);

      const report: MemoriaReport = {
        generatedAt: '2022-06-06T12:00:00.000Z',
        timezone: 'America/Mexico_City',
        period: { from: '2022-06-06', to: '2022-06-06', days: 1 },
        difusores: [],
        cuts: [],
        incidents: [],
        runs: [],
        journals: merged.journals,
        exitCode: 0,
      };
      const html = renderReportHtml(report, { generatedLocal: '2022-06-06 06:00' });
      expect(html).toContain(`La bitácora de alterno (${copy}) se verificó sin su cabeza (journal.head): sus últimas líneas pudieron haberse quitado sin que se note.`);
      expect(html).not.toContain('La bitácora de primario');
      // Read again, grown: the caveat names what this host verified before, below which nothing went unseen.
      await copyFile(join(b, 'journal.jsonl'), copy);
      const again = await readMergedJournal(a, [copy]);
      expect(headCaveat(again.journals[1]!)).toBe(`${NO_HEAD_CAVEAT} after seq 1, which this host verified before`);
    });

    test('with its head beside it, the same removal is refused', async () => {
      const a = await journalOf('primario', [0]);
      const b = await journalOf('alterno', [1, 2, 3]);
      await mkdir(join(dir, 'copia'));
      const copy = join(dir, 'copia', 'journal.jsonl');
      await writeFile(copy, (await linesOf(join(b, 'journal.jsonl'))).slice(0, -2).join('\n') + '\n');
      await copyFile(join(b, 'journal.head'), join(dir, 'copia', 'journal.head'));
      await expect(readMergedJournal(a, [copy])).rejects.toMatchObject({ file: copy, exitCode: 6, message: expect.stringContaining('removed from the end') });
    });
  });

  describe('a copy speaks for one host, never for this one', () => {
    test('an entry of the copy naming this host (DIFUSION_HOST or the hostname) is refused, naming file and line', async () => {
      const a = await journalOf('primario', [0]);
      const b = await journalOf('alterno', [1, 2, 3]);
      const entries = (await linesOf(join(b, 'journal.jsonl'))).map((l) => JSON.parse(l) as Record<string, unknown>);
      entries.splice(2, 0, { ...entries[1], phase: 'switch', difusor: 'd3', cut: '20220605_2045_PREP', host: 'pub-a' });
      const copy = join(dir, 'alterno.jsonl');
      await writeFile(copy, rechained(entries));
      await expect(verifyJournalFile(copy)).resolves.toMatchObject({ ok: true });
      const refused = await readMergedJournal(a, [copy], { thisHost: 'pub-a' }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(MergedJournalError);
      expect(refused).toMatchObject({ file: copy, exitCode: 6, line: 3, message: expect.stringContaining(`${copy}:3: line 3 (seq 3) names host pub-a, which is this host`) });
    });

    test('a host this host\'s own journal names counts as this host', async () => {
      const a = await journalOf('primario', [0]);
      const b = await journalOf('alterno', [1, 2]);
      const entries = (await linesOf(join(b, 'journal.jsonl'))).map((l) => JSON.parse(l) as Record<string, unknown>);
      entries[1] = { ...entries[1], host: 'primario', run: 'run-primario', operator: 'prep@primario' };
      const copy = join(dir, 'alterno.jsonl');
      await writeFile(copy, rechained(entries));
      await expect(readMergedJournal(a, [copy], { thisHost: 'elsewhere' })).rejects.toMatchObject({ file: copy, exitCode: 6, line: 2, message: expect.stringContaining('names host primario, which is this host') });
    });

    test('a copy naming two hosts is refused at the first line naming the second', async () => {
      const a = await journalOf('primario', [0]);
      const b = await journalOf('alterno', [1, 2, 3]);
      const entries = (await linesOf(join(b, 'journal.jsonl'))).map((l) => JSON.parse(l) as Record<string, unknown>);
      entries[2] = { ...entries[2], host: 'tercero' };
      const copy = join(dir, 'alterno.jsonl');
      await writeFile(copy, rechained(entries));
      await expect(readMergedJournal(a, [copy])).rejects.toMatchObject({
        exitCode: 6,
        line: 3,
        message: expect.stringContaining('line 3 (seq 3) names host tercero where line 1 names alterno: a copy is one host\'s journal'),
      });
      // A start entry's detail.host names its host too.
      entries[2] = { ...entries[2], host: 'alterno', phase: 'start', detail: { host: 'tercero' } };
      await writeFile(copy, rechained(entries));
      await expect(readMergedJournal(a, [copy])).rejects.toMatchObject({ exitCode: 6, line: 3 });
    });

    test('an old copy without host still merges: its runs\' start entries name it, else the copy\'s file', async () => {
      const a = await journalOf('primario', [0]);
      const old = [
        entry({ seq: 1, at: '2022-06-06T01:01:00.000Z', run: 'r1', phase: 'start', result: 'info', detail: { host: 'alterno' } }),
        entry({ seq: 2, at: '2022-06-06T01:02:00.000Z', run: 'r1' }),
      ];
      const copy = join(dir, 'old.jsonl');
      await writeFile(copy, rechained(old as unknown as Array<Record<string, unknown>>));
      const merged = await readMergedJournal(a, [copy]);
      expect(merged.entries.map((e) => e.host)).toEqual(['primario', 'alterno', 'alterno']);
      expect(merged.journals[1]?.host).toBe('alterno');

      const nameless = join(dir, 'nameless.jsonl');
      await writeFile(nameless, rechained([entry({ seq: 1, at: '2022-06-06T01:03:00.000Z', run: 'p', command: 'probe', phase: 'probe' })] as unknown as Array<Record<string, unknown>>));
      const both = await readMergedJournal(a, [nameless]);
      expect(both.entries.map((e) => e.host)).toEqual(['primario', nameless]);
    });
  });

  describe('a copy must extend what this host verified of it before', () => {
    test('what was verified is kept in state_dir/journal-copies/<12 hex of sha256(host)>.json', async () => {
      const a = await journalOf('primario', [0]);
      const b = await journalOf('alterno', [1, 2]);
      const copy = join(dir, 'alterno.jsonl');
      await copyFile(join(b, 'journal.jsonl'), copy);
      await readMergedJournal(a, [copy]);
      const lines = await linesOf(copy);
      const record = seenRecordFile(a, 'alterno');
      expect(record).toBe(join(a, 'journal-copies', `${createHash('sha256').update('alterno').digest('hex').slice(0, 12)}.json`));
      expect(JSON.parse(await readFile(record, 'utf8'))).toMatchObject({ copy: 'alterno', file: copy, seq: 2, hash: createHash('sha256').update(lines[1]!).digest('hex') });
    });

    test('a copy grown since is read and its record moves on', async () => {
      const a = await journalOf('primario', [0]);
      const b = await journalOf('alterno', [1, 2, 3, 4]);
      const copy = join(dir, 'alterno.jsonl');
      const lines = await linesOf(join(b, 'journal.jsonl'));
      await writeFile(copy, lines.slice(0, 2).join('\n') + '\n');
      expect((await readMergedJournal(a, [copy])).journals[1]?.seenBefore).toBeUndefined();
      await writeFile(copy, lines.join('\n') + '\n');
      expect((await readMergedJournal(a, [copy])).journals[1]).toMatchObject({ entries: 4, seenBefore: 2 });
      expect(JSON.parse(await readFile(seenRecordFile(a, 'alterno'), 'utf8'))).toMatchObject({ seq: 4 });
    });

    test('a copy cut below what was seen is refused, naming the file and the seq; the record stays', async () => {
      const a = await journalOf('primario', [0]);
      const b = await journalOf('alterno', [1, 2, 3]);
      const copy = join(dir, 'alterno.jsonl');
      await copyFile(join(b, 'journal.jsonl'), copy);
      await readMergedJournal(a, [copy]);
      await writeFile(copy, (await linesOf(copy)).slice(0, 1).join('\n') + '\n');
      const refused = await readMergedJournal(a, [copy]).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(MergedJournalError);
      expect(refused).toMatchObject({
        file: copy,
        exitCode: 6,
        line: 2,
        message: expect.stringContaining(`${copy}:2: the copy ends at seq 1 but this host verified it up to seq 3`),
      });
      expect((refused as Error).message).toContain(seenRecordFile(a, 'alterno'));
      expect(JSON.parse(await readFile(seenRecordFile(a, 'alterno'), 'utf8'))).toMatchObject({ seq: 3 });
    });

    test('a copy rewritten and chained again below what was seen is refused, naming the seq', async () => {
      const a = await journalOf('primario', [0]);
      const b = await journalOf('alterno', [1, 2, 3], [
        { phase: 'stage', result: 'ok' },
        { phase: 'publish', result: 'failed', difusor: 'd2', error: 'verify: 3 files differ' },
        { phase: 'end', result: 'failed' },
      ]);
      const copy = join(dir, 'alterno.jsonl');
      await copyFile(join(b, 'journal.jsonl'), copy);
      await readMergedJournal(a, [copy]);
      const entries = (await linesOf(copy)).map((l) => JSON.parse(l) as Record<string, unknown>);
      entries[1] = { ...entries[1], result: 'ok', phase: 'switch' };
      delete entries[1].error;
      entries[2] = { ...entries[2], result: 'ok' };
      await writeFile(copy, rechained(entries));
      await expect(verifyJournalFile(copy)).resolves.toMatchObject({ ok: true });
      await expect(readMergedJournal(a, [copy])).rejects.toMatchObject({
        file: copy,
        exitCode: 6,
        line: 3,
        message: expect.stringContaining(`${copy}:3: line 3 (seq 3) is not the line this host verified there`),
      });
    });

    test('the record follows the host, not the file name; a refused read writes none for the others', async () => {
      const a = await journalOf('primario', [0]);
      const b = await journalOf('alterno', [1, 2, 3]);
      const c = await journalOf('tercero', [4]);
      const copy = join(dir, 'alterno.jsonl');
      await copyFile(join(b, 'journal.jsonl'), copy);
      await readMergedJournal(a, [copy]);
      const renamed = join(dir, 'otra-copia.jsonl');
      await writeFile(renamed, (await linesOf(copy)).slice(0, 2).join('\n') + '\n');
      await expect(readMergedJournal(a, [join(c, 'journal.jsonl'), renamed])).rejects.toMatchObject({ file: renamed, exitCode: 6, line: 3 });
      expect(await readdir(join(a, 'journal-copies'))).toEqual([`${createHash('sha256').update('alterno').digest('hex').slice(0, 12)}.json`]);
    });
  });
});
