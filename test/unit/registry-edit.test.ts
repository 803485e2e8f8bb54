import { mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, chmodSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { editDifusorStatus, registryFileStore, changeDifusorStatus, RegistryEditError } from '../../src/core/registry/registry-edit.js';
import { parseRegistry } from '../../src/core/registry/registry.js';

const SAMPLE = readFileSync(new URL('../../difusores.yaml', import.meta.url), 'utf8');
const HOSTILE = `Alteró "cifras" <script>alert('x')</script> & más: sí # no es comentario`;

function lines(text: string): string[] {
  return text.split('\n');
}

/** The lines of `after` that are not in `before`, and the other way round (a line diff good enough for small edits). */
function changed(before: string, after: string): { added: string[]; removed: string[] } {
  const minus = (from: string[], take: string[]): string[] => {
    const left = [...from];
    for (const line of take) {
      const i = left.indexOf(line);
      if (i >= 0) left.splice(i, 1);
    }
    return left;
  };
  return { added: minus(lines(after), lines(before)).sort(), removed: minus(lines(before), lines(after)).sort() };
}

describe('editDifusorStatus', () => {
  test('cutoff changes only the status line and adds the two fields below it; everything else stays byte for byte', () => {
    const after = editDifusorStatus(SAMPLE, 'ugua', { status: 'suspended', suspended_at: '2022-06-05T21:10:00-05:00', suspension_reason: HOSTILE });
    expect(changed(SAMPLE, after)).toEqual({
      added: ['    status: suspended', "    suspended_at: '2022-06-05T21:10:00-05:00'", `    suspension_reason: ${JSON.stringify(HOSTILE)}`].sort(),
      removed: ['    status: active'],
    });
    const lineNo = lines(after).indexOf('    status: suspended');
    expect(lines(after).slice(lineNo, lineNo + 4)).toEqual([
      '    status: suspended',
      "    suspended_at: '2022-06-05T21:10:00-05:00'",
      `    suspension_reason: ${JSON.stringify(HOSTILE)}`,
      '    access_log: /var/log/httpd/prep_access_log*',
    ]);
    const parsed = parseRegistry(after, 'difusores.yaml');
    expect(parsed.ok).toBe(true);
    if (parsed.ok) {
      expect(parsed.registry.difusores.find((d) => d.id === 'ugua')).toMatchObject({
        status: 'suspended',
        suspended_at: '2022-06-05T21:10:00-05:00',
        suspension_reason: HOSTILE,
      });
    }
  });

  test('two edits in a row (cutoff, reinstate) give back the original file exactly; a difusor without status gets one', () => {
    const cut = editDifusorStatus(SAMPLE, 'ugua', { status: 'suspended', suspended_at: '2022-06-05T21:10:00-05:00', suspension_reason: HOSTILE });
    expect(editDifusorStatus(cut, 'ugua', { status: 'active' })).toBe(SAMPLE);

    const none = editDifusorStatus(SAMPLE, 'el-mezquital', { status: 'suspended', suspended_at: '2022-06-05T22:00:00-05:00', suspension_reason: 'x' });
    const at = lines(none).indexOf('    public_url: https://prep.elmezquital.example/');
    expect(lines(none).slice(at, at + 5)).toEqual([
      '    public_url: https://prep.elmezquital.example/',
      '    status: suspended',
      "    suspended_at: '2022-06-05T22:00:00-05:00'",
      '    suspension_reason: "x"',
      expect.stringContaining('contact:'),
    ]);
    const back = editDifusorStatus(none, 'el-mezquital', { status: 'active' });
    // Reinstated, it keeps an explicit `status: active` and nothing else of the suspension.
    expect(changed(SAMPLE, back)).toEqual({ added: ['    status: active'], removed: [] });
  });

  test('inline comments keep their spacing and quoted values keep their quotes', () => {
    const text = [
      'version: 1',
      'publication:',
      '  timezone: America/Mexico_City    # hora del centro',
      "  window: { start: '2022-06-05T20:00', end: '2022-06-06T20:00' }",
      'difusores:',
      '  # first',
      '  - id: a',
      "    name: 'A'",
      '    transport: local',
      '    path: /srv/a',
      '    public_url: http://localhost/a/',
      "    status: 'active'     # set by cutoff",
      '  - { id: b, name: B, transport: local, path: /srv/b, public_url: "http://localhost/b/" }   # flow',
      '',
    ].join('\n');
    const after = editDifusorStatus(text, 'a', { status: 'suspended', suspended_at: '2022-06-05T21:10:00-05:00', suspension_reason: 'r' });
    expect(after).toContain("    status: 'suspended'     # set by cutoff\n");
    expect(after).toContain('  timezone: America/Mexico_City    # hora del centro\n');
    // A flow mapping gets its pairs before the closing brace, and loses them again with their comma.
    const flow = editDifusorStatus(after, 'b', { status: 'suspended', suspended_at: '2022-06-05T21:11:00-05:00', suspension_reason: 'q' });
    expect(flow).toContain(
      `  - { id: b, name: B, transport: local, path: /srv/b, public_url: "http://localhost/b/", status: suspended, suspended_at: '2022-06-05T21:11:00-05:00', suspension_reason: "q" }   # flow\n`,
    );
    expect(flow.replace(/\n {2}- \{ id: b.*\n/, '\n')).toBe(after.replace(/\n {2}- \{ id: b.*\n/, '\n'));
    expect(editDifusorStatus(flow, 'b', { status: 'active' })).toBe(after.replace('"http://localhost/b/" }', '"http://localhost/b/", status: active }'));
    const parsed = parseRegistry(flow, 'x.yaml');
    expect(parsed.ok && parsed.registry.difusores.map((d) => [d.id, d.status, d.suspension_reason])).toEqual([
      ['a', 'suspended', 'r'],
      ['b', 'suspended', 'q'],
    ]);
  });

  test('an unknown id is refused', () => {
    expect(() => editDifusorStatus(SAMPLE, 'nadie', { status: 'active' })).toThrow(RegistryEditError);
  });
});

describe('registryFileStore', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'difusion-regedit-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('writes through a symlink by rename, keeps the mode, leaves no temp file', async () => {
    const real = path.join(dir, 'real.yaml');
    const link = path.join(dir, 'difusores.yaml');
    writeFileSync(real, SAMPLE);
    chmodSync(real, 0o640);
    symlinkSync(real, link);
    const inode = statSync(real).ino;
    await changeDifusorStatus(registryFileStore(link), 'ocd', { status: 'suspended', suspended_at: '2022-06-05T21:10:00-05:00', suspension_reason: 'r' });
    expect(readFileSync(link, 'utf8')).toContain('suspension_reason: "r"');
    expect(statSync(real).ino).not.toBe(inode);
    expect(statSync(real).mode & 0o777).toBe(0o640);
    expect(readdirSync(dir).sort()).toEqual(['difusores.yaml', 'real.yaml']);
  });

  test('text that would not validate is refused and the file is left alone', async () => {
    const file = path.join(dir, 'difusores.yaml');
    writeFileSync(file, SAMPLE);
    await expect(registryFileStore(file).write(SAMPLE.replace('status: active', 'status: paused'))).rejects.toThrow(/would not validate/);
    expect(readFileSync(file, 'utf8')).toBe(SAMPLE);
  });
});
