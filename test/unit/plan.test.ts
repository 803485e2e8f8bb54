import { createHash } from 'node:crypto';
import type { Manifest, ManifestEntry } from '../../src/core/shared/manifest.js';
import { manifestText } from '../../src/core/shared/manifest.js';
import {
  MANIFEST_NAME,
  SIGNATURE_NAME,
  checkInventory,
  parsePrepare,
  parseVerify,
  planTransfer,
  type PrepareReport,
} from '../../src/core/publish/plan.js';

const sha = (data: string): string => createHash('sha256').update(data).digest('hex');

function manifestOf(files: Record<string, string>): Manifest {
  const entries: ManifestEntry[] = Object.entries(files)
    .sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
    .map(([path, content]) => ({ path, size: Buffer.byteLength(content), sha256: sha(content) }));
  const text = manifestText(entries);
  return { entries, text, digest: sha(text), totalBytes: entries.reduce((n, e) => n + e.size, 0) };
}

const hashesOf = (m: Manifest): Map<string, string> => new Map(m.entries.map((e) => [e.path, e.sha256]));

/** What prepare reports for a release holding this manifest's files (and the manifest itself). */
function releaseReport(m: Manifest, extra: Partial<PrepareReport> = {}): PrepareReport {
  return {
    files: new Map([...m.entries.map((e) => [e.path, e.size] as [string, number]), [MANIFEST_NAME, Buffer.byteLength(m.text)]]),
    others: [],
    baseManifestDigest: m.digest,
    freeKb: 1_000_000,
    ...extra,
  };
}

describe('parsePrepare', () => {
  it('reads live, base, manifest digest, free space and the base inventory', () => {
    const out = [
      'live 20220605_2015',
      'free 123456',
      'base 20220605_2015',
      `manifest ${'b'.repeat(64)}`,
      'f 13 index.html',
      'f 4 datos/a b.csv',
      'f 0 -n',
      'f 7 con  dos  espacios ',
      'o actas/enlace',
      '',
    ].join('\n');
    const r = parsePrepare(out);
    expect(r.live).toBe('20220605_2015');
    expect(r.base).toBe('20220605_2015');
    expect(r.baseManifestDigest).toBe('b'.repeat(64));
    expect(r.freeKb).toBe(123456);
    expect([...r.files]).toEqual([
      ['index.html', 13],
      ['datos/a b.csv', 4],
      ['-n', 0],
      ['con  dos  espacios ', 7],
    ]);
    expect(r.others).toEqual(['actas/enlace']);
  });

  it('reports nothing for a fresh difusor', () => {
    const r = parsePrepare('free 5000\n');
    expect(r).toEqual({ files: new Map(), others: [], freeKb: 5000 });
  });

  it('reads a rollback\'s hold on the difusor, or its lifted trace', () => {
    expect(parsePrepare('live 20220605_2015\nhold 20220605_2015 primario r1 1654480800\nfree 1\n').hold).toEqual({ cut: '20220605_2015', host: 'primario', run: 'r1', since: 1654480800 });
    expect(parsePrepare('lifted 20220605_2015 alterno r2 1654480900\n')).toMatchObject({ lifted: { cut: '20220605_2015', host: 'alterno', run: 'r2', since: 1654480900 } });
    expect(parsePrepare('hold 20220605_2015_PREP a.b-c_d r1 999999999999\n').hold).toEqual({ cut: '20220605_2015_PREP', host: 'a.b-c_d', run: 'r1', since: 999_999_999_999 });
  });

  it('takes a free space df could not give as unknown, and ignores keys a newer helper may add', () => {
    expect(parsePrepare('free \nlive 20220605_2015\nsomething new\n')).toEqual({ files: new Map(), others: [], live: '20220605_2015' });
  });

  const from = { verb: 'inspect', difusor: 'd1' };
  it.each([
    ['a hold line short of a word', 'hold 20220605_2015 primario r1', 'a hold line that is not "hold CUT HOST RUN SINCE"'],
    ['a hold line with a word too many', 'hold 20220605_2015 primario r1 1 extra', 'a hold line that is not "hold CUT HOST RUN SINCE"'],
    ['a hold on something that is no cut', 'hold x h r 1', 'a hold line that is not "hold CUT HOST RUN SINCE"'],
    ['a hold on a path', 'hold ../../x h r 1', 'a hold line that is not "hold CUT HOST RUN SINCE"'],
    ['a hold on a cut of no date', 'hold 20221332_2015 h r 1', 'a hold line that is not "hold CUT HOST RUN SINCE"'],
    ['a hold whose host is an escape', 'hold 20220605_2015 \x1b[8m r 1', 'a hold line that is not "hold CUT HOST RUN SINCE"'],
    ['a hold whose host sets the window title', 'hold 20220605_2015 \x1b]0;pwned\x1b\\ r 1', 'a hold line that is not "hold CUT HOST RUN SINCE"'],
    ['a hold whose run is an 8-bit CSI', 'hold 20220605_2015 h r\u009b2J 1', 'a hold line that is not "hold CUT HOST RUN SINCE"'],
    ['a hold whose since has 20 digits', 'hold 20220605_2030 h r 99999999999999999999', 'a hold line that is not "hold CUT HOST RUN SINCE"'],
    ['a hold whose since has 13 digits', 'hold 20220605_2030 h r 1000000000000', 'a hold line that is not "hold CUT HOST RUN SINCE"'],
    ['a lifted trace whose since has 20 digits', 'lifted 20220605_2030 h r 99999999999999999999', 'a lifted line that is not "lifted CUT HOST RUN SINCE"'],
    ['a lifted trace on no cut', 'lifted ../x h r 1', 'a lifted line that is not "lifted CUT HOST RUN SINCE"'],
    ['a live that moves the cursor', 'live 20220605_2045\x1b[2K\x1b[1A', 'a live that is not a cut id'],
    ['a live that writes the clipboard (OSC 52)', 'live \x1b]52;c;ZWNobyBwd25lZA==\x07', 'a live that is not a cut id'],
    ['a live that is a path', 'live notices/20220605_210000', 'a live that is not a cut id'],
    ['a base that is a path', 'base ../../../../tmp/review-17/evil', 'a base that is not a cut id'],
    ['a base with a bidi override', 'base 20220605_2015\u202e', 'a base that is not a cut id'],
    ['a staged that is no cut', 'staged ../x', 'a staged that is not a cut id'],
    ['a manifest digest that is not SHA-256', 'manifest \x1b[2J', 'a manifest digest that is not SHA-256 hex'],
    ['a free space that is not a number', 'free lots', 'a free space that is not a number of KB'],
    ['a free space of 20 digits', 'free 99999999999999999999', 'a free space that is not a number of KB'],
  ])('refuses %s, naming the difusor, the verb and the line shown escaped', (_what, line, what) => {
    let message = '';
    try {
      parsePrepare(`free 1\n${line}\n`, from);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toBe(`d1: inspect answered ${what}: ${JSON.stringify(line).replace(/[\u007f-\u009f\u202e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}`);
    // eslint-disable-next-line no-control-regex
    expect(message).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202e]/);
  });

  it('shows at most 200 characters of a refused line', () => {
    expect(() => parsePrepare(`live ${'x'.repeat(1000)}\n`)).toThrow(`prepare answered a live that is not a cut id: "live ${'x'.repeat(195)}" (and 805 more characters)`);
  });
});

