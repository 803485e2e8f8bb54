import { readFile } from 'node:fs/promises';
import type { Difusor } from '../../src/core/registry/types.js';
import { OnboardError, authorizedKeysLine, fillVhost, formatOnboarding, parsePublicKeyLine } from '../../src/core/registry/onboard.js';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBdtK6kAeW0x8VQ3cP+GSi9QqgBsLcS1qQb6Rh7Kp8Xz prep@iepc';

function difusor(over: Partial<Difusor> = {}): Difusor {
  return {
    id: 'ujed',
    name: 'Universidad Juárez del Estado de Durango',
    transport: 'ssh',
    host: 'prep.ujed.mx',
    port: 22,
    user: 'prep',
    host_key: 'ssh-ed25519 AAAA',
    path: '/var/www/prep',
    public_url: 'https://prep.ujed.mx/',
    status: 'active',
    access: 'restricted',
    ...over,
  };
}

describe('authorizedKeysLine', () => {
  test('pins the installed helper on the path, nothing else', () => {
    expect(authorizedKeysLine(difusor(), KEY)).toBe(
      `restrict,command="sh /usr/local/libexec/difusion-helper /var/www/prep" ${KEY}`,
    );
  });

  test('adds from= after the command when the registry sets it', () => {
    expect(authorizedKeysLine(difusor({ from: '200.23.1.0/24,!200.23.1.7' }), KEY)).toBe(
      `restrict,command="sh /usr/local/libexec/difusion-helper /var/www/prep",from="200.23.1.0/24,!200.23.1.7" ${KEY}`,
    );
  });

  test('a path with spaces or quotes is one shell word, and double quotes are escaped for sshd', () => {
    expect(authorizedKeysLine(difusor({ path: '/srv/sitio prep' }), KEY)).toBe(
      `restrict,command="sh /usr/local/libexec/difusion-helper '/srv/sitio prep'" ${KEY}`,
    );
    expect(authorizedKeysLine(difusor({ path: `/srv/o'brien "x"` }), KEY)).toBe(
      `restrict,command="sh /usr/local/libexec/difusion-helper '/srv/o'\\''brien \\"x\\"'" ${KEY}`,
    );
  });

  test('pins the access_log glob for the logs verb (report), quoted so it is never expanded', () => {
    expect(authorizedKeysLine(difusor({ access_log: '/var/log/httpd/prep access_log*' }), KEY)).toBe(
      `restrict,command="DIFUSION_ACCESS_LOG='/var/log/httpd/prep access_log*' sh /usr/local/libexec/difusion-helper /var/www/prep" ${KEY}`,
    );
    expect(() => authorizedKeysLine(difusor({ access_log: '/var/log/a\nb' }), KEY)).toThrow(OnboardError);
  });

  test('a control character in the path is refused', () => {
    expect(() => authorizedKeysLine(difusor({ path: '/srv/a\nb' }), KEY)).toThrow(OnboardError);
  });
});

describe('parsePublicKeyLine', () => {
  test('takes the first key line', () => {
    expect(parsePublicKeyLine(`${KEY}\n`, 'k.pub')).toBe(KEY);
  });
  test('refuses anything else without echoing it', () => {
    const secret = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE\n';
    let message = '';
    try {
      parsePublicKeyLine(secret, '/home/prep/.ssh/prep_ed25519.pub');
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toContain('/home/prep/.ssh/prep_ed25519.pub does not hold an OpenSSH public key line');
    expect(message).not.toContain('b3BlbnNzaC1rZXktdjE');
  });
});

describe('the vhost', () => {
  test('fills server name from public_url and every @PATH@, leaving no placeholder', async () => {
    const template = await readFile('templates/apache-vhost.conf', 'utf8');
    const vhost = fillVhost(template, difusor({ public_url: 'https://prep.ujed.mx:8443/' }));
    expect(vhost).not.toMatch(/@[A-Z_]+@/);
    expect(vhost).toContain('ServerName prep.ujed.mx\n');
    expect(vhost).toContain('DocumentRoot "/var/www/prep/current"');
    expect(vhost).toContain('<Directory "/var/www/prep/releases">');
    expect(vhost).toContain('<Directory "/var/www/prep/.staging">');
    expect(vhost).toContain('Options +FollowSymLinks -Indexes');
    expect(vhost).toContain('AllowOverride None');
    expect(vhost).toContain('Cache-Control "public, max-age=30"');
  });

  test('the notice rule is always on: no commented block for the admin to uncomment', async () => {
    const vhost = fillVhost(await readFile('templates/apache-vhost.conf', 'utf8'), difusor());
    const directives = vhost.split('\n').filter((l) => !/^\s*#/.test(l)).join('\n');
    expect(directives).toContain('RewriteCond %{DOCUMENT_ROOT}/aviso.json -f');
    expect(directives).toContain('RewriteCond %{REQUEST_URI} !^/(aviso\\.json|MANIFEST\\.sha256)$');
    expect(directives).toContain('RewriteRule ^ - [R=503,L]');
    expect(directives).toContain('ErrorDocument 503 /index.html');
    expect(directives).toContain('Header always set Cache-Control "no-store"');
    expect(vhost).not.toMatch(/^\s*#\s*(RewriteRule|<Directory|Alias)/m);
  });
});

describe('formatOnboarding', () => {
  test('everything for the admin, plus the registry fields', () => {
    const o = formatOnboarding({ difusor: difusor({ port: 2222 }), publicKey: KEY, vhostTemplate: 'ServerName @SERVER_NAME@ @PATH@' });
    expect(o.authorizedKeys).toBe(`restrict,command="sh /usr/local/libexec/difusion-helper /var/www/prep" ${KEY}`);
    expect(o.helperPath).toBe('/usr/local/libexec/difusion-helper');
    expect(o.helperInstall).toContain('install -m 0755 difusion-helper /usr/local/libexec/difusion-helper');
    expect(o.vhost).toBe('ServerName prep.ujed.mx /var/www/prep');
    expect(o.registryFields[0]).toBe('access: restricted');
    expect(o.registryFields[1]).toContain('ssh-keyscan -t ed25519 -p 2222 prep.ujed.mx');
    expect(o.notes).toEqual([]);
  });

  test('a public_url below a path gets a note about Alias', () => {
    const o = formatOnboarding({ difusor: difusor({ public_url: 'https://www.elsiglo.mx/prep/' }), publicKey: KEY, vhostTemplate: '' });
    expect(o.notes[0]).toContain('Alias /prep /var/www/prep/current');
  });

  test('a local difusor is refused', () => {
    expect(() =>
      formatOnboarding({ difusor: difusor({ transport: 'local', host: undefined }), publicKey: KEY, vhostTemplate: '' }),
    ).toThrow(/transport: local/);
  });
});
