import { mkdtemp, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEFAULTS, formatProblem, loadRegistry, parseRegistry, SCHEMA_FILE } from '../../src/core/registry/registry.js';
import type { Registry, RegistryProblem } from '../../src/core/registry/types.js';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICHqukUT2pX3KxkOqs815bASqzH4PfkUXKO75Zg3iYvg';
const KEY2 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOecYEavARAFKkTBYyIhww9bQnuZ7Fe6Sy2h4n6cdlXX';

/** Strips the common indentation, so the first line after the backtick is line 1. */
function doc(strings: TemplateStringsArray, ...values: unknown[]): string {
  const text = strings.reduce((out, part, i) => out + part + (i < values.length ? String(values[i]) : ''), '');
  const lines = text.replace(/^\n/, '').replace(/\n[ ]*$/, '\n').split('\n');
  const indent = Math.min(...lines.filter((l) => l.trim()).map((l) => l.length - l.trimStart().length));
  return lines.map((l) => l.slice(indent)).join('\n');
}

// Line numbers on the right are the ones the assertions below refer to.
const BASE = doc`
  version: 1
  publication:
    timezone: America/Mexico_City
    window: { start: '2022-06-05T20:00', end: '2022-06-06T20:00' }
    simulacros:
      - { start: '2022-05-22T09:00', end: '2022-05-22T21:00' }
  difusores:
    - id: ujed
      name: Universidad Juárez
      host: prep.ujed.example
      user: prep
      host_key: ${KEY}
      path: /var/www/prep
      public_url: https://prep.ujed.example/
    - id: espejo
      name: Espejo local
      transport: local
      path: /srv/prep-espejo
      public_url: http://localhost/prep/
`;
//  1 version             8 - id: ujed         15 - id: espejo
//  2 publication         9   name            16   name
//  3   timezone         10   host            17   transport: local
//  4   window           11   user            18   path
//  5   simulacros       12   host_key        19   public_url
//  6     - {...}        13   path
//  7 difusores          14   public_url

/** BASE with line n replaced (the replacement may span several lines or be empty to delete). */
function withLine(n: number, replacement: string, text = BASE): string {
  const lines = text.split('\n');
  lines.splice(n - 1, 1, ...(replacement === '' ? [] : [replacement]));
  return lines.join('\n');
}

/** BASE with lines inserted after line n. */
function afterLine(n: number, insertion: string, text = BASE): string {
  const lines = text.split('\n');
  lines.splice(n, 0, insertion);
  return lines.join('\n');
}

const FILE = 'conf/difusores.yaml';

function problemsOf(text: string): RegistryProblem[] {
  const result = parseRegistry(text, FILE);
  if (result.ok) throw new Error('expected problems, the registry was valid');
  return result.problems;
}

/** "LINE:COL field" for each problem, the part every assertion pins exactly. */
function where(text: string): string[] {
  return problemsOf(text).map((p) => `${p.line}:${p.col} ${p.field}`);
}

function only(text: string): RegistryProblem {
  const problems = problemsOf(text);
  expect(problems.map(formatProblem)).toHaveLength(1);
  return problems[0]!;
}

function registryOf(text: string, file = FILE): Registry {
  const result = parseRegistry(text, file);
  if (!result.ok) throw new Error(`expected a valid registry:\n${result.problems.map(formatProblem).join('\n')}`);
  return result.registry;
}

