import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { startLab, type Lab } from './lab/sshd.js';
import { pullLogs, type LogRemote } from '../../src/core/memoria/log-pull.js';
import { loadRegistry } from '../../src/core/registry/registry.js';
import { createConnector } from '../../src/adapters/difusor.js';
import { helperLogRemote } from '../../src/adapters/log-remote.js';
import { AnswerTooLargeError, MAX_STDERR_BYTES, connectSsh, type RemoteShell } from '../../src/adapters/ssh.js';

/** What a difusor answers is read only so far, over a real sshd: a third party's server must not fill this host. */

const T = 120_000;
let lab: Lab;

beforeAll(async () => {
  lab = await startLab({ difusores: 1 });
}, T);

afterAll(async () => {
  await lab?.stop();
}, T);

test('a log that grows between listing and sending: the pull keeps what was listed, the helper is stopped there', async () => {
  const d1 = lab.difusor('d1');
  const logs = path.join(d1.dir, 'logs');
  await mkdir(logs, { recursive: true });
  const live = path.join(logs, 'access_log');
  await writeFile(live, 'GET / 200\n'.repeat(200));
  const glob = `${logs}/access_log*`;
  const loaded = await loadRegistry(await lab.writeRegistry({ difusores: { d1: { access_log: glob } } }));
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
  const connector = await createConnector(loaded.registry, loaded.registry.difusores, { rsyncAlongside: false });
  const session = await connector.open(loaded.registry.difusores[0]!);
  try {
    const remote = helperLogRemote(session);
    const growing: LogRemote = {
      async list(g) {
        const listed = await remote.list(g);
        // The night goes on: 4 MB more before the send starts.
        await appendFile(live, Buffer.alloc(4 << 20, 0x78));
        return listed;
      },
      sum: (...args) => remote.sum(...args),
      send: (...args) => remote.send(...args),
    };
    const dir = path.join(lab.dir, 'pulled');
    const first = await pullLogs({ dir, glob }, growing);
    expect(first.files[0]).toMatchObject({ how: 'new', pulled: 2000, size: 2000 });
    // The later bytes come next time, checked against what was kept.
    const second = await pullLogs({ dir, glob }, remote);
    expect(second.files[0]).toMatchObject({ how: 'resumed', pulled: 4 << 20 });
    // Buffer.equals: jest's toEqual walks 4 MB byte by byte for a minute.
    expect((await readFile(first.files[0]!.local)).equals(await readFile(live))).toBe(true);
  } finally {
    session.close();
    await connector.dispose();
  }
}, T);

describe('a command answering without end', () => {
  let shell: RemoteShell;
  beforeAll(async () => {
    const d1 = lab.difusor('d1');
    shell = await connectSsh({ host: d1.host, port: d1.port, user: d1.user, hostKey: d1.hostKey, privateKey: lab.clientKey, connectTimeoutMs: 10_000 });
  }, T);
  afterAll(() => shell?.close());

  test('streamed: at most the limit reaches the sink, then the command is stopped', async () => {
    const received: Buffer[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        received.push(chunk);
        done();
      },
    });
    const out = await shell.exec('yes prep', { stdoutTo: sink, stdoutLimit: 100_000, timeoutMs: 30_000 });
    expect(out.stdoutCut).toBe(true);
    expect(Buffer.concat(received)).toEqual(Buffer.from('prep\n'.repeat(20_000)));
  }, T);

  test('kept in memory: past the stated cap it is an error naming the command, and the connection still serves', async () => {
    const error = await shell.exec('yes difusor >&2', { timeoutMs: 30_000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AnswerTooLargeError);
    expect((error as Error).message).toMatch(new RegExp(`"yes difusor >&2" wrote more than ${MAX_STDERR_BYTES} bytes to stderr; a difusor's answer is capped there, the command was stopped$`));
    expect((await shell.exec('echo sigue')).stdout).toBe('sigue\n');
  }, T);
});