describe('parseVerify', () => {
  it('reads the sha256sum exit, its complaints and the staging inventory', () => {
    const r = parseVerify(['check 1', 'x index.html: FAILED', 'x sha256sum: WARNING: 1 computed checksum did NOT match', 'f 13 index.html', 'o raro'].join('\n'));
    expect(r.checkExit).toBe(1);
    expect(r.failures).toEqual(['index.html: FAILED', 'sha256sum: WARNING: 1 computed checksum did NOT match']);
    expect([...r.files]).toEqual([['index.html', 13]]);
    expect(r.others).toEqual(['raro']);
  });

  it('says -1 when the helper never reported a check (so it is never taken for success)', () => {
    expect(parseVerify('f 1 a\n').checkExit).toBe(-1);
    expect(parseVerify('check 0\n').checkExit).toBe(0);
  });

  it('keeps the difusor\'s words escaped: sha256sum\'s complaints, non-files, paths with controls (which no cut holds)', () => {
    const r = parseVerify(['check 1', 'x a\x1b[2J.html: FAILED', 'f 3 b\u009b2J.csv', 'f 4 datos/\u202ebien.csv', 'o \x1b]52;c;eA==\x07'].join('\n'));
    expect(r.failures).toEqual(['a\\u001b[2J.html: FAILED']);
    // A bidi mark may be in a cut's own file name: kept as is for the comparison; the terminal escapes it when shown.
    expect([...r.files.keys()]).toEqual(['b\\u009b2J.csv', 'datos/\u202ebien.csv']);
    expect(r.others).toEqual(['\\u001b]52;c;eA==\\u0007']);
  });

  it('a forged inventory, check or signature line fails the verification, naming the line', () => {
    const r = parseVerify(['check 0', 'check 0\x1b[2J', 'f lots index.html', 'signature fine\u009b'].join('\n'));
    expect(r.failures).toEqual([
      'a check that is not an exit code: "check 0\\u001b[2J"',
      'an inventory line that is not "f SIZE PATH": "f lots index.html"',
      'a signature state that is not ok, bad, missing or unchecked: "signature fine\\u009b"',
    ]);
    expect(r.signature).toBeUndefined();
  });
});