describe('a valid registry', () => {
  it('applies the defaults', () => {
    const registry = registryOf(BASE);
    expect(registry.version).toBe(1);
    expect(registry.publication).toMatchObject({
      timezone: 'America/Mexico_City',
      window: { start: '2022-06-05T20:00', end: '2022-06-06T20:00' },
      simulacros: [{ start: '2022-05-22T09:00', end: '2022-05-22T21:00' }],
      keep_releases: 5,
      concurrency: 8,
      ssh: { connect_timeout_s: 10 },
    });
    expect(registry.difusores[0]).toEqual({
      id: 'ujed',
      name: 'Universidad Juárez',
      transport: 'ssh',
      host: 'prep.ujed.example',
      port: 22,
      user: 'prep',
      host_key: KEY,
      path: '/var/www/prep',
      public_url: 'https://prep.ujed.example/',
      status: 'active',
      access: 'shell',
      compress: false,
    });
    expect(registry.difusores[1]).toMatchObject({ id: 'espejo', transport: 'local', status: 'active' });
    expect(registry.difusores[1]!.host).toBeUndefined();
  });

  it('has no simulacros when none are declared', () => {
    expect(registryOf(withLine(5, '', withLine(6, ''))).publication.simulacros).toEqual([]);
  });

  it('keeps the values it was given', () => {
    const registry = registryOf(
      afterLine(
        6,
        doc`
          keep_releases: 3
          concurrency: 2
          ssh: { connect_timeout_s: 4 }
          official_url: https://prep.example.mx/`.replace(/^/gm, '  ').trimEnd(),
        afterLine(11, '    port: 2222\n    status: suspended\n    access: restricted\n    from: 203.0.113.10,198.51.100.0/24\n    compress: true'),
      ),
    );
    expect(registry.publication).toMatchObject({ keep_releases: 3, concurrency: 2, ssh: { connect_timeout_s: 4 }, official_url: 'https://prep.example.mx/' });
    expect(registry.difusores[0]).toMatchObject({ port: 2222, status: 'suspended', access: 'restricted', from: '203.0.113.10,198.51.100.0/24', compress: true });
  });

  it('makes the file absolute and resolves its paths against the registry directory', () => {
    const text = afterLine(
      6,
      '  signing_key: keys/manifest.key\n  state_dir: estado\n  ssh: { identity_file: ~/.ssh/prep_ed25519 }',
      afterLine(14, '    logo: logos/ujed.png'),
    );
    const registry = registryOf(text, 'conf/difusores.yaml');
    const dir = path.resolve('conf');
    expect(registry.file).toBe(path.join(dir, 'difusores.yaml'));
    expect(registry.publication.signing_key).toBe(path.join(dir, 'keys/manifest.key'));
    expect(registry.publication.state_dir).toBe(path.join(dir, 'estado'));
    expect(registry.publication.ssh.identity_file).toBe(path.join(os.homedir(), '.ssh/prep_ed25519'));
    expect(registry.difusores[0]!.logo).toBe(path.join(dir, 'logos/ujed.png'));
  });

  it('puts the state directory beside the registry by default and keeps absolute paths', () => {
    const registry = registryOf(afterLine(6, '  ssh: { identity_file: /etc/difusion/id_ed25519 }'), '/srv/prep/difusores.yaml');
    expect(registry.publication.state_dir).toBe('/srv/prep/.difusion');
    expect(registry.publication.ssh.identity_file).toBe('/etc/difusion/id_ed25519');
  });

  it('resolves a relative identity file against the registry directory', () => {
    const registry = registryOf(afterLine(6, '  ssh: { identity_file: keys/id_ed25519 }'), '/srv/prep/difusores.yaml');
    expect(registry.publication.ssh.identity_file).toBe('/srv/prep/keys/id_ed25519');
  });

  it('accepts IPv4 and IPv6 hosts, UTC, and seconds in wall times', () => {
    expect(registryOf(withLine(10, '    host: 192.0.2.7')).difusores[0]!.host).toBe('192.0.2.7');
    expect(registryOf(withLine(10, '    host: 2001:db8::7')).difusores[0]!.host).toBe('2001:db8::7');
    expect(registryOf(withLine(3, '  timezone: UTC')).publication.timezone).toBe('UTC');
    expect(registryOf(withLine(4, "  window: { start: '2022-06-05T20:00:30', end: '2022-06-06T20:00:00' }")).publication.window.start).toBe(
      '2022-06-05T20:00:30',
    );
  });

  it('follows YAML anchors and aliases', () => {
    const text = afterLine(14, '    contact: &uti { name: UTI, email: uti@ujed.example }', afterLine(19, '    contact: *uti'));
    expect(registryOf(text).difusores[1]!.contact).toEqual({ name: 'UTI', email: 'uti@ujed.example' });
  });

  it('documents in the schema the same defaults the loader applies', () => {
    const schema = JSON.parse(readFileSync(SCHEMA_FILE, 'utf8'));
    const difusor = schema.definitions.difusor.properties;
    const publication = schema.definitions.publication.properties;
    expect({
      transport: difusor.transport.default,
      port: difusor.port.default,
      status: difusor.status.default,
      access: difusor.access.default,
      compress: difusor.compress.default,
      keep_releases: publication.keep_releases.default,
      concurrency: publication.concurrency.default,
      switch_deadline_s: publication.switch_deadline_s.default,
      lease_s: publication.lease_s.default,
      connect_timeout_s: publication.ssh.properties.connect_timeout_s.default,
      state_dir: publication.state_dir.default,
    }).toEqual(DEFAULTS);
  });
});

