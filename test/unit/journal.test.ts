import { createHash } from 'node:crypto';
import { appendFile, copyFile, mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  GENESIS_PREV,
  JournalWriteError,
  headFileBeside,
  newRunId,
  openJournal,
  readJournal,
  readJournalFile,
  verifyJournal,
  verifyJournalFile,
  type JournalContext,
  type JournalRecord,
} from '../../src/core/records/journal.js';

let stateDir: string;

beforeEach(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'difusion-journal-'));
});

afterEach(async () => {
  await rm(stateDir, { recursive: true, force: true });
});

const journalFile = (): string => join(stateDir, 'journal.jsonl');

function context(overrides: Partial<JournalContext> = {}): JournalContext {
  let tick = 0;
  return {
    run: '20220606T011502Z-ab12cd',
    operator: 'prep@utc-pub1',
    host: 'utc-pub1',
    command: 'publish --latest /srv/cortes',
    // Each entry a minute later, from 20:00 local on 5 June 2022.
    clock: { now: () => new Date(Date.UTC(2022, 5, 6, 1, tick++)), fromEnv: false },
    ...overrides,
  };
}

const sampleRecords: JournalRecord[] = [
  { phase: 'publish', result: 'info', cut: '20220605_2000_PREP_DGO' },
  { phase: 'stage', result: 'ok', difusor: 'ujed', cut: '20220605_2000_PREP_DGO', bytes: 1_048_576, seconds: 3.2 },
  { phase: 'stage', result: 'failed', difusor: 'el-siglo', cut: '20220605_2000_PREP_DGO', error: 'ssh: connect timed out after 10 s' },
  { phase: 'switch', result: 'ok', difusor: 'ujed', cut: '20220605_2000_PREP_DGO', detail: { previous: null } },
  { phase: 'stage', result: 'ok', difusor: 'ujed', cut: '20220605_2015_PREP_DGO', bytes: 20_480, seconds: 0.4 },
];

async function writeSample(): Promise<string[]> {
  const journal = await openJournal(stateDir, context());
  for (const record of sampleRecords) await journal.append(record);
  return (await readFile(journalFile(), 'utf8')).trimEnd().split('\n');
}

