/** Debian's apache2 with a config of the test's own, serving one DocumentRoot on 127.0.0.1. */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, killTree, settlesWithin, sleep, track, trackDir, untrack, untrackDir } from './procs.js';

const APACHE = '/usr/sbin/apache2';
const MODULES = '/usr/lib/apache2/modules';
const BASE_MODULES = ['mpm_event', 'authz_core', 'dir', 'mime', 'alias', 'headers'];

export interface ApacheOptions {
  /** Usually a difusor's `<path>/current` symlink; must be readable by www-data. */
  docRoot: string;
  port?: number;
  /** More modules by short name, e.g. ['rewrite']. */
  modules?: string[];
  /** Appended to the generated config (a vhost snippet under test, say); a function gets the port and directory once chosen. */
  extraConfig?: string | ((where: { port: number; dir: string }) => string);
}

export interface Apache {
  url: string;
  port: number;
  /** Its own directory: config, error.log, access.log. */
  dir: string;
  accessLog: string;
  errorLog: string;
  stop(): Promise<void>;
}

function config(dir: string, opts: ApacheOptions, port: number): string {
  const modules = [...new Set([...BASE_MODULES, ...(opts.modules ?? [])])];
  return [
    `ServerRoot ${dir}`,
    'ServerName 127.0.0.1',
    `Listen 127.0.0.1:${port}`,
    `PidFile ${join(dir, 'httpd.pid')}`,
    `DefaultRuntimeDir ${dir}`,
    ...modules.map((m) => `LoadModule ${m}_module ${MODULES}/mod_${m}.so`),
    'User www-data',
    'Group www-data',
    'TypesConfig /etc/mime.types',
    'StartServers 1',
    'ServerLimit 2',
    'ThreadsPerChild 16',
    'MaxRequestWorkers 32',
    `ErrorLog ${join(dir, 'error.log')}`,
    'LogLevel warn',
    'LogFormat "%h %l %u %t \\"%r\\" %>s %O \\"%{Referer}i\\" \\"%{User-Agent}i\\"" combined',
    `CustomLog ${join(dir, 'access.log')} combined`,
    `DocumentRoot "${opts.docRoot}"`,
    'DirectoryIndex index.html',
    '<Directory />',
    '  AllowOverride None',
    '  Require all denied',
    '</Directory>',
    `<Directory "${opts.docRoot}">`,
    // FollowSymLinks is what lets every request resolve `current` anew, so a switch is seen at once.
    '  Options FollowSymLinks',
    '  AllowOverride None',
    '  Require all granted',
    '</Directory>',
    typeof opts.extraConfig === 'function' ? opts.extraConfig({ port, dir }) : (opts.extraConfig ?? ''),
    '',
  ].join('\n');
}

async function answers(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return true;
  } catch {
    return false;
  }
}

export async function startApache(opts: ApacheOptions): Promise<Apache> {
  const dir = await mkdtemp(join(tmpdir(), 'difusion-apache-'));
  trackDir(dir);
  for (let attempt = 1; ; attempt++) {
    const port = opts.port ?? (await freePort('127.0.0.1'));
    try {
      return await launch(dir, opts, port);
    } catch (err) {
      if (opts.port !== undefined || attempt >= 5 || !/Address already in use/.test(String(err))) {
        await rm(dir, { recursive: true, force: true });
        untrackDir(dir);
        throw err;
      }
    }
  }
}

async function launch(dir: string, opts: ApacheOptions, port: number): Promise<Apache> {
  const confFile = join(dir, 'httpd.conf');
  const errorLog = join(dir, 'error.log');
  await writeFile(confFile, config(dir, opts, port));
  await writeFile(errorLog, '');
  const out = openSync(join(dir, 'stderr.log'), 'w');
  const child = spawn(APACHE, ['-f', confFile, '-DFOREGROUND'], { stdio: ['ignore', out, out], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
  closeSync(out);
  if (child.pid === undefined) throw new Error(`could not start ${APACHE}`);
  const pid = child.pid;
  track(pid);
  child.unref();
  let gone = false;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      gone = true;
      untrack(pid);
      resolve();
    });
  });

  const url = `http://127.0.0.1:${port}/`;
  const stop = async () => {
    if (!gone) {
      // SIGTERM is apache's immediate stop; it takes its workers down with it.
      killTree(pid, 'SIGTERM');
      if (!(await settlesWithin(exited, 5000))) killTree(pid, 'SIGKILL');
      await exited;
    }
    if (process.env.DIFUSION_LAB_KEEP !== '1') await rm(dir, { recursive: true, force: true });
    untrackDir(dir);
  };

  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && !gone) {
    if (await answers(url)) {
      return { url, port, dir, accessLog: join(dir, 'access.log'), errorLog, stop };
    }
    await sleep(50);
  }
  const logs = [join(dir, 'stderr.log'), errorLog].map((f) => readFileSync(f, 'utf8')).join('\n').trim();
  if (!gone) killTree(pid, 'SIGKILL');
  await exited;
  throw new Error(`apache2 on 127.0.0.1:${port} did not answer HTTP:\n${logs}`);
}