describe('YAML syntax', () => {
  it('reports an unclosed flow mapping where it opens', () => {
    const problem = only(withLine(4, "  window: { start: '2022-06-05T20:00', end"));
    expect(`${problem.line}:${problem.col}`).toBe('4:11');
    expect(problem.message).toMatch(/^Flow map .* \(opened here, never closed\)$/);
  });

  it('reports an unclosed flow sequence where it opens', () => {
    expect(only(withLine(6, "    - [ 1, 2")).line).toBe(6);
    expect(only(withLine(6, "    - [ 1, 2")).col).toBe(7);
  });

  it('reports a duplicate key at the duplicate', () => {
    const problem = only(afterLine(10, '    host: otro.example'));
    expect(`${problem.line}:${problem.col} ${problem.message}`).toMatch(/^11:5 Map keys must be unique/);
  });

  it('reports a tab used for indentation with its line', () => {
    expect(problemsOf(withLine(11, '\tuser: prep'))[0]!.line).toBe(11);
  });

  it('reports an unterminated quoted string where it opens, not at the end of the file', () => {
    const problem = only(withLine(9, "    name: 'Universidad"));
    expect(`${problem.line}:${problem.col}`).toBe('9:11');
    expect(problem.message).toBe("Missing closing 'quote (opened here, never closed)");
  });

  it('reports data that refers to itself through an alias like any other mistake', () => {
    expect(where(withLine(2, 'publication: &p\n  loop: *p'))).toEqual(['3:3 publication.loop']);
    expect(where(withLine(6, '    - &s { start: *s }'))).toEqual(['6:10 publication.simulacros[0].end', '6:19 publication.simulacros[0].start']);
  });

  it('refuses several documents in one file', () => {
    expect(problemsOf(`${BASE}---\nversion: 1\n`)[0]!.message).toMatch(/multiple documents|single document/i);
  });

  it('refuses an empty file', () => {
    expect(only('')).toMatchObject({ line: 1, col: 1, field: '', message: expect.stringMatching(/empty/) });
    expect(only('# only a comment\n')).toMatchObject({ line: 1, col: 1, message: expect.stringMatching(/empty/) });
  });

  it('refuses a document that is not a mapping', () => {
    expect(only('- 1\n- 2\n')).toMatchObject({ line: 1, col: 1, field: '', message: 'must be a mapping (key: value lines)' });
  });
});

