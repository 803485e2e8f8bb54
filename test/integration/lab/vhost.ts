/** A difusor's Apache as its admin installs it: the project's vhost template, filled in as `onboard` fills it. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fillVhost } from '../../../src/core/registry/onboard.js';
import type { Difusor } from '../../../src/core/registry/types.js';
import { startApache, type Apache } from './apache.js';
import { ROOT } from '../support/cli.js';
import type { CertificatePair } from './tls.js';

export interface VhostOptions {
  tls?: CertificatePair;
  /** Edits the filled vhost before Apache reads it (an admin's own change, say). */
  edit?: (vhost: string) => string;
  /** The port of an Apache this one replaces, so the difusor's public URL stays the same. */
  port?: number;
}

export async function startVhost(difusor: { id: string; path: string }, opts: VhostOptions = {}): Promise<Apache & { vhost: string }> {
  const template = await readFile(join(ROOT, 'templates/apache-vhost.conf'), 'utf8');
  const filled = fillVhost(template, { id: difusor.id, path: difusor.path, public_url: 'http://127.0.0.1/' } as Difusor)
    // The lab's Apache listens on a port of its own and logs into its own directory.
    .replace(/<VirtualHost \*:80>/, '<VirtualHost *>')
    .replace(/^\s*(ErrorLog|CustomLog) .*$/gm, '');
  const tls = opts.tls
    ? `    SSLEngine on\n    SSLCertificateFile "${opts.tls.cert}"\n    SSLCertificateKeyFile "${opts.tls.key}"\n`
    : '';
  const vhost = (opts.edit ?? ((v: string) => v))(filled.replace(/<\/VirtualHost>/, `${tls}</VirtualHost>`));
  const apache = await startApache({
    docRoot: join(difusor.path, 'current'),
    port: opts.port,
    modules: ['rewrite', ...(opts.tls ? ['socache_shmcb', 'ssl'] : [])],
    extraConfig: vhost,
  });
  const url = opts.tls ? `https://127.0.0.1:${apache.port}/` : apache.url;
  return { ...apache, url, vhost };
}