describe('planTransfer', () => {
  const previous = manifestOf({
    'index.html': 'corte 20:15',
    'actas/1_A.jpg': 'acta 1A',
    'actas/1_B.jpg': 'acta 1B',
    'datos/viejo.csv': 'se va',
  });
  const next = manifestOf({
    'index.html': 'corte 20:30',
    'actas/1_A.jpg': 'acta 1A',
    'actas/1_B.jpg': 'acta 1B',
    'actas/2_A.jpg': 'acta 2A',
  });

  it('new release on a trusted base: links unchanged files, sends changed and new, drops removed, changed, manifest and others', () => {
    const report = releaseReport(previous, { live: '20220605_2015', base: '20220605_2015', others: ['actas/enlace'] });
    const plan = planTransfer({ cut: '20220605_2030', manifest: next, report, baseHashes: hashesOf(previous), signed: false });
    expect(plan.kind).toBe('new-release');
    expect(plan.base).toBe('20220605_2015');
    expect(plan.linked).toBe(2);
    expect(plan.send.map((e) => e.path)).toEqual(['actas/2_A.jpg', 'index.html']);
    expect(plan.bytesToSend).toBe(Buffer.byteLength('acta 2A') + Buffer.byteLength('corte 20:30'));
    expect([...plan.drop].sort()).toEqual(['MANIFEST.sha256', 'actas/enlace', 'datos/viejo.csv', 'index.html']);
  });

  it('drops the old signature of a signed base, and keeps nothing of it when the new cut is signed', () => {
    const report = releaseReport(previous, { live: '20220605_2015', base: '20220605_2015' });
    report.files.set(SIGNATURE_NAME, 88);
    for (const signed of [false, true]) {
      const plan = planTransfer({ cut: '20220605_2030', manifest: next, report, baseHashes: hashesOf(previous), signed });
      expect(plan.drop).toEqual(expect.arrayContaining([MANIFEST_NAME, SIGNATURE_NAME]));
    }
  });

  it('an untrusted base (no manifest of ours) sends everything, links nothing and drops nothing', () => {
    const report = releaseReport(previous, { live: '20220605_2015', base: '20220605_2015' });
    const plan = planTransfer({ cut: '20220605_2030', manifest: next, report, baseHashes: undefined, signed: false });
    expect(plan.kind).toBe('new-release');
    expect(plan.base).toBeUndefined();
    expect(plan.linked).toBe(0);
    expect(plan.send.map((e) => e.path)).toEqual(next.entries.map((e) => e.path));
    expect(plan.drop).toEqual([]);
    expect(plan.bytesToSend).toBe(next.totalBytes);
  });

  it('a fresh difusor (no base) gets everything', () => {
    const plan = planTransfer({ cut: '20220605_2030', manifest: next, report: { files: new Map(), others: [] }, signed: false });
    expect(plan).toEqual({ kind: 'new-release', base: undefined, linked: 0, send: next.entries, drop: [], bytesToSend: next.totalBytes });
  });

  it('a base file with the right hash but the wrong size on the difusor is sent again', () => {
    const report = releaseReport(previous, { live: '20220605_2015', base: '20220605_2015' });
    report.files.set('actas/1_B.jpg', 3); // truncated on the difusor
    const plan = planTransfer({ cut: '20220605_2030', manifest: next, report, baseHashes: hashesOf(previous), signed: false });
    expect(plan.send.map((e) => e.path)).toContain('actas/1_B.jpg');
    expect(plan.drop).toContain('actas/1_B.jpg');
    expect(plan.linked).toBe(1);
  });

  it('a base file missing on the difusor is sent', () => {
    const report = releaseReport(previous, { live: '20220605_2015', base: '20220605_2015' });
    report.files.delete('actas/1_A.jpg');
    const plan = planTransfer({ cut: '20220605_2030', manifest: next, report, baseHashes: hashesOf(previous), signed: false });
    expect(plan.send.map((e) => e.path)).toEqual(['actas/1_A.jpg', 'actas/2_A.jpg', 'index.html']);
    expect(plan.linked).toBe(1);
  });

  it('up to date: the cut is live and whole, nothing to send, link or drop', () => {
    const report = releaseReport(next, { live: '20220605_2030', base: '20220605_2030' });
    const plan = planTransfer({ cut: '20220605_2030', manifest: next, report, baseHashes: hashesOf(next), signed: false });
    expect(plan).toEqual({ kind: 'up-to-date', base: '20220605_2030', linked: 4, send: [], drop: [], bytesToSend: 0 });
  });

  it('switch only: releases/<cut> is whole but another cut is live', () => {
    const report = releaseReport(next, { live: '20220605_2015', base: '20220605_2030' });
    const plan = planTransfer({ cut: '20220605_2030', manifest: next, report, baseHashes: hashesOf(next), signed: false });
    expect(plan.kind).toBe('switch-only');
    expect(plan.send).toEqual([]);
    expect(plan.drop).toEqual([]);
  });

  it('a signed cut is not up to date while the release lacks its signature', () => {
    const report = releaseReport(next, { live: '20220605_2030', base: '20220605_2030' });
    const plan = planTransfer({ cut: '20220605_2030', manifest: next, report, baseHashes: hashesOf(next), signed: true });
    expect(plan.kind).toBe('repair');
    report.files.set(SIGNATURE_NAME, 88);
    expect(planTransfer({ cut: '20220605_2030', manifest: next, report, baseHashes: hashesOf(next), signed: true }).kind).toBe('up-to-date');
  });

  it('repair: releases/<cut> has a damaged file, an extra file and a non-regular entry', () => {
    const report = releaseReport(next, { live: '20220605_2030', base: '20220605_2030', others: ['actas/fifo'] });
    report.files.set('index.html', 2);
    report.files.set('intruso.php', 10);
    const plan = planTransfer({ cut: '20220605_2030', manifest: next, report, baseHashes: hashesOf(next), signed: false });
    expect(plan.kind).toBe('repair');
    expect(plan.base).toBe('20220605_2030');
    expect(plan.send.map((e) => e.path)).toEqual(['index.html']);
    expect([...plan.drop].sort()).toEqual(['MANIFEST.sha256', 'actas/fifo', 'index.html', 'intruso.php']);
  });

  it('repair: a release whose manifest digest is not ours is re-sent in full', () => {
    const report = releaseReport(next, { live: '20220605_2030', base: '20220605_2030', baseManifestDigest: 'f'.repeat(64) });
    const plan = planTransfer({ cut: '20220605_2030', manifest: next, report, baseHashes: undefined, signed: false });
    expect(plan.kind).toBe('repair');
    expect(plan.send).toHaveLength(next.entries.length);
    expect(plan.drop).toEqual([]);
  });

  it('a release missing its MANIFEST.sha256 is not up to date', () => {
    const report = releaseReport(next, { live: '20220605_2030', base: '20220605_2030' });
    report.files.delete(MANIFEST_NAME);
    const plan = planTransfer({ cut: '20220605_2030', manifest: next, report, baseHashes: hashesOf(next), signed: false });
    expect(plan.kind).toBe('repair');
    expect(plan.send).toEqual([]);
  });
});