describe('schema rules', () => {
  it('points at an unknown key itself and suggests the near one', () => {
    const problem = only(afterLine(11, '    hostkey: x'));
    expect(`${problem.line}:${problem.col} ${problem.field}`).toBe('12:5 difusores[0].hostkey');
    expect(problem.message).toBe('unknown key "hostkey" (did you mean "host_key"?)');
  });

  it('reports unknown keys at the top and in publication', () => {
    expect(where(afterLine(1, 'verison: 1'))).toEqual(['2:1 verison']);
    expect(where(afterLine(3, '  zona: x'))).toEqual(['4:3 publication.zona']);
    expect(where(afterLine(4, '  window2: { a: 1 }'))).toEqual(['5:3 publication.window2']);
  });

  it('reports an unknown key inside a flow mapping', () => {
    expect(where(withLine(4, "  window: { start: '2022-06-05T20:00', end: '2022-06-06T20:00', fin: x }"))).toEqual(['4:65 publication.window.fin']);
  });

  it('points a missing required key at the mapping that lacks it', () => {
    expect(where(withLine(12, ''))).toEqual(['8:5 difusores[0].host_key']);
    expect(problemsOf(withLine(12, ''))[0]!.message).toBe('is required for ssh difusores (or set transport: local)');
    expect(where(withLine(16, ''))).toEqual(['15:5 difusores[1].name']);
    expect(where(withLine(3, ''))).toEqual(['2:1 publication.timezone']);
    expect(where(withLine(10, '', withLine(11, '')))).toEqual(['8:5 difusores[0].host', '8:5 difusores[0].user']);
  });

  it('points a missing top-level key at the document mapping', () => {
    expect(where(withLine(1, ''))).toEqual(['1:1 version']);
    expect(where(`# comment\n${withLine(1, '')}`)).toEqual(['2:1 version']);
  });

  it.each([
    [1, 'version: 2', '1:10 version', 'must be 1'],
    [10, '    port: "22"', '11:11 difusores[0].port', 'must be a whole number'],
    [10, '    port: 70000', '11:11 difusores[0].port', 'must be <= 65535'],
    [10, '    status: paused', '11:13 difusores[0].status', 'must be one of: active, suspended'],
    [10, '    access: root', '11:13 difusores[0].access', 'must be one of: shell, restricted'],
    [10, '    from: "10.0.0.1 ,x"', '11:11 difusores[0].from', 'must be a comma-separated list'],
    [10, '    contact: { email: nadie }', '11:23 difusores[0].contact.email', 'must be an e-mail address'],
    [10, '    contact: { nombre: x }', '11:16 difusores[0].contact.nombre', 'unknown key "nombre" (allowed: name, email, phone)'],
    [6, '  keep_releases: 1', '7:18 publication.keep_releases', 'must be >= 2'],
    [6, '  concurrency: 65', '7:16 publication.concurrency', 'must be <= 64'],
    [6, '  concurrency: 1.5', '7:16 publication.concurrency', 'must be a whole number'],
    [6, '  ssh: { connect_timeout_s: 0 }', '7:29 publication.ssh.connect_timeout_s', 'must be >= 1'],
    [6, '  simulacros2: []', '7:3 publication.simulacros2', 'unknown key'],
  ])('inserted after line %i, "%s" is reported at %s', (line, text, expected, message) => {
    const fixture = line === 1 ? withLine(1, text) : afterLine(line, text);
    const problem = only(fixture);
    expect(`${problem.line}:${problem.col} ${problem.field}`).toBe(expected);
    expect(problem.message).toContain(message);
  });

  it.each([
    ['UJED', 'uppercase'],
    ['-ujed', 'leading hyphen'],
    ['ujed-', 'trailing hyphen'],
    ['u_jed', 'underscore'],
    ['a'.repeat(41), 'longer than 40'],
  ])('refuses the id "%s" (%s)', (id) => {
    const problem = only(withLine(8, `  - id: ${id}`));
    expect(`${problem.line}:${problem.col} ${problem.field}`).toBe('8:9 difusores[0].id');
    expect(problem.message).toMatch(/must be a slug/);
  });

  it.each(['Prep', '1prep', 'prep user', 'a'.repeat(33), '-prep'])('refuses the user "%s"', (user) => {
    expect(where(withLine(11, `    user: "${user}"`))).toEqual(['11:11 difusores[0].user']);
  });

  it('says a key with no value has no value', () => {
    expect(only(withLine(10, '    host:')).message).toBe('has no value (expected text)');
    expect(where(withLine(10, '    host:'))).toEqual(['10:5 difusores[0].host']);
  });

  it('wants at least one difusor', () => {
    expect(only(doc`
      version: 1
      publication:
        timezone: America/Mexico_City
        window: { start: '2022-06-05T20:00', end: '2022-06-06T20:00' }
      difusores: []
    `)).toMatchObject({ line: 5, col: 12, field: 'difusores', message: 'must list at least one difusor' });
  });
});

describe('time zone', () => {
  it.each([
    ['America/Durangoo', /unknown time zone/],
    ['Mars/Olympus_Mons', /unknown time zone/],
    ['EST', /not an IANA zone name/],
    ['CST6CDT', /not an IANA zone name/],
    ['UTC-5', /unknown time zone|not an IANA zone name/],
    ['"+05:00"', /unknown time zone|not an IANA zone name/],
    ['america/mexico_city', /write it as "America\/Mexico_City"/],
  ])('refuses %s', (zone, message) => {
    const problem = only(withLine(3, `  timezone: ${zone}`));
    expect(`${problem.line}:${problem.col} ${problem.field}`).toBe('3:13 publication.timezone');
    expect(problem.message).toMatch(message);
  });

  it.each(['America/Monterrey', 'America/Tijuana', 'Etc/UTC', 'Europe/Madrid'])('accepts %s', (zone) => {
    expect(registryOf(withLine(3, `  timezone: ${zone}`)).publication.timezone).toBe(zone);
  });
});

