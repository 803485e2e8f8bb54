import path from 'node:path';
import type { LogSource } from '../core/memoria/log-merge.js';
import { pullLogs } from '../core/memoria/log-pull.js';
import type { ReportPorts } from '../core/memoria/report.js';
import type { Difusor } from '../core/registry/types.js';
import type { DifusorConnector } from './difusor.js';
import { logFileSource } from './log-files.js';
import { encodeLogArg, helperLogRemote, parseLogList } from './log-remote.js';

/**
 * Where `report` gets each difusor's logs: an SSH difusor's are pulled into `<state_dir>/logs/<id>/` through
 * the helper's read-only `logs` verb; a local difusor's are read where they are (the same verb lists them).
 */
export function reportLogs(stateDir: string, connector: DifusorConnector): ReportPorts['logs'] {
  return async (difusor: Difusor, since: Date) => {
    const glob = difusor.access_log as string;
    const session = await connector.open(difusor);
    try {
      if (difusor.transport === 'local') {
        const out = await session.helper('logs', ['list', encodeLogArg(glob)]);
        if (out.code !== 0) throw new Error(`listing ${glob} failed: ${(out.stderr || out.stdout).trim()}`);
        const files = parseLogList(out.stdout).filter((f) => f.mtime * 1000 >= since.getTime());
        return { sources: await Promise.all(files.map((f) => logFileSource(f.path))) };
      }
      const pulled = await pullLogs({ dir: path.join(stateDir, 'logs', difusor.id), glob, since }, helperLogRemote(session));
      const sources: LogSource[] = await Promise.all(pulled.files.map((f) => logFileSource(f.local)));
      return { sources, pulled: { bytes: pulled.bytesPulled, files: pulled.files.length, older: pulled.older.length } };
    } finally {
      session.close();
    }
  };
}