async function rewrite(lines: string[], ending = '\n'): Promise<void> {
  await writeFile(journalFile(), lines.join('\n') + ending);
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

describe('openJournal and append', () => {
  it('writes one JSON line per entry, chained by the hash of the previous line', async () => {
    const lines = await writeSample();
    expect(lines).toHaveLength(5);
    const entries = lines.map((line) => JSON.parse(line));
    expect(entries.map((entry) => entry.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(entries[0].prev).toBe(GENESIS_PREV);
    for (let index = 1; index < lines.length; index++) expect(entries[index].prev).toBe(sha256(lines[index - 1]!));
    expect(entries[1]).toEqual({
      seq: 2,
      at: '2022-06-06T01:01:00.000Z',
      run: '20220606T011502Z-ab12cd',
      operator: 'prep@utc-pub1',
      host: 'utc-pub1',
      command: 'publish --latest /srv/cortes',
      difusor: 'ujed',
      cut: '20220605_2000_PREP_DGO',
      phase: 'stage',
      result: 'ok',
      bytes: 1_048_576,
      seconds: 3.2,
      prev: sha256(lines[0]!),
    });
    expect(Object.keys(entries[2])).toEqual(['seq', 'at', 'run', 'operator', 'host', 'command', 'difusor', 'cut', 'phase', 'result', 'error', 'prev']);
  });

  it('append resolves to the entry it wrote', async () => {
    const journal = await openJournal(stateDir, context());
    const entry = await journal.append({ phase: 'cutoff', result: 'ok', difusor: 'ujed', detail: { reason: 'alteró los resultados' } });
    expect(entry).toMatchObject({ seq: 1, phase: 'cutoff', detail: { reason: 'alteró los resultados' }, prev: GENESIS_PREV });
    expect(JSON.parse(await readFile(journalFile(), 'utf8'))).toEqual(entry);
  });

  it('marks every entry of a run whose clock came from DIFUSION_NOW', async () => {
    const clock = { now: () => new Date('2022-06-06T01:00:00Z'), fromEnv: true, setting: 'DIFUSION_NOW=2022-06-05T20:00:00-05:00' };
    const journal = await openJournal(stateDir, context({ clock }));
    const entry = await journal.append({ phase: 'window', result: 'info' });
    expect(entry.clock).toBe('DIFUSION_NOW=2022-06-05T20:00:00-05:00');
    expect(entry.at).toBe('2022-06-06T01:00:00.000Z');
  });

  it('a later run continues the sequence and the chain', async () => {
    await writeSample();
    const second = await openJournal(stateDir, context({ run: 'run-2' }));
    const entry = await second.append({ phase: 'status', result: 'info' });
    expect(entry.seq).toBe(6);
    await expect(verifyJournal(stateDir)).resolves.toEqual({ ok: true, entries: 6 });
  });

  it('concurrent appends keep their call order and the chain', async () => {
    const journal = await openJournal(stateDir, context());
    const written = await Promise.all(
      Array.from({ length: 40 }, (_, index) => journal.append({ phase: 'stage', result: 'ok', difusor: `d${index}` })),
    );
    expect(written.map((entry) => entry.seq)).toEqual(Array.from({ length: 40 }, (_, index) => index + 1));
    const onDisk = await readJournal(stateDir);
    expect(onDisk.map((entry) => entry.difusor)).toEqual(Array.from({ length: 40 }, (_, index) => `d${index}`));
    await expect(verifyJournal(stateDir)).resolves.toEqual({ ok: true, entries: 40 });
  });

  it('two journals open on the same file (which the lock should prevent) still chain', async () => {
    const a = await openJournal(stateDir, context({ run: 'a' }));
    const b = await openJournal(stateDir, context({ run: 'b' }));
    await a.append({ phase: 'x', result: 'info' });
    await b.append({ phase: 'y', result: 'info' });
    await a.append({ phase: 'z', result: 'info' });
    await expect(verifyJournal(stateDir)).resolves.toEqual({ ok: true, entries: 3 });
  });

  it('moves a torn last line aside, journals that, and keeps a valid chain', async () => {
    const lines = await writeSample();
    const fragment = '{"seq":6,"at":"2022-06-06T01:';
    await appendFile(journalFile(), fragment);
    const journal = await openJournal(stateDir, context({ run: 'after-crash' }));
    const recovery = (await readJournal(stateDir)).at(-1)!;
    expect(recovery).toMatchObject({ seq: 6, phase: 'journal-recovered', result: 'info', prev: sha256(lines[4]!) });
    const movedTo = recovery.detail?.movedTo as string;
    expect(await readFile(movedTo, 'utf8')).toBe(fragment);
    expect(recovery.detail?.tornBytes).toBe(fragment.length);
    await journal.append({ phase: 'publish', result: 'info' });
    await expect(verifyJournal(stateDir)).resolves.toEqual({ ok: true, entries: 7 });
  });
});

describe('readJournal', () => {
  it('is empty when there is no journal yet', async () => {
    await expect(readJournal(join(stateDir, 'missing'))).resolves.toEqual([]);
  });

  it('filters by time, difusor and cut', async () => {
    await writeSample();
    expect((await readJournal(stateDir)).map((entry) => entry.seq)).toEqual([1, 2, 3, 4, 5]);
    expect((await readJournal(stateDir, { difusor: 'ujed' })).map((entry) => entry.seq)).toEqual([2, 4, 5]);
    expect((await readJournal(stateDir, { cut: '20220605_2015_PREP_DGO' })).map((entry) => entry.seq)).toEqual([5]);
    expect((await readJournal(stateDir, { since: new Date('2022-06-06T01:02:00Z') })).map((entry) => entry.seq)).toEqual([3, 4, 5]);
    expect(
      (await readJournal(stateDir, { since: new Date('2022-06-06T01:02:00Z'), difusor: 'ujed', cut: '20220605_2000_PREP_DGO' })).map(
        (entry) => entry.seq,
      ),
    ).toEqual([4]);
  });

  it('skips lines that are not entries, including a torn last line', async () => {
    const lines = await writeSample();
    await rewrite([lines[0]!, 'garbage', ...lines.slice(1)], '\n{"seq":6');
    expect((await readJournal(stateDir)).map((entry) => entry.seq)).toEqual([1, 2, 3, 4, 5]);
  });
});

describe('verifyJournal', () => {
  it('accepts an intact journal and an absent one', async () => {
    await expect(verifyJournal(stateDir)).resolves.toEqual({ ok: true, entries: 0 });
    await writeSample();
    await expect(verifyJournal(stateDir)).resolves.toEqual({ ok: true, entries: 5 });
  });

  it('names an edited entry', async () => {
    const lines = await writeSample();
    lines[2] = lines[2]!.replace('connect timed out after 10 s', 'connect refused');
    await rewrite(lines);
    await expect(verifyJournal(stateDir)).resolves.toMatchObject({ ok: false, line: 3, seq: 3, problem: expect.stringContaining('line 3 (seq 3) was edited') });
  });

  it('names an edit that only changed whitespace', async () => {
    const lines = await writeSample();
    lines[1] = lines[1]!.replace('"ok"', '"ok" ');
    await rewrite(lines);
    await expect(verifyJournal(stateDir)).resolves.toMatchObject({ ok: false, line: 2 });
  });

  it('names an edit to the last entry, using the recorded head', async () => {
    const lines = await writeSample();
    lines[4] = lines[4]!.replace('20480', '20481');
    await rewrite(lines);
    await expect(verifyJournal(stateDir)).resolves.toMatchObject({ ok: false, line: 5, seq: 5, problem: expect.stringContaining('edited') });
  });

  it('names a line that no longer parses', async () => {
    const lines = await writeSample();
    lines[3] = lines[3]!.slice(0, 20);
    await rewrite(lines);
    await expect(verifyJournal(stateDir)).resolves.toMatchObject({ ok: false, line: 4, problem: expect.stringContaining('not a journal entry') });
  });

  it('names an edited sequence number', async () => {
    const lines = await writeSample();
    lines[2] = lines[2]!.replace('"seq":3', '"seq":9');
    await rewrite(lines);
    await expect(verifyJournal(stateDir)).resolves.toMatchObject({ ok: false, line: 3, problem: expect.stringContaining('line 3 was edited') });
  });

  it('names two swapped entries', async () => {
    const lines = await writeSample();
    [lines[1], lines[2]] = [lines[2]!, lines[1]!];
    await rewrite(lines);
    await expect(verifyJournal(stateDir)).resolves.toMatchObject({
      ok: false,
      line: 2,
      seq: 2,
      problem: expect.stringContaining('reordered'),
    });
  });

  it('names a removed entry', async () => {
    const lines = await writeSample();
    lines.splice(2, 1);
    await rewrite(lines);
    await expect(verifyJournal(stateDir)).resolves.toMatchObject({ ok: false, line: 3, seq: 3, problem: expect.stringContaining('removed') });
  });

  it('names removed first entries', async () => {
    const lines = await writeSample();
    await rewrite(lines.slice(2));
    await expect(verifyJournal(stateDir)).resolves.toMatchObject({ ok: false, line: 1, seq: 1, problem: expect.stringContaining('seq 1 to 2') });
  });

  it('names removed last entries, using the recorded head', async () => {
    const lines = await writeSample();
    await rewrite(lines.slice(0, 3));
    await expect(verifyJournal(stateDir)).resolves.toMatchObject({ ok: false, line: 4, seq: 4, problem: expect.stringContaining('removed from the end') });
  });

  it('names a torn last line', async () => {
    const lines = await writeSample();
    await rewrite(lines.slice(0, 4), '\n' + lines[4]!.slice(0, 40));
    await expect(verifyJournal(stateDir)).resolves.toMatchObject({ ok: false, line: 5, seq: 5, problem: expect.stringContaining('torn') });
  });

  it('tolerates a head one entry behind (a crash between the entry and the head)', async () => {
    const lines = await writeSample();
    await writeFile(join(stateDir, 'journal.head'), JSON.stringify({ seq: 4, hash: sha256(lines[3]!) }));
    await expect(verifyJournal(stateDir)).resolves.toEqual({ ok: true, entries: 5 });
  });

  it('entries removed from the end stay detected after a later run appends', async () => {
    const lines = await writeSample();
    await rewrite(lines.slice(0, 3));
    const later = await openJournal(stateDir, context({ run: 'later-run' }));
    await later.append({ phase: 'publish', result: 'info' });
    const entries = await readJournal(stateDir);
    expect(entries[3]).toMatchObject({ seq: 4, phase: 'journal-damaged', run: 'later-run', detail: { line: 4, seq: 4 } });
    const verification = await verifyJournal(stateDir);
    expect(verification).toMatchObject({ ok: false, line: 4, seq: 4 });
    expect(!verification.ok && verification.problem).toContain('removed from the end');
    expect(!verification.ok && verification.problem).toContain('later-run');
  });

  it('a deleted journal is detected through its head, and recorded by the next run', async () => {
    await writeSample();
    await rm(journalFile());
    await expect(verifyJournal(stateDir)).resolves.toMatchObject({ ok: false, line: 1, problem: expect.stringContaining('seq 5 was written') });
    await openJournal(stateDir, context({ run: 'later-run' }));
    await expect(verifyJournal(stateDir)).resolves.toMatchObject({ ok: false, line: 1, problem: expect.stringContaining('seq 5 was written') });
  });

  it('records damage in the middle once, however many runs open the journal', async () => {
    const lines = await writeSample();
    lines[1] = lines[1]!.replace('"ok"', '"failed"');
    await rewrite(lines);
    for (let run = 0; run < 3; run++) await (await openJournal(stateDir, context({ run: `run-${run}` }))).append({ phase: 'status', result: 'info' });
    const damaged = (await readJournal(stateDir)).filter((entry) => entry.phase === 'journal-damaged');
    expect(damaged).toHaveLength(1);
    expect(damaged[0]).toMatchObject({ run: 'run-0', detail: { line: 2, seq: 2 } });
    await expect(verifyJournal(stateDir)).resolves.toMatchObject({ ok: false, line: 2, problem: expect.stringContaining('edited') });
  });

  it('a torn line moved aside is not damage', async () => {
    await writeSample();
    await appendFile(journalFile(), '{"seq":6');
    await openJournal(stateDir, context());
    expect((await readJournal(stateDir)).filter((entry) => entry.phase === 'journal-damaged')).toEqual([]);
  });

  it('a later run walks only what followed the last opening; verify still walks it all', async () => {
    const lines = await writeSample();
    await (await openJournal(stateDir, context({ run: 'second' }))).append({ phase: 'status', result: 'info' });
    const head = JSON.parse(await readFile(join(stateDir, 'journal.head'), 'utf8')) as { checked?: { lines: number; seq: number } };
    expect(head.checked).toMatchObject({ lines: 5, seq: 5 });
    // An old line edited behind the checkpoint, its length kept: no run reads it again, but verify does.
    lines[1] = lines[1]!.replace('"bytes":1048576', '"bytes":1048577');
    const all = (await readFile(journalFile(), 'utf8')).trimEnd().split('\n');
    await rewrite([...lines, all[5]!]);
    await (await openJournal(stateDir, context({ run: 'third' }))).append({ phase: 'status', result: 'info' });
    expect((await readJournal(stateDir)).filter((entry) => entry.phase === 'journal-damaged')).toEqual([]);
    await expect(verifyJournal(stateDir)).resolves.toMatchObject({ ok: false, line: 2, problem: expect.stringContaining('edited') });
  });

  it('damage after the checkpoint is found and recorded from the tail alone', async () => {
    await writeSample();
    await (await openJournal(stateDir, context({ run: 'second' }))).append({ phase: 'status', result: 'info' });
    const all = (await readFile(journalFile(), 'utf8')).trimEnd().split('\n');
    all[5] = all[5]!.replace('"info"', '"ok"');
    await rewrite(all);
    await openJournal(stateDir, context({ run: 'third' }));
    const damaged = (await readJournal(stateDir)).filter((entry) => entry.phase === 'journal-damaged');
    expect(damaged).toHaveLength(1);
    expect(damaged[0]).toMatchObject({ run: 'third', detail: { line: 6, seq: 6 } });
  });

  it('a journal that cannot be written names the file and the entry', async () => {
    const journal = await openJournal(stateDir, context());
    // A device whose every write fails with ENOSPC, as a full disk's does.
    await symlink('/dev/full', journalFile());
    const failure = journal.append({ phase: 'switch', result: 'ok', difusor: 'ujed', cut: '20220605_2000_PREP_DGO' });
    await expect(failure).rejects.toBeInstanceOf(JournalWriteError);
    await expect(failure).rejects.toMatchObject({
      code: 'ENOSPC',
      path: journalFile(),
      message: expect.stringContaining('"switch ok" for ujed 20220605_2000_PREP_DGO'),
    });
  });

  it('leaves only the journal and its head in the state dir', async () => {
    await writeSample();
    expect((await readdir(stateDir)).sort()).toEqual(['journal.head', 'journal.jsonl']);
  });
});

describe('the host of each entry', () => {
  const saved = process.env.DIFUSION_HOST;
  afterEach(() => {
    if (saved === undefined) delete process.env.DIFUSION_HOST;
    else process.env.DIFUSION_HOST = saved;
  });

  it('every entry names the host that wrote it, after operator; without a host in the context, DIFUSION_HOST', async () => {
    process.env.DIFUSION_HOST = 'alterno';
    const journal = await openJournal(stateDir, context({ host: undefined }));
    await journal.append({ phase: 'probe', result: 'ok', difusor: 'ujed' });
    const [entry] = await readJournal(stateDir);
    expect(entry?.host).toBe('alterno');
    expect(Object.keys(entry!).slice(3, 6)).toEqual(['operator', 'host', 'command']);
  });

  it('a journal written before entries named their host still verifies, and a run continues its chain', async () => {
    const lines: string[] = [];
    let prev = GENESIS_PREV;
    for (let seq = 1; seq <= 3; seq++) {
      const line = JSON.stringify({ seq, at: `2022-06-06T01:0${seq}:00.000Z`, run: 'old', operator: 'prep@pub1', command: 'probe', phase: 'probe', result: 'ok', prev });
      lines.push(line);
      prev = sha256(line);
    }
    await rewrite(lines);
    await expect(verifyJournal(stateDir)).resolves.toEqual({ ok: true, entries: 3 });
    const journal = await openJournal(stateDir, context());
    await journal.append({ phase: 'probe', result: 'ok' });
    await expect(verifyJournal(stateDir)).resolves.toEqual({ ok: true, entries: 4 });
    expect((await readJournal(stateDir)).map((e) => e.host)).toEqual([undefined, undefined, undefined, 'utc-pub1']);
  });
});

describe('another host\'s journal copied here', () => {
  it('is verified from the file alone, and with its head when one is beside it', async () => {
    await writeSample();
    const copies = join(stateDir, 'alterno');
    await mkdir(copies);
    const copy = join(copies, 'alterno.jsonl');
    await copyFile(journalFile(), copy);
    await expect(headFileBeside(copy)).resolves.toBeUndefined();
    await expect(verifyJournalFile(copy)).resolves.toEqual({ ok: true, entries: 5 });
    expect(await readJournalFile(copy)).toHaveLength(5);
    // The last line removed: the file alone cannot tell; its head can.
    const lines = (await readFile(copy, 'utf8')).trimEnd().split('\n');
    await writeFile(copy, lines.slice(0, 4).join('\n') + '\n');
    await expect(verifyJournalFile(copy)).resolves.toEqual({ ok: true, entries: 4 });
    await copyFile(join(stateDir, 'journal.head'), `${copy}.head`);
    await expect(headFileBeside(copy)).resolves.toBe(`${copy}.head`);
    await expect(verifyJournalFile(copy, `${copy}.head`)).resolves.toMatchObject({ ok: false, line: 5, problem: expect.stringContaining('removed from the end') });
  });

  it('a copy of a whole state directory finds journal.head beside journal.jsonl', async () => {
    await writeSample();
    await expect(headFileBeside(journalFile())).resolves.toBe(join(stateDir, 'journal.head'));
  });

  it('an edited line is named in the copy as in the original', async () => {
    const lines = await writeSample();
    const copy = join(stateDir, 'other.jsonl');
    lines[1] = lines[1]!.replace('1048576', '2048576');
    await writeFile(copy, lines.join('\n') + '\n');
    await expect(verifyJournalFile(copy)).resolves.toMatchObject({ ok: false, line: 2, problem: expect.stringContaining('line 2 (seq 2) was edited') });
  });
});

describe('newRunId', () => {
  it('is the UTC time to the second plus a random suffix', () => {
    expect(newRunId(new Date('2022-06-05T20:15:02.345Z'))).toMatch(/^20220605T201502Z-[0-9a-f]{6}$/);
  });

  it('sorts by time and does not repeat', () => {
    const early = newRunId(new Date('2022-06-05T20:15:02Z'));
    const late = newRunId(new Date('2022-06-05T20:30:00Z'));
    expect([late, early].sort()).toEqual([early, late]);
    expect(new Set(Array.from({ length: 50 }, () => newRunId(new Date('2022-06-05T20:15:02Z')))).size).toBeGreaterThan(45);
  });
});