describe('wall times and the window', () => {
  const window = (start: string, end: string): string => withLine(4, `  window: { start: '${start}', end: '${end}' }`);

  it.each([
    ['2022-02-30T10:00', 'is not a real date'],
    ['2021-02-29T10:00', 'is not a real date'],
    ['2022-13-01T10:00', 'is not a real date'],
    ['2022-06-00T10:00', 'is not a real date'],
    ['2022-06-05T24:00', 'is not a real time of day'],
    ['2022-06-05T20:60', 'is not a real time of day'],
    ['2022-06-05T20:00:61', 'is not a real time of day'],
  ])('refuses the start %s', (start, message) => {
    const problem = only(window(start, '2022-06-06T20:00'));
    expect(`${problem.line}:${problem.col} ${problem.field}`).toBe('4:20 publication.window.start');
    expect(problem.message).toContain(message);
  });

  it.each(['2022-06-05 20:00', '2022-06-05T20', '2022-06-05T20:00Z', '2022-06-05T20:00-05:00', '5/6/2022 20:00'])('refuses the format %s', (start) => {
    const problem = only(window(start, '2022-06-06T20:00'));
    expect(problem.field).toBe('publication.window.start');
    expect(problem.message).toMatch(/must be a local wall time/);
  });

  it('refuses a window that ends before it starts, at its end', () => {
    const problem = only(window('2022-06-06T20:00', '2022-06-05T20:00'));
    expect(`${problem.line}:${problem.col} ${problem.field}`).toBe('4:45 publication.window.end');
    expect(problem.message).toBe('must be after start (2022-06-06 20:00)');
  });

  it('refuses an empty window', () => {
    expect(where(window('2022-06-05T20:00', '2022-06-05T20:00:00'))).toEqual(['4:45 publication.window.end']);
  });

  it('refuses a simulacro that ends before it starts', () => {
    const problem = only(withLine(6, "    - { start: '2022-05-22T21:00', end: '2022-05-22T09:00' }"));
    expect(`${problem.line}:${problem.col} ${problem.field}`).toBe('6:41 publication.simulacros[0].end');
  });

  it('refuses a simulacro that runs into the window', () => {
    const text = afterLine(6, "    - { start: '2022-06-05T09:00', end: '2022-06-05T21:00' }");
    const problem = only(text);
    expect(`${problem.line}:${problem.col} ${problem.field}`).toBe('7:41 publication.simulacros[1].end');
    expect(problem.message).toBe('the simulacro must end by the start of the publication window (2022-06-05 20:00)');
  });

  it('accepts a simulacro that ends as the window starts', () => {
    expect(registryOf(afterLine(6, "    - { start: '2022-06-05T09:00', end: '2022-06-05T20:00' }")).publication.simulacros).toHaveLength(2);
  });

  it('reports a bad simulacro date without a second complaint about its order', () => {
    expect(where(withLine(6, "    - { start: '2022-05-32T09:00', end: '2022-05-22T21:00' }"))).toEqual(['6:16 publication.simulacros[0].start']);
  });
});

describe('paths', () => {
  it.each([
    ['var/www/prep', 'must be an absolute path'],
    ['/', 'must not be the root directory'],
    ['/var//www', 'must not contain "//"'],
    ['/var/www/', 'must not end with "/"'],
    ['/var/www/../etc', 'must not contain ".."'],
    ['/var/./www', 'must not contain "." components'],
    ['~/prep', 'must be an absolute path'],
  ])('refuses the path %s', (value, message) => {
    const problem = only(withLine(13, `    path: ${value}`));
    expect(`${problem.line}:${problem.col} ${problem.field}`).toBe('13:11 difusores[0].path');
    expect(problem.message).toContain(message);
  });

  it('applies the same rules to a local difusor', () => {
    expect(where(withLine(18, '    path: /srv/prep/'))).toEqual(['18:11 difusores[1].path']);
  });

  it('wants an absolute access log path', () => {
    expect(where(afterLine(14, '    access_log: logs/access_log'))).toEqual(['15:17 difusores[0].access_log']);
  });

  it('expands only "~/" in the identity file', () => {
    expect(where(afterLine(6, '  ssh: { identity_file: ~prep/.ssh/id }'))).toEqual(['7:25 publication.ssh.identity_file']);
  });
});

