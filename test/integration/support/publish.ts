import { execFile } from 'node:child_process';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { loadRegistry } from '../../../src/core/registry/registry.js';
import { runPublish, type PublishRunResult } from '../../../src/core/publish/publish-run.js';
import { openJournal, newRunId } from '../../../src/core/records/journal.js';
import { createConnector, type LinkTimeouts } from '../../../src/adapters/difusor.js';
import { fixedClock } from '../../../src/adapters/clock.js';
import type { PublishObserver } from '../../../src/core/publish/publish.js';

export const exec = promisify(execFile);

/** Inside the Durango 2022 window (UTC-5). */
export const IN_WINDOW = new Date('2022-06-06T10:00:00-05:00');

/** A publish with the real ports, in-process: real sshd, real rsync, real helper. */
export async function publish(
  registryFile: string,
  cutArg: string,
  opts: { latest?: boolean; dryRun?: boolean; only?: string[]; now?: Date; observer?: PublishObserver; link?: LinkTimeouts } = {},
): Promise<PublishRunResult> {
  const loaded = await loadRegistry(registryFile);
  if (!loaded.ok) throw new Error(`registry invalid: ${JSON.stringify(loaded.problems)}`);
  return runPublish(
    {
      registry: loaded.registry,
      cutArg,
      latest: opts.latest ?? false,
      only: opts.only ?? [],
      dryRun: opts.dryRun ?? false,
      simulacro: false,
    },
    {
      clock: fixedClock(opts.now ?? IN_WINDOW),
      connect: (reg, targets) => createConnector(reg, targets, opts.link),
      openJournal,
      newRunId: () => newRunId(),
      observer: opts.observer,
    },
  );
}

/** `sha256sum -c` of the live release, run where Apache would serve it from. */
export async function checkLive(root: string): Promise<{ ok: boolean; output: string }> {
  try {
    const { stdout, stderr } = await exec('sha256sum', ['-c', '--strict', '--quiet', 'MANIFEST.sha256'], {
      cwd: path.join(root, 'current'),
    });
    return { ok: true, output: stdout + stderr };
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string };
    return { ok: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

export async function liveCut(root: string): Promise<string> {
  const { stdout } = await exec('readlink', [path.join(root, 'current')]);
  return stdout.trim();
}

/** path → "size inode mtime" for every entry below dir: a byte-for-byte witness for "nothing changed". */
export async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (rel: string): Promise<void> => {
    const entries = await readdir(path.join(dir, rel), { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      const st = await stat(path.join(dir, p)).catch(() => undefined);
      out.set(p, st ? `${st.size} ${st.ino} ${st.mtimeMs} ${e.isSymbolicLink() ? 'link' : ''}` : 'dangling');
      if (e.isDirectory()) await walk(p);
    }
  };
  await walk('');
  return out;
}
