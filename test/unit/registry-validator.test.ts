import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { ValidateFunction } from 'ajv';
import { parse } from 'yaml';
import { compileSchema, precompiledValidatorSource, SCHEMA_FILE } from '../../src/core/registry/registry.js';

// The installed CLI validates registries with the code `npm run build` generates; the tests run from src,
// which compiles the schema: both must find the same defects, with the schema parts the messages read.
describe('the registry validator the build writes', () => {
  const schema = readFileSync(SCHEMA_FILE, 'utf8');
  const example = parse(readFileSync('examples/difusores.yaml', 'utf8')) as { difusores: Array<Record<string, unknown>> };
  const ssh = { id: 'ujed', name: 'UJED', host: 'prep.ujed.example', user: 'difusion', path: '/srv/prep', public_url: 'https://prep.ujed.example/' };
  const withDifusor = (d: Record<string, unknown>) => ({ ...example, difusores: [...example.difusores, d] });
  const cases: Array<[string, unknown]> = [
    ['the example', example],
    ['a newer version', { ...example, version: 2 }],
    ['an unknown key', { ...example, publicacion: {} }],
    ['no difusores', { ...example, difusores: [] }],
    ['an unknown transport', withDifusor({ ...ssh, transport: 'ftp' })],
    ['an ssh difusor without host or key', withDifusor({ id: 'x', name: 'X', path: '/srv', public_url: 'https://x.example/' })],
    ['an id in capitals, a port out of range', withDifusor({ ...ssh, id: 'UJED mx', port: 70000 })],
    ['a mapping where text goes', withDifusor({ ...ssh, name: { a: 1 }, status: 'dormido' })],
  ];
  let built: ValidateFunction & { schemaSha256?: string };
  let runtime: ValidateFunction;

  beforeAll(async () => {
    // Inside the repository, where its require('ajv/dist/runtime/…') finds node_modules as in dist/.
    await mkdir('test-artifacts', { recursive: true });
    const file = path.join(await mkdtemp(path.resolve('test-artifacts', 'validator-')), 'registry-validator.cjs');
    await writeFile(file, precompiledValidatorSource());
    built = createRequire(import.meta.url)(file) as typeof built;
    runtime = compileSchema(schema).validate;
  });

  it('names the hash of the schema it was generated from (a changed schema is compiled at run time instead)', () => {
    expect(built.schemaSha256).toBe(createHash('sha256').update(schema).digest('hex'));
  });

  it.each(cases)('finds what the compiled schema finds: %s', (_name, data) => {
    const ok = runtime(data);
    expect(built(data)).toBe(ok);
    expect(built.errors ?? null).toEqual(runtime.errors ?? null);
    if (_name !== 'the example') expect(ok).toBe(false);
  });
});
