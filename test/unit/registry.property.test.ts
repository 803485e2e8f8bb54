import { readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { parseRegistry } from '../../src/core/registry/registry.js';
import type { LoadResult } from '../../src/core/registry/types.js';

const SAMPLE = readFileSync('difusores.yaml', 'utf8');
const FILE = 'difusores.yaml';

/** Whatever the input: no throw, and either a registry or problems a person can locate. */
function expectWellFormed(text: string, result: LoadResult): void {
  if (result.ok) {
    expect(path.isAbsolute(result.registry.file)).toBe(true);
    expect(result.registry.difusores.length).toBeGreaterThan(0);
    return;
  }
  expect(result.problems.length).toBeGreaterThan(0);
  const lineCount = text.split(/\r\n|\r|\n/).length;
  for (const problem of result.problems) {
    expect(problem.file).toBe(FILE);
    expect(Number.isInteger(problem.line) && problem.line >= 1 && problem.line <= lineCount + 1).toBe(true);
    expect(Number.isInteger(problem.col) && problem.col >= 1).toBe(true);
    expect(problem.message.trim()).not.toBe('');
  }
  const positions = result.problems.map((p) => p.line * 1e6 + p.col);
  expect(positions).toEqual([...positions].sort((a, b) => a - b));
}

function check(text: string): void {
  let result: LoadResult | undefined;
  expect(() => {
    result = parseRegistry(text, FILE);
  }).not.toThrow();
  expectWellFormed(text, result!);
}

const KEYS = [
  'version', 'publication', 'timezone', 'window', 'start', 'end', 'simulacros', 'keep_releases', 'concurrency', 'ssh',
  'identity_file', 'connect_timeout_s', 'official_url', 'signing_key', 'state_dir', 'difusores', 'id', 'name', 'transport',
  'host', 'port', 'user', 'host_key', 'path', 'public_url', 'contact', 'email', 'phone', 'status', 'access', 'from',
  'access_log', 'logo', 'colour', '<<', '"quoted key"', '? complex',
];

const SCALARS = fc.oneof(
  fc.constantFrom(
    '1', '0', '-1', '22', '1.5', 'true', 'null', '~', "''", '""', 'America/Mexico_City', "'2022-06-05T20:00'",
    '2022-06-05T20:00', 'ssh', 'local', 'active', 'suspended', '/var/www/prep', 'https://x.example/', '[]', '{}',
    '[1, 2', '{ a: 1', '&a x', '*a', '*missing', '!!binary aGk=', '!tag x', '|', '>-', "'unterminated", '"\\x00"',
    '"\\u202E"', '- x', 'a: b: c', '# comment', '%YAML 1.1', '---', '...',
  ),
  fc.string({ maxLength: 12 }),
);

const YAMLISH_LINE = fc
  .tuple(
    fc.integer({ min: 0, max: 8 }),
    fc.boolean(),
    fc.constantFrom(...KEYS),
    fc.option(SCALARS, { nil: undefined }),
  )
  .map(([indent, dash, key, value]) => `${' '.repeat(indent)}${dash ? '- ' : ''}${key}:${value === undefined ? '' : ` ${value}`}`);

const YAMLISH_DOC = fc.array(fc.oneof(YAMLISH_LINE, SCALARS), { maxLength: 30 }).map((lines) => lines.join('\n'));

type Mutation = (lines: string[]) => string[];

const MUTATION: fc.Arbitrary<Mutation> = fc.oneof(
  fc.nat().map((n): Mutation => (lines) => lines.filter((_, i) => i !== n % lines.length)),
  fc.nat().map((n): Mutation => (lines) => {
    const i = n % lines.length;
    return [...lines.slice(0, i + 1), lines[i]!, ...lines.slice(i + 1)];
  }),
  fc.tuple(fc.nat(), SCALARS).map(([n, value]): Mutation => (lines) => {
    const i = n % lines.length;
    return lines.map((line, j) => (j === i && line.includes(': ') ? `${line.slice(0, line.indexOf(': ') + 2)}${value}` : line));
  }),
  fc.tuple(fc.nat(), fc.oneof(YAMLISH_LINE, fc.string({ maxLength: 20 }))).map(([n, junk]): Mutation => (lines) => {
    const i = n % (lines.length + 1);
    return [...lines.slice(0, i), junk, ...lines.slice(i)];
  }),
  fc.tuple(fc.nat(), fc.integer({ min: -4, max: 4 })).map(([n, shift]): Mutation => (lines) => {
    const i = n % lines.length;
    return lines.map((line, j) => (j !== i ? line : shift >= 0 ? ' '.repeat(shift) + line : line.replace(new RegExp(`^ {0,${-shift}}`), '')));
  }),
  fc.tuple(fc.nat(), fc.nat()).map(([a, b]): Mutation => (lines) => {
    const copy = [...lines];
    const i = a % copy.length;
    const j = b % copy.length;
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
    return copy;
  }),
);

describe('parseRegistry on any input', () => {
  it('never throws on random text', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 200 }), check), { numRuns: 300 });
  });

  it('never throws on random YAML-like documents', () => {
    fc.assert(fc.property(YAMLISH_DOC, check), { numRuns: 300 });
  });

  it('never throws on mutations of the bundled sample', () => {
    const lines = SAMPLE.split('\n');
    fc.assert(
      fc.property(fc.array(MUTATION, { minLength: 1, maxLength: 3 }), (mutations) => {
        check(mutations.reduce((current, mutate) => mutate(current), lines).join('\n'));
      }),
      { numRuns: 200 },
    );
  });

  it('finds a problem in the sample whenever a required key is deleted', () => {
    const requiredLines = SAMPLE.split('\n')
      .map((line, index) => ({ line, index }))
      .filter(({ line }) => /^\s+(- )?(id|name|host|user|host_key|path|public_url|timezone|window):/.test(line));
    fc.assert(
      fc.property(fc.constantFrom(...requiredLines), ({ index }) => {
        const text = SAMPLE.split('\n').filter((_, i) => i !== index).join('\n');
        const result = parseRegistry(text, FILE);
        expect(result.ok).toBe(false);
        expectWellFormed(text, result);
      }),
      { numRuns: 60 },
    );
  });
});
