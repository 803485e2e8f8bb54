import type { Writable } from 'node:stream';
import type { LogRemote, RemoteLogFile } from '../core/memoria/log-pull.js';
import type { DifusorSession, HelperOutput } from './difusor.js';

/**
 * The helper's read-only `logs` verb, spoken over a difusor session. Arguments go as plain tokens (a
 * restricted account accepts nothing else): '*', '?', ' ' and '=' as =2A, =3F, =20 and =3D.
 */
export function encodeLogArg(text: string): string {
  return text.replace(/[=*? ]/g, (c) => `=${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

const HOUR = 3_600_000;

function failed(what: string, out: HelperOutput): Error {
  const message = (out.stderr || out.stdout).trim().split('\n').slice(-3).join(' ') || `exit ${out.code}`;
  return new Error(`${what} failed on the difusor: ${message}`);
}

export function parseLogList(stdout: string): RemoteLogFile[] {
  const files: RemoteLogFile[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^f (\d+) (\d+) (\d+) (\/.*)$/.exec(line);
    if (m) files.push({ size: Number(m[1]), inode: Number(m[2]), mtime: Number(m[3]), path: m[4] as string });
  }
  return files.sort((a, b) => a.path.localeCompare(b.path));
}

export function helperLogRemote(session: DifusorSession): LogRemote {
  return {
    async list(glob) {
      const out = await session.helper('logs', ['list', encodeLogArg(glob)]);
      if (out.code !== 0) throw failed(`listing ${glob}`, out);
      return parseLogList(out.stdout);
    },
    async sum(glob, file, offset, length) {
      const out = await session.helper('logs', ['sum', encodeLogArg(glob), encodeLogArg(file), String(offset), String(length)]);
      if (out.code !== 0) throw failed(`checking ${file}`, out);
      return out.stdout.trim();
    },
    async send(glob, file, offset, sink: Writable, length) {
      if (!session.helperToStream) throw new Error('this difusor session cannot stream a file');
      // The helper sends to the file's end; the session stops it once the listed length has come.
      const out = await session.helperToStream('logs', ['send', encodeLogArg(glob), encodeLogArg(file), String(offset)], sink, {
        timeoutMs: 6 * HOUR,
        limit: length,
      });
      if (out.stdoutCut) return;
      if (out.code !== 0) throw failed(`pulling ${file}`, out);
    },
  };
}
