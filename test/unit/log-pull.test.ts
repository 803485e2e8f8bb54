import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { appendFile, mkdtemp, readFile, readdir, rename, rm, stat, truncate, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pullLogs, type LogRemote } from '../../src/core/memoria/log-pull.js';

/** A difusor's log directory on this disk, spoken to as the helper's `logs` verb would be. */
function diskRemote(dir: string, opts: { failAfter?: number } = {}): LogRemote & { sent: number } {
  const remote = {
    sent: 0,
    async list() {
      const names = (await readdir(dir)).filter((n) => n.startsWith('access_log')).sort();
      return Promise.all(
        names.map(async (n) => {
          const s = await stat(path.join(dir, n));
          return { path: path.join(dir, n), size: s.size, inode: s.ino, mtime: Math.floor(s.mtimeMs / 1000) };
        }),
      );
    },
    async sum(_glob: string, file: string, offset: number, length: number) {
      const bytes = (await readFile(file)).subarray(offset, offset + length);
      return createHash('sha256').update(bytes).digest('hex');
    },
    async send(_glob: string, file: string, offset: number, sink: Writable) {
      let budget = opts.failAfter ?? Infinity;
      const meter = new Transform({
        transform(chunk: Buffer, _enc, done) {
          if (chunk.length > budget) {
            this.push(chunk.subarray(0, budget));
            remote.sent += budget;
            return done(new Error('connection lost'));
          }
          budget -= chunk.length;
          remote.sent += chunk.length;
          done(null, chunk);
        },
      });
      await pipeline(createReadStream(file, { start: offset, highWaterMark: 1024 }), meter, sink, { end: false });
    },
  };
  return remote;
}

let root: string;
let remoteDir: string;
let localDir: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'difusion-pull-'));
  remoteDir = path.join(root, 'remote');
  localDir = path.join(root, 'local');
  await import('node:fs/promises').then((fs) => fs.mkdir(remoteDir));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const pull = (remote: LogRemote, since?: Date) => pullLogs({ dir: localDir, glob: `${remoteDir}/access_log*`, since }, remote);
const copies = async (): Promise<Record<string, string>> => {
  const out: Record<string, string> = {};
  for (const n of (await readdir(localDir)).filter((n) => n !== 'index.json')) out[n.replace(/^\d+-/, '')] = await readFile(path.join(localDir, n), 'utf8');
  return out;
};

test('a first pull copies every file; a second pulls nothing', async () => {
  await writeFile(path.join(remoteDir, 'access_log'), 'a\nb\n');
  await writeFile(path.join(remoteDir, 'access_log.1'), 'old\n');
  const first = await pull(diskRemote(remoteDir));
  expect(first.files.map((f) => [path.basename(f.remote), f.how, f.pulled])).toEqual([
    ['access_log', 'new', 4],
    ['access_log.1', 'new', 4],
  ]);
  const again = diskRemote(remoteDir);
  const second = await pull(again);
  expect(second.bytesPulled).toBe(0);
  expect(again.sent).toBe(0);
  expect(second.files.map((f) => f.how)).toEqual(['complete', 'complete']);
});

test('a growing log: only the new bytes travel', async () => {
  const live = path.join(remoteDir, 'access_log');
  await writeFile(live, 'a\n'.repeat(3000));
  await pull(diskRemote(remoteDir));
  await appendFile(live, 'new line\n');
  const r = await pull(diskRemote(remoteDir));
  expect(r.files[0]).toMatchObject({ how: 'resumed', pulled: 9 });
  expect((await copies()).access_log).toBe(await readFile(live, 'utf8'));
});

test('at most the size listed is kept: a live log grown since, or a difusor streaming without end, fills nothing', async () => {
  const live = path.join(remoteDir, 'access_log');
  await writeFile(live, 'a\n'.repeat(100));
  const remote = diskRemote(remoteDir);
  const lengths: number[] = [];
  const endless: LogRemote = {
    list: (glob) => remote.list(glob),
    sum: (glob, file, offset, length) => remote.sum(glob, file, offset, length),
    async send(glob, file, offset, sink, length) {
      lengths.push(length);
      await remote.send(glob, file, offset, sink, length);
      // The file's later bytes, then 8 MB of anything: past the listed size, none of it is written here.
      for (let i = 0; i < 8; i++) if (!sink.write(Buffer.alloc(1 << 20, 0x7a))) await new Promise((resolve) => sink.once('drain', resolve));
    },
  };
  const first = await pull(endless);
  expect(lengths).toEqual([200]);
  expect(first.files[0]).toMatchObject({ how: 'new', pulled: 200, size: 200 });
  await appendFile(live, 'b\n');
  const second = await pull(endless);
  expect(lengths).toEqual([200, 2]);
  expect(second.files[0]).toMatchObject({ how: 'resumed', pulled: 2, size: 202 });
  expect((await copies()).access_log).toBe(await readFile(live, 'utf8'));
});