describe('hosts', () => {
  it.each([
    ['-oProxyCommand=touch', 'must not start with "-"'],
    ['"[2001:db8::1]"', 'write an IPv6 address without brackets'],
    ['prep_ujed.example', 'is not a DNS name or an IP address'],
    ['prep..ujed.example', 'is not a DNS name or an IP address'],
    ['-prep.example', 'must not start with "-"'],
    ['prep-.example', 'is not a DNS name or an IP address'],
    ['192.0.2.300', 'is not a valid IPv4 address'],
    ['"prep ujed"', 'is not a DNS name or an IP address'],
  ])('refuses %s', (host, message) => {
    const problem = only(withLine(10, `    host: ${host}`));
    expect(`${problem.line}:${problem.col} ${problem.field}`).toBe('10:11 difusores[0].host');
    expect(problem.message).toContain(message);
  });
});

describe('host keys', () => {
  it.each([
    ['ssh-ed25519', /expected "<type> <base64-key>/],
    ['ssh-dss AAAAB3NzaC1kc3MAAACBAP', /unsupported key type "ssh-dss"/],
    ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC', /truncated|32 bytes|base64/],
    ['ssh-ed25519 AAAA$$$', /not valid base64/],
    [`ssh-rsa ${KEY.split(' ')[1]}`, /does not hold a ssh-rsa key/],
  ])('refuses %s', (key, message) => {
    const problem = only(withLine(12, `    host_key: ${key}`));
    expect(`${problem.line}:${problem.col} ${problem.field}`).toBe('12:15 difusores[0].host_key');
    expect(problem.message).toMatch(/^not a usable host key: /);
    expect(problem.message).toMatch(message);
  });

  it('accepts a key line with a comment', () => {
    expect(registryOf(withLine(12, `    host_key: ${KEY} root@prep`)).difusores[0]!.host_key).toBe(`${KEY} root@prep`);
  });
});

describe('URLs', () => {
  it.each([
    ['ftp://prep.ujed.example/', 'must be an http or https URL'],
    ['prep.ujed.example', 'is not a URL'],
    ['"https://user:secreto@prep.ujed.example/"', 'must not contain a user name or password'],
    ['javascript:alert(1)', 'must be an http or https URL'],
  ])('refuses the public URL %s', (url, message) => {
    const problem = only(withLine(14, `    public_url: ${url}`));
    expect(`${problem.line}:${problem.col} ${problem.field}`).toBe('14:17 difusores[0].public_url');
    expect(problem.message).toContain(message);
  });

  it('checks the official URL too', () => {
    expect(where(afterLine(6, '  official_url: prep2022-dgo.mx'))).toEqual(['7:17 publication.official_url']);
  });
});

describe('transport: local', () => {
  it('refuses each ssh-only field, pointing at its key', () => {
    const text = afterLine(17, '    host: espejo.example\n    port: 22\n    user: prep\n    host_key: x\n    access: restricted\n    from: 10.0.0.1\n    compress: true');
    expect(where(text)).toEqual([
      '18:5 difusores[1].host',
      '19:5 difusores[1].port',
      '20:5 difusores[1].user',
      '21:5 difusores[1].host_key',
      '22:5 difusores[1].access',
      '23:5 difusores[1].from',
      '24:5 difusores[1].compress',
    ]);
    expect(problemsOf(text)[0]!.message).toBe('"host" applies only to ssh difusores; this one has transport: local');
  });

  it('refuses an unknown transport', () => {
    expect(only(withLine(17, '    transport: ftp'))).toMatchObject({ line: 17, col: 16, field: 'difusores[1].transport' });
  });
});

describe('uniqueness', () => {
  const second = (id: string, host: string, port: number, dir: string): string => doc`
    - id: ${id}
      name: Otro
      host: ${host}
      port: ${port}
      user: prep
      host_key: ${KEY2}
      path: ${dir}
      public_url: https://otro.example/
  `.replace(/^/gm, '  ').trimEnd();

  it('refuses a repeated id at the second one', () => {
    const problem = only(afterLine(14, second('ujed', 'otro.example', 22, '/var/www/prep')));
    expect(`${problem.line}:${problem.col} ${problem.field}`).toBe('15:9 difusores[1].id');
    expect(problem.message).toBe('duplicate id "ujed" (also difusores[0])');
  });

  it('refuses two difusores on the same host, port and path, whatever the case of the host', () => {
    const problem = only(afterLine(14, second('otro', 'PREP.ujed.example', 22, '/var/www/prep')));
    expect(`${problem.line}:${problem.col} ${problem.field}`).toBe('21:11 difusores[1].path');
    expect(problem.message).toMatch(/same host, port and path as difusores\[0\]/);
  });

  it('accepts the same host and path on another port, or another path on the same host', () => {
    expect(registryOf(afterLine(14, second('otro', 'prep.ujed.example', 2222, '/var/www/prep'))).difusores).toHaveLength(3);
    expect(registryOf(afterLine(14, second('otro', 'prep.ujed.example', 22, '/var/www/prep2'))).difusores).toHaveLength(3);
  });

  it('refuses two local difusores on the same directory', () => {
    const text = `${BASE}  - id: espejo2\n    name: Otro espejo\n    transport: local\n    path: /srv/prep-espejo\n    public_url: http://localhost/b/\n`;
    expect(where(text)).toEqual(['23:11 difusores[2].path']);
  });
});

describe('control characters', () => {
  it('refuses one in any string, at the value', () => {
    const problem = only(withLine(9, '    name: "Universidad\\tJuárez"'));
    expect(`${problem.line}:${problem.col} ${problem.field}`).toBe('9:11 difusores[0].name');
    expect(problem.message).toBe('contains the control character U+0009; remove it');
  });

  it('refuses a trailing newline from a block scalar', () => {
    expect(where(withLine(9, '    name: |\n      Universidad'))).toEqual(['9:11 difusores[0].name']);
  });

  it('refuses an invisible direction override in a name', () => {
    expect(only(withLine(9, '    name: "Universidad \\u202Eazeruj"')).message).toMatch(/U\+202E/);
  });

  it('never echoes one raw in a problem', () => {
    const problem = only(afterLine(11, '    "ho\\e[31mst": x'));
    expect(problem.field).toBe('difusores[0]["ho\\u001b[31mst"]');
    expect(problem.message).toMatch(/^unknown key "ho\\u001b\[31mst"/);
    expect(formatProblem(problem)).not.toMatch(/\p{Cc}/u);
  });

  it('refuses one inside a contact', () => {
    expect(where(afterLine(14, '    contact: { name: "Ana\\u0000" }'))).toEqual(['15:22 difusores[0].contact.name']);
  });
});

describe('all problems at once', () => {
  it('lists every problem, sorted by position', () => {
    const text = doc`
      version: 1
      publication:
        timezone: America/Mexico_Cty
        window: { start: '2022-06-05T20:00', end: '2022-06-04T20:00' }
        keep_releases: 1
      difusores:
        - id: ujed
          name: Universidad Juárez
          host: prep.ujed.example
          user: prep
          host_key: ssh-ed25519 AAAA
          path: /var/www/prep/
          public_url: https://prep.ujed.example/
          colour: blue
        - id: ujed
          name: Espejo
          transport: local
          port: 22
          path: /srv/espejo
          public_url: localhost
    `;
    expect(problemsOf(text).map(formatProblem)).toEqual([
      'conf/difusores.yaml:3:13 publication.timezone: unknown time zone "America/Mexico_Cty"; use an IANA name such as America/Mexico_City',
      'conf/difusores.yaml:4:45 publication.window.end: must be after start (2022-06-05 20:00)',
      'conf/difusores.yaml:5:18 publication.keep_releases: must be >= 2',
      'conf/difusores.yaml:11:15 difusores[0].host_key: not a usable host key: the key data does not hold a ssh-ed25519 key',
      'conf/difusores.yaml:12:11 difusores[0].path: must not end with "/"',
      'conf/difusores.yaml:14:5 difusores[0].colour: unknown key "colour" (allowed: id, name, transport, host, port, user, host_key, path, public_url, redirect_hosts, contact, status, suspended_at, suspension_reason, access, compress, from, access_log, logo)',
      'conf/difusores.yaml:15:9 difusores[1].id: duplicate id "ujed" (also difusores[0])',
      'conf/difusores.yaml:18:5 difusores[1].port: "port" applies only to ssh difusores; this one has transport: local',
      'conf/difusores.yaml:20:17 difusores[1].public_url: "localhost" is not a URL; write it in full, e.g. https://prep.example.mx/',
    ]);
  });
});

describe('formatProblem', () => {
  const problem = { line: 3, col: 7, field: 'publication.timezone', message: 'unknown' };

  it('prints FILE:LINE:COL field: message with the file as given', () => {
    expect(formatProblem({ ...problem, file: 'difusores.yaml' })).toBe('difusores.yaml:3:7 publication.timezone: unknown');
  });

  it('shortens a path below the working directory', () => {
    expect(formatProblem({ ...problem, file: path.resolve('conf/difusores.yaml') })).toBe('conf/difusores.yaml:3:7 publication.timezone: unknown');
    expect(formatProblem({ ...problem, file: './difusores.yaml' })).toBe('difusores.yaml:3:7 publication.timezone: unknown');
  });

  it('keeps a path elsewhere as given', () => {
    expect(formatProblem({ ...problem, file: '/etc/difusion/difusores.yaml' })).toBe('/etc/difusion/difusores.yaml:3:7 publication.timezone: unknown');
  });

  it('leaves out an empty field', () => {
    expect(formatProblem({ ...problem, field: '', file: 'd.yaml' })).toBe('d.yaml:3:7 unknown');
  });
});

describe('loadRegistry', () => {
  it('reads a file and names it in its problems', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'difusion-registry-'));
    const file = path.join(dir, 'difusores.yaml');
    await writeFile(file, withLine(3, '  timezone: Nowhere/Land'));
    const result = await loadRegistry(file);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.problems).toEqual([{ file, line: 3, col: 13, field: 'publication.timezone', message: expect.stringMatching(/unknown time zone/) }]);
  });

  it('reports a missing file as a problem', async () => {
    const result = await loadRegistry('/nonexistent/difusores.yaml');
    expect(result).toEqual({
      ok: false,
      problems: [{ file: '/nonexistent/difusores.yaml', line: 1, col: 1, field: '', message: expect.stringMatching(/no such file/) }],
    });
  });

  it('reports a directory as a problem', async () => {
    const result = await loadRegistry(os.tmpdir());
    expect(result.ok ? [] : result.problems.map((p) => p.message)).toEqual(['is a directory, not a registry file']);
  });

  it('loads the bundled sample', async () => {
    const result = await loadRegistry('difusores.yaml');
    if (!result.ok) throw new Error(result.problems.map(formatProblem).join('\n'));
    expect(result.registry.file).toBe(path.resolve('difusores.yaml'));
    expect(result.registry.difusores.map((d) => `${d.id}:${d.transport}:${d.status}`)).toEqual([
      'ugua:ssh:active',
      'itvg:ssh:active',
      'el-mezquital:ssh:active',
      'voz-laguna:ssh:active',
      'sol-durango:ssh:active',
      'canal-12:ssh:suspended',
      'ocd:ssh:active',
      'espejo-local:local:active',
    ]);
  });
});

