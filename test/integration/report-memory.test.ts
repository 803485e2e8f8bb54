/**
 * Memory of the memoria técnica follows distinct client addresses, never the log: a child counts a generated
 * log of 1.5M lines and one of 150k lines of the same shape (the same 5,000 addresses, IPv6 among them, whose
 * text is long enough to be a slice of its chunk), under a small V8 heap, and its peak resident memory
 * (VmHWM) is read from the child itself. Bounded, not timed.
 */
import { execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const MON = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun'];
const AGENTS = ['Mozilla/5.0 (X11; Linux x86_64; rv:101.0) Gecko/20100101 Firefox/101.0', 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)'];

/** `count` lines over June 2022 from 5,000 addresses, written fast from a template. */
async function writeLog(file: string, count: number): Promise<void> {
  const out = createWriteStream(file);
  const start = Date.UTC(2022, 5, 2) / 1000;
  const step = (25 * 86_400) / count;
  let batch = '';
  for (let i = 0; i < count; i++) {
    const t = new Date((start + Math.floor(i * step)) * 1000);
    const client = (i * 7919) % 5000;
    const host = client % 2 === 0 ? `2001:db8:${client.toString(16)}::${(client * 31).toString(16)}` : `198.51.${client >> 8}.${client & 255}`;
    const stamp = `${String(t.getUTCDate()).padStart(2, '0')}/${MON[t.getUTCMonth()]}/2022:${String(t.getUTCHours()).padStart(2, '0')}:${String(t.getUTCMinutes()).padStart(2, '0')}:${String(t.getUTCSeconds()).padStart(2, '0')} -0500`;
    batch += `${host} - - [${stamp}] "GET /p/${i % 97}.html HTTP/1.1" 200 ${1000 + (i % 5000)} "-" "${AGENTS[i % 13 === 0 ? 1 : 0]} ${i % 50}"\n`;
    if (batch.length > 1 << 20) {
      if (!out.write(batch)) await new Promise<void>((r) => out.once('drain', () => r()));
      batch = '';
    }
  }
  out.end(batch);
  await new Promise<void>((r) => out.once('finish', () => r()));
}

async function peak(file: string): Promise<{ lines: number; peakBytes: number }> {
  const { stdout } = await run(process.execPath, ['--max-old-space-size=64', '--import', './scripts/register-ts.mjs', 'test/support/count-log-child.ts', file], { maxBuffer: 1 << 20 });
  return JSON.parse(stdout) as { lines: number; peakBytes: number };
}

test('a log ten times longer needs no more memory: the peak stays within 30 % and under 250 MB', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'difusion-report-memory-'));
  try {
    await writeLog(join(dir, 'small'), 150_000);
    await writeLog(join(dir, 'large'), 1_500_000);
    const small = await peak(join(dir, 'small'));
    const large = await peak(join(dir, 'large'));
    expect(large.lines).toBe(1_500_000);
    expect(small.lines).toBe(150_000);
    expect(large.peakBytes).toBeLessThan(250e6);
    expect(large.peakBytes / small.peakBytes).toBeLessThan(1.3);
    // Most of either peak is Node and the TypeScript loader; what the longer log adds must stay small (it was
    // ~50 MB when each address kept its chunk of text alive).
    expect(large.peakBytes - small.peakBytes).toBeLessThan(25e6);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}, 120_000);
