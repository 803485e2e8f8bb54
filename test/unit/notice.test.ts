import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { isoWithOffset, localStamp, noticeStamp, renderNotice } from '../../src/core/enforcement/notice.js';
import { escapeHtml, fillTemplate, safeJson } from '../../src/core/enforcement/html.js';

const TEMPLATE = readFileSync(new URL('../../templates/aviso.html', import.meta.url), 'utf8');
const AT = new Date('2022-06-06T02:10:00Z');
const HOSTILE_NAME = `Diario "El <Mezquital>" & Cía, S.A. — l'édition`;
const HOSTILE_REASON = `Publicó <script>alert("x")</script> & alteró 'cifras' antes de la hora; ¿por qué? </dd><dd>`;

function notice(officialUrl: string | null = 'https://prep.example.mx/?a=1&b="2"') {
  return renderNotice({
    difusor: { id: 'el-mezquital', name: HOSTILE_NAME },
    reason: HOSTILE_REASON,
    at: AT,
    timezone: 'America/Mexico_City',
    officialUrl: officialUrl ?? undefined,
    template: TEMPLATE,
  });
}

const sha = (text: string): string => createHash('sha256').update(text).digest('hex');

describe('the notice', () => {
  test('times are in the publication timezone, DST included', () => {
    expect(noticeStamp(AT, 'America/Mexico_City')).toBe('20220605_211000');
    expect(isoWithOffset(AT, 'America/Mexico_City')).toBe('2022-06-05T21:10:00-05:00');
    expect(localStamp(AT, 'America/Mexico_City')).toBe('05/06/2022 21:10 (UTC-5)');
    expect(isoWithOffset(new Date('2022-01-01T12:00:00Z'), 'Asia/Kolkata')).toBe('2022-01-01T17:30:00+05:30');
    expect(isoWithOffset(new Date('2022-01-01T12:00:00Z'), 'UTC')).toBe('2022-01-01T12:00:00+00:00');
  });

  test('aviso.json has the contract fields, and no raw < > & even from hostile values', () => {
    const n = notice();
    const json = n.files['aviso.json'];
    expect(JSON.parse(json)).toEqual({
      aviso: 'suspension',
      difusor: 'el-mezquital',
      name: HOSTILE_NAME,
      reason: HOSTILE_REASON,
      at: '2022-06-05T21:10:00-05:00',
      local: '05/06/2022 21:10 (UTC-5)',
      timezone: 'America/Mexico_City',
      official_url: 'https://prep.example.mx/?a=1&b="2"',
    });
    expect(json).not.toMatch(/[<>&]/);
    expect(JSON.parse(notice(null).files['aviso.json']).official_url).toBeNull();
  });

  test('the page escapes every value, carries no script, link or image from elsewhere, and links the official site', () => {
    const page = notice().files['index.html'];
    expect(page).toContain(escapeHtml(HOSTILE_NAME));
    expect(page).toContain(escapeHtml(HOSTILE_REASON));
    expect(page).not.toContain('<script>');
    expect(page).not.toContain('</dd><dd>');
    expect(page).not.toContain('<Mezquital>');
    expect(page).toContain('href="https://prep.example.mx/?a=1&amp;b=&quot;2&quot;"');
    expect(page).toContain('<html lang="es">');
    expect(page).toContain('5 de junio de 2022, 21:10 h (UTC-5, America/Mexico_City)');
    expect(page).toContain('<time datetime="2022-06-05T21:10:00-05:00">');
    expect(page).not.toMatch(/<(script|link|img|iframe)\b|src=|url\(/i);
    expect(page).not.toMatch(/\{\{/);
    expect(notice(null).files['index.html']).not.toContain('href=');
  });

  test('the manifest is sha256sum lines for both files', () => {
    const n = notice();
    expect(n.files['MANIFEST.sha256']).toBe(`${sha(n.files['aviso.json'])}  aviso.json\n${sha(n.files['index.html'])}  index.html\n`);
  });

  test('a stamp the difusor already serves is skipped', () => {
    const n = renderNotice({ difusor: { id: 'a', name: 'A' }, reason: 'r', at: AT, timezone: 'America/Mexico_City', template: TEMPLATE, avoidStamps: ['20220605_211000', '20220605_211001'] });
    expect(n.stamp).toBe('20220605_211002');
    expect(n.aviso.at).toBe('2022-06-05T21:10:00-05:00');
  });
});

describe('html helpers', () => {
  test('fillTemplate escapes values and refuses a placeholder without one', () => {
    expect(fillTemplate('<p>{{a}}</p>', { a: `<"'&>` })).toBe('<p>&lt;&quot;&#39;&amp;&gt;</p>');
    expect(() => fillTemplate('{{missing}}', {})).toThrow(/missing/);
  });
  test('safeJson reads back the same', () => {
    const value = { s: '</script><!-- & \u2028' };
    expect(JSON.parse(safeJson(value))).toEqual(value);
    expect(safeJson(value)).not.toMatch(/[<>&\u2028]/);
  });
});
