import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type * as AjvModule from 'ajv';
import type { ValidateFunction } from 'ajv';

/** board.json's schema compiled by ajv in strict mode, as a reader of the open data would check it. */
export function boardValidator(): ValidateFunction {
  const { Ajv } = createRequire(import.meta.url)('ajv') as typeof AjvModule;
  const ajv = new Ajv({ allErrors: true, strict: true, strictTypes: false });
  return ajv.compile(JSON.parse(readFileSync('schema/board.schema.json', 'utf8')));
}

export interface MetricSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * Prometheus' text exposition format (0.0.4) read strictly: every sample's family declared by # TYPE before
 * it, names and label names as the format allows, label values with their escapes, one value per line.
 * Anything else throws, naming the line.
 */
export function parsePrometheusText(text: string): { types: Map<string, string>; samples: MetricSample[] } {
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a newline');
  const types = new Map<string, string>();
  const samples: MetricSample[] = [];
  const seen = new Set<string>();
  text
    .slice(0, -1)
    .split('\n')
    .forEach((line, i) => {
      const where = `line ${i + 1}: ${line}`;
      if (line.startsWith('# HELP ')) {
        if (!/^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*$/.test(line)) throw new Error(`bad HELP, ${where}`);
        return;
      }
      const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
      if (type) {
        if (types.has(type[1] as string)) throw new Error(`TYPE given twice, ${where}`);
        types.set(type[1] as string, type[2] as string);
        return;
      }
      if (line.startsWith('#') || line === '') throw new Error(`unexpected, ${where}`);
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? ([^ ]+)$/.exec(line);
      if (!m) throw new Error(`not a sample, ${where}`);
      const name = m[1] as string;
      if (!types.has(name)) throw new Error(`sample before its # TYPE, ${where}`);
      const labels: Record<string, string> = {};
      let rest = m[2] ?? '';
      while (rest.length > 0) {
        const l = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\\\|\\"|\\n)*)"(,|$)/.exec(rest);
        if (!l) throw new Error(`bad labels, ${where}`);
        labels[l[1] as string] = (l[2] as string).replace(/\\(\\|"|n)/g, (_, c: string) => (c === 'n' ? '\n' : c));
        rest = rest.slice(l[0].length);
      }
      const raw = m[3] as string;
      const value = raw === 'NaN' ? NaN : raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw);
      if (Number.isNaN(value) && raw !== 'NaN') throw new Error(`bad value, ${where}`);
      const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
      if (seen.has(key)) throw new Error(`sample given twice, ${where}`);
      seen.add(key);
      samples.push({ name, labels, value });
    });
  return { types, samples };
}