describe('checkInventory', () => {
  const m = manifestOf({ 'index.html': 'hola', 'datos/a.csv': 'a,b\n' });
  const whole = (): Map<string, number> =>
    new Map([
      ['index.html', 4],
      ['datos/a.csv', 4],
      [MANIFEST_NAME, Buffer.byteLength(m.text)],
    ]);

  it('accepts exactly the manifest files plus the manifest', () => {
    expect(checkInventory(m, { files: whole(), others: [] }, false)).toEqual([]);
  });

  it('names a missing file, a wrong size, an extra file, a non-regular entry and a missing manifest', () => {
    const files = whole();
    files.delete('datos/a.csv');
    files.set('index.html', 3);
    files.set('extra.html', 1);
    files.delete(MANIFEST_NAME);
    expect(checkInventory(m, { files, others: ['enlace'] }, false)).toEqual([
      'enlace: not a regular file',
      'datos/a.csv: missing',
      'index.html: 3 bytes, expected 4',
      'extra.html: not in the manifest',
      'MANIFEST.sha256: missing',
    ]);
  });

  it('accepts the signature only for a signed cut', () => {
    const files = whole();
    files.set(SIGNATURE_NAME, 88);
    expect(checkInventory(m, { files, others: [] }, true)).toEqual([]);
    expect(checkInventory(m, { files, others: [] }, false)).toEqual(['MANIFEST.sha256.sig: not in the manifest']);
  });
});