describe('redirect_hosts: where a difusor may send the probe', () => {
  it('lists host names or addresses, kept as written', () => {
    const registry = registryOf(afterLine(14, '    redirect_hosts: [cdn.example.net, 203.0.113.9, "2001:db8::9"]'));
    expect(registry.difusores[0]!.redirect_hosts).toEqual(['cdn.example.net', '203.0.113.9', '2001:db8::9']);
    expect(registry.difusores[1]!.redirect_hosts).toBeUndefined();
  });
  it('refuses a URL, a port or a path where a host goes, and a host that is not one, naming the entry', () => {
    expect(formatProblem(only(afterLine(14, '    redirect_hosts: ["https://cdn.example.net/"]')))).toMatch(
      /difusores\[0\]\.redirect_hosts\[0\]: must be a host name or an IP address, without scheme, port or path/,
    );
    expect(formatProblem(only(afterLine(14, '    redirect_hosts: [cdn.example.net, -oProxy]')))).toMatch(/difusores\[0\]\.redirect_hosts\[1\]: must not start with "-"/);
    expect(formatProblem(only(afterLine(14, '    redirect_hosts: [cdn..example]')))).toMatch(/redirect_hosts\[0\]: "cdn\.\.example" is not a DNS name or an IP address/);
    expect(formatProblem(only(afterLine(14, '    redirect_hosts: cdn.example.net')))).toMatch(/redirect_hosts/);
  });
});