test('a pull cut off mid-file is resumed from its local size on the next run', async () => {
  const live = path.join(remoteDir, 'access_log');
  await writeFile(live, 'x'.repeat(10_000));
  await expect(pull(diskRemote(remoteDir, { failAfter: 4096 }))).rejects.toThrow(/connection lost/);
  const cut = (await copies()).access_log!;
  expect(cut.length).toBe(4096);
  const remote = diskRemote(remoteDir);
  const r = await pull(remote);
  expect(r.files[0]).toMatchObject({ how: 'resumed', pulled: 10_000 - 4096 });
  expect(remote.sent).toBe(10_000 - 4096);
  expect((await copies()).access_log).toBe('x'.repeat(10_000));
});

test('a copy whose last bytes differ from the difusor\'s is pulled again from the start', async () => {
  const live = path.join(remoteDir, 'access_log');
  await writeFile(live, 'first version\n');
  await pull(diskRemote(remoteDir));
  const [local] = (await readdir(localDir)).filter((n) => n !== 'index.json');
  await writeFile(path.join(localDir, local!), 'FIRST version'); // damaged here, and shorter than the remote
  const r = await pull(diskRemote(remoteDir));
  expect(r.files[0]).toMatchObject({ how: 'again', pulled: 14 });
  expect((await copies()).access_log).toBe('first version\n');
});

test('copytruncate (same file, now shorter) is pulled again', async () => {
  const live = path.join(remoteDir, 'access_log');
  await writeFile(live, 'a long first day\n');
  await pull(diskRemote(remoteDir));
  await truncate(live, 0);
  await appendFile(live, 'day 2\n');
  const r = await pull(diskRemote(remoteDir));
  expect(r.files[0]).toMatchObject({ how: 'again', pulled: 6 });
});

test('a rotation is known by inode: the renamed file is not pulled again, a vanished one is dropped here', async () => {
  await writeFile(path.join(remoteDir, 'access_log'), 'day 1\n');
  await writeFile(path.join(remoteDir, 'access_log.1'), 'day 0\n');
  await pull(diskRemote(remoteDir));
  // logrotate: .1 is compressed away (gone), access_log becomes .1, a new access_log starts.
  await rm(path.join(remoteDir, 'access_log.1'));
  await rename(path.join(remoteDir, 'access_log'), path.join(remoteDir, 'access_log.1'));
  await writeFile(path.join(remoteDir, 'access_log'), 'day 2\n');
  const remote = diskRemote(remoteDir);
  const r = await pull(remote);
  expect(remote.sent).toBe(6);
  // The new access_log often gets the deleted file's inode back: its bytes tell it apart ('again', not 'complete').
  expect(r.files.map((f) => [path.basename(f.remote), f.how === 'again' ? 'new' : f.how])).toEqual([
    ['access_log', 'new'],
    ['access_log.1', 'complete'],
  ]);
  expect(Object.values(await copies()).sort()).toEqual(['day 1\n', 'day 2\n']);
});

test('files last written before the period are not pulled', async () => {
  const old = path.join(remoteDir, 'access_log.9');
  await writeFile(old, 'ancient\n');
  await utimes(old, new Date('2021-01-01T00:00:00Z'), new Date('2021-01-01T00:00:00Z'));
  await writeFile(path.join(remoteDir, 'access_log'), 'now\n');
  const r = await pull(diskRemote(remoteDir), new Date('2022-06-04T00:00:00Z'));
  expect(r.older).toEqual([old]);
  expect(r.files.map((f) => path.basename(f.remote))).toEqual(['access_log']);
});

test('two names for one file (a symlink the glob also matches) are pulled and counted once', async () => {
  const { symlink } = await import('node:fs/promises');
  await writeFile(path.join(remoteDir, 'access_log.20220605'), 'today\n');
  await symlink('access_log.20220605', path.join(remoteDir, 'access_log'));
  const remote = diskRemote(remoteDir);
  // The helper lists with stat -L: a symlink shows its target's inode, as this fake does with stat().
  const r = await pull(remote);
  expect(r.files).toHaveLength(1);
  expect(remote.sent).toBe(6);
});
