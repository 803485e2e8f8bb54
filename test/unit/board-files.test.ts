import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { writeBoardDir, type BoardFiles } from '../../src/core/probe/board-files.js';
import { ProbeHistory } from '../../src/core/records/probe-history.js';

/** A pid above Linux's pid_max: no process has it, as after a writer was killed. */
const DEAD_PID = 99_999_999;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'difusion-board-files-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function files(n: number): BoardFiles {
  return {
    page: { name: 'index.html', render: (dataDir) => `<html><a href="${dataDir}/board.json">ronda ${n}</a></html>\n` },
    data: { name: 'board.json', text: JSON.stringify({ n }) },
    roster: { name: 'roster.json', text: '{"difusores":[]}', logos: new Map([['logos/d1.png', Buffer.from('png')]]) },
    log: 'rounds.jsonl',
    csv: 'rounds.csv',
  };
}

test('each drawing is a numbered round directory the page links to; DIR\'s data are links to it; the last 3 kept', async () => {
  const out = path.join(dir, 'sitio');
  const history = new ProbeHistory(path.join(dir, 'state'), () => undefined);
  for (let n = 1; n <= 5; n++) await writeBoardDir(out, files(n), history);
  expect((await readdir(path.join(out, 'data'))).sort()).toEqual(['3', '4', '5']);
  expect(await readFile(path.join(out, 'index.html'), 'utf8')).toContain('href="data/5/board.json">ronda 5<');
  expect(JSON.parse(await readFile(path.join(out, 'data', '5', 'board.json'), 'utf8'))).toEqual({ n: 5 });
  for (const name of ['board.json', 'rounds.csv', 'rounds.jsonl']) {
    expect((await stat(path.join(out, name))).ino).toBe((await stat(path.join(out, 'data', '5', name))).ino);
  }
  expect((await readdir(out)).sort()).toEqual(['board.json', 'data', 'index.html', 'logos', 'roster.json', 'rounds.csv', 'rounds.jsonl']);
});

test('a killed writer\'s temporaries are removed by the next write; a running writer\'s are left alone', async () => {
  const out = path.join(dir, 'sitio');
  const history = new ProbeHistory(path.join(dir, 'state'), () => undefined);
  await writeBoardDir(out, files(1), history);
  await writeFile(path.join(out, `.tmp-${DEAD_PID}-index.html`), '<html><p>half');
  await mkdir(path.join(out, 'data', `.staging-${DEAD_PID}-x`));
  await writeFile(path.join(out, 'data', `.staging-${DEAD_PID}-x`, 'board.json'), '{"n":');
  await writeFile(path.join(out, `.tmp-${process.ppid}-board.json`), '{');
  await writeBoardDir(out, files(2), history);
  expect((await readdir(out)).filter((n) => n.startsWith('.'))).toEqual([`.tmp-${process.ppid}-board.json`]);
  expect((await readdir(path.join(out, 'data'))).sort()).toEqual(['1', '2']);
});
