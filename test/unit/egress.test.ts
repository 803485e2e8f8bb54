import { isInternalAddress, normalHost, redirectVerdict, type RedirectScope } from '../../src/core/shared/egress.js';

const follows = (to: string, scope: RedirectScope): boolean => redirectVerdict(new URL(to), scope).follow;
const why = (to: string, scope: RedirectScope): string | undefined => {
  const v = redirectVerdict(new URL(to), scope);
  return v.follow ? undefined : v.why;
};

describe('which redirects a difusor may send the probe along', () => {
  const plain: RedirectScope = { home: 'http://prep.example.mx/' };
  const lab: RedirectScope = { home: 'http://127.0.0.2:8080/prep/' };

  test('its own origin: scheme, host and port', () => {
    expect(follows('http://prep.example.mx/otra/ruta?x=1', plain)).toBe(true);
    expect(follows('http://PREP.example.mx:80/', plain)).toBe(true);
    expect(follows('http://127.0.0.2:8080/elsewhere', lab)).toBe(true);
    expect(why('http://127.0.0.2:8081/', lab)).toBe('sends visitors to 127.0.0.2:8081');
    expect(why('http://prep.example.mx:8080/', plain)).toBe('sends visitors to prep.example.mx:8080');
  });

  test('http to https on the same host: its default port or the same port number, nothing else', () => {
    expect(follows('https://prep.example.mx/', plain)).toBe(true);
    expect(follows('https://prep.example.mx:80/', plain)).toBe(true);
    expect(follows('https://127.0.0.2:8080/prep/', lab)).toBe(true);
    expect(follows('https://127.0.0.2/prep/', lab)).toBe(true);
    expect(follows('https://prep.example.mx:8443/', plain)).toBe(false);
    // Not the other way: an https difusor stays on https.
    expect(follows('http://prep.example.mx/', { home: 'https://prep.example.mx/' })).toBe(false);
  });

  test('another host, an internal address, a loopback port: refused, naming the host, never the path', () => {
    expect(why('http://otro.example.net/resultados', plain)).toBe('sends visitors to otro.example.net');
    expect(why('http://127.0.0.77:8877/internal-admin?delete=all', plain)).toBe('sends visitors to 127.0.0.77:8877');
    expect(why('http://169.254.169.254/latest/meta-data/', plain)).toBe('sends visitors to 169.254.169.254');
    expect(why('http://localhost:6379/', plain)).toBe('sends visitors to localhost:6379');
    expect(why('http://prep.example.mx.evil.net/', plain)).toBe('sends visitors to prep.example.mx.evil.net');
    expect(why('http://user:pw@prep.example.mx/', plain)).toMatch(/sends visitors to/);
  });

  test('file:, ftp:, data:, javascript: are never followed', () => {
    expect(why('file:///etc/passwd', plain)).toBe('sends visitors to a file: address');
    expect(why('ftp://prep.example.mx/', plain)).toBe('sends visitors to a ftp: address');
    expect(why('data:text/plain,hola', plain)).toBe('sends visitors to a data: address');
    expect(follows('file:///etc/passwd', { home: 'http://prep.example.mx/', redirectHosts: ['prep.example.mx'] })).toBe(false);
  });

  test('a host the registry lists for the difusor (its CDN): any port, http or https; only that host', () => {
    const cdn: RedirectScope = { home: 'https://prep.example.mx/', redirectHosts: ['cdn.example.net', '203.0.113.9'] };
    expect(follows('https://cdn.example.net/prep/MANIFEST.sha256', cdn)).toBe(true);
    expect(follows('http://CDN.example.net:8080/', cdn)).toBe(true);
    expect(follows('http://203.0.113.9/', cdn)).toBe(true);
    expect(follows('https://x.cdn.example.net/', cdn)).toBe(false);
    expect(follows('https://cdn.example.net/', plain)).toBe(false);
  });

  test('hosts compare without case, brackets or a trailing dot', () => {
    expect(normalHost('[::1]')).toBe('::1');
    expect(normalHost('Prep.Example.MX.')).toBe('prep.example.mx');
    expect(follows('http://[2001:db8::1]:8080/', { home: 'http://[2001:db8::1]:8080/' })).toBe(true);
  });
});

describe('addresses inside a private network', () => {
  test.each([
    '127.0.0.1', '127.0.0.77', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '169.254.169.254', '0.0.0.0', '100.64.0.1',
    '::1', '::', 'fc00::1', 'fd12:3456::1', 'fe80::1', '::ffff:127.0.0.1', '::ffff:10.0.0.1', '::ffff:7f00:1', '::ffff:a9fe:a9fe',
  ])('%s is internal', (address) => {
    expect(isInternalAddress(address)).toBe(true);
  });
  test.each(['203.0.113.5', '8.8.8.8', '172.32.0.1', '192.169.0.1', '2001:db8::1', '2606:4700::1111', '::ffff:8.8.8.8', 'not-an-address'])(
    '%s is not',
    (address) => {
      expect(isInternalAddress(address)).toBe(false);
    },
  );
});
