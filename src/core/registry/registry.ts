import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as AjvModule from 'ajv';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { isAlias, isCollection, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type YAMLError } from 'yaml';
import { parseHostKey } from './hostkey.js';
import type { Difusor, LoadResult, Registry, RegistryProblem, TimeWindow } from './types.js';

/** Defaults the loader applies; the schema's `default`s document the same values. */
export const DEFAULTS = {
  transport: 'ssh',
  port: 22,
  status: 'active',
  access: 'shell',
  compress: false,
  keep_releases: 5,
  concurrency: 8,
  switch_deadline_s: 20,
  lease_s: 120,
  connect_timeout_s: 10,
  state_dir: '.difusion',
} as const;

export const SCHEMA_FILE = new URL('../../../schema/difusores.schema.json', import.meta.url);

type Segment = string | number;
/** Where a problem points: the value of a field, or its key (unknown keys, fields that must go). */
type Target = 'value' | 'key';

interface PendingProblem {
  /** The field the problem is about. */
  segments: Segment[];
  target: Target;
  message: string;
  /** Where to point when that is not the field itself (a missing key has no position of its own). */
  at?: Segment[];
}

type Raw = Record<string, unknown>;

const SSH_ONLY_FIELDS = ['host', 'user', 'host_key', 'port', 'access', 'from', 'compress'] as const;
// Control characters break the notice, the roster and terminal output; bidi overrides can disguise a name.
const INVISIBLE_CHAR = /[\p{Cc}\u200E\u200F\u202A-\u202E\u2066-\u2069]/u;
const WALL_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/;
const DNS_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/**
 * `npm run build` writes the schema's validator beside the built registry.js as plain code (ajv's standalone
 * output): loading ajv and compiling the schema cost each CLI run ~0.25 s of CPU, most of a cron probe's
 * start-up. It names the hash of the schema it was generated from; run from src (ts-node, jest), or after the
 * schema changed without a build, the schema is compiled here as before.
 */
export const PRECOMPILED_VALIDATOR = new URL('./registry-validator.cjs', import.meta.url);

const require = createRequire(import.meta.url);
let compiledSchema: ValidateFunction | undefined;

function schemaValidator(): ValidateFunction {
  if (!compiledSchema) {
    const text = readFileSync(SCHEMA_FILE, 'utf8');
    compiledSchema = precompiledValidator(sha256(text)) ?? compileSchema(text).validate;
  }
  return compiledSchema;
}

function precompiledValidator(schemaSha256: string): ValidateFunction | undefined {
  let built: ValidateFunction & { schemaSha256?: string };
  try {
    built = require(fileURLToPath(PRECOMPILED_VALIDATOR)) as typeof built;
  } catch (error) {
    if ((error as { code?: string }).code === 'MODULE_NOT_FOUND') return undefined;
    throw error;
  }
  return built.schemaSha256 === schemaSha256 ? built : undefined;
}

export function compileSchema(text: string, source = false): { ajv: AjvModule.Ajv; validate: ValidateFunction } {
  const { Ajv } = require('ajv') as typeof AjvModule;
  const ajv = new Ajv({ allErrors: true, verbose: true, strict: true, strictTypes: false, strictRequired: false, code: { source } });
  // Non-standard keyword understood by VS Code and yaml-language-server; ours reads it for messages.
  ajv.addKeyword('patternErrorMessage');
  return { ajv, validate: ajv.compile(JSON.parse(text)) };
}

/** The module `npm run build` writes at PRECOMPILED_VALIDATOR: the validator as CommonJS, and its schema's hash. */
export function precompiledValidatorSource(): string {
  const text = readFileSync(SCHEMA_FILE, 'utf8');
  const { ajv, validate } = compileSchema(text, true);
  const standaloneCode = (require('ajv/dist/standalone') as { default: (ajv: AjvModule.Ajv, validate: ValidateFunction) => string }).default;
  return `${standaloneCode(ajv, validate)}\nmodule.exports.schemaSha256 = ${JSON.stringify(sha256(text))};\n`;
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

export async function loadRegistry(file: string): Promise<LoadResult> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    return { ok: false, problems: [{ file, line: 1, col: 1, field: '', message: readFailure(error) }] };
  }
  return parseRegistry(text, file);
}

function readFailure(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') return 'no such file; pass --registry FILE or set DIFUSION_REGISTRY';
  if (code === 'EISDIR') return 'is a directory, not a registry file';
  if (code === 'EACCES') return 'permission denied';
  return `cannot read the registry: ${error instanceof Error ? error.message : String(error)}`;
}

/** Parses and validates a registry. Never throws: every defect, expected or not, comes back as a positioned problem. */
export function parseRegistry(text: string, file: string): LoadResult {
  try {
    return parseUnsafe(text, file);
  } catch (error) {
    const message = `could not check the registry (${error instanceof Error ? error.message : String(error)})`;
    return { ok: false, problems: [{ file, line: 1, col: 1, field: '', message }] };
  }
}

function parseUnsafe(text: string, file: string): LoadResult {
  const lineCounter = new LineCounter();
  // Editors do not count a byte-order mark as a column; left in, it would shift every column of line 1.
  const doc = parseDocument(text.replace(/^\uFEFF/, ''), { lineCounter, prettyErrors: false, uniqueKeys: true });
  const position = (offset: number): { line: number; col: number } => {
    const { line, col } = lineCounter.linePos(Math.max(0, offset));
    return { line: Math.max(1, line), col: Math.max(1, col) };
  };

  const yamlFaults = [...doc.errors, ...doc.warnings];
  if (yamlFaults.length > 0) {
    const problems = yamlFaults.map((fault) => {
      const { offset, message } = anchorYamlFault(doc, fault);
      return { file, ...position(offset), field: '', message };
    });
    return { ok: false, problems: finishProblems(problems) };
  }

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (error) {
    const message = `cannot be read as data: ${error instanceof Error ? error.message : String(error)}`;
    return { ok: false, problems: [{ file, line: 1, col: 1, field: '', message }] };
  }
  if (data === null || data === undefined) {
    return { ok: false, problems: [{ file, line: 1, col: 1, field: '', message: 'the registry is empty; start from the sample difusores.yaml' }] };
  }

  const schemaProblems = schemaCheck(data);
  const flawedFields = new Set(schemaProblems.map((p) => fieldName(p.segments)));
  // A field the schema already rejected would only repeat the complaint in other words.
  const ruleProblems = semanticCheck(data).filter((p) => !flawedFields.has(fieldName(p.segments)));
  const pending = [...schemaProblems, ...ruleProblems];

  if (pending.length > 0) {
    const problems = pending.map((p) => ({
      file,
      ...position(offsetOf(doc, p.at ?? p.segments, p.target)),
      field: fieldName(p.segments),
      message: p.message,
    }));
    return { ok: false, problems: finishProblems(problems) };
  }
  return { ok: true, registry: buildRegistry(data as Raw, file) };
}

/**
 * The parser notices an unclosed quote or flow collection where the text ends or the next key begins;
 * the place to fix is where it was opened.
 */
function anchorYamlFault(doc: Document, fault: YAMLError): { offset: number; message: string } {
  const offset = fault.pos[0];
  // The yaml library appends its own "at line X, column Y" and a source excerpt; ours already lead the line.
  const message = fault.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '').trim() || 'invalid YAML';
  const unclosedQuote = fault.code === 'MISSING_CHAR' && /quote/.test(message);
  const unclosedFlow = fault.code === 'BAD_INDENT' && /^Flow (map|sequence)/.test(message);
  if (!unclosedQuote && !unclosedFlow) return { offset, message };
  let opening: number | undefined;
  visit(doc, {
    Node(_, node) {
      const range = node.range;
      if (!range || range[0] >= offset || range[1] < offset) return;
      const candidate = unclosedQuote
        ? isScalar(node) && (node.type === 'QUOTE_SINGLE' || node.type === 'QUOTE_DOUBLE')
        : isCollection(node) && node.flow === true;
      if (candidate && (opening === undefined || range[0] > opening)) opening = range[0];
    },
  });
  if (opening === undefined) return { offset, message };
  return { offset: opening, message: `${message} (opened here, never closed)` };
}

/** Sorted by position, with nothing in them that a terminal would interpret. */
function finishProblems(problems: RegistryProblem[]): RegistryProblem[] {
  for (const problem of problems) {
    problem.field = escapeInvisible(problem.field);
    problem.message = escapeInvisible(problem.message);
  }
  return problems.sort((a, b) => a.line - b.line || a.col - b.col || a.field.localeCompare(b.field));
}

// ---------------------------------------------------------------- positions

function offsetOf(doc: Document, segments: Segment[], target: Target): number {
  let node: unknown = doc.contents;
  let best = rangeStart(node) ?? 0;
  for (const [index, segment] of segments.entries()) {
    if (isAlias(node)) node = node.resolve(doc);
    let keyNode: unknown;
    if (isMap(node)) {
      const pair = node.items.find((item) => keyText(item.key) === String(segment));
      if (!pair) break;
      keyNode = pair.key;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === 'number') {
      node = node.items[segment];
      if (isPair(node)) node = node.value;
    } else {
      break;
    }
    const last = index === segments.length - 1;
    const keyStart = rangeStart(keyNode);
    if (last && target === 'key' && keyStart !== undefined) return keyStart;
    // A key with nothing after its colon has only an empty scalar as value; the key is the useful place.
    const valueStart = isEmptyScalar(node) ? undefined : rangeStart(node);
    best = valueStart ?? keyStart ?? best;
  }
  return best;
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as { range?: unknown } | null | undefined)?.range;
  return Array.isArray(range) && typeof range[0] === 'number' ? range[0] : undefined;
}

function isEmptyScalar(node: unknown): boolean {
  if (!isScalar(node)) return false;
  const range = node.range;
  return node.value === null && (!range || range[0] === range[1]);
}

function keyText(key: unknown): string | undefined {
  if (isScalar(key)) return String(key.value);
  return typeof key === 'string' ? key : undefined;
}

/** "difusores[2].host_key"; keys that are not plain identifiers are quoted so the path stays unambiguous. */
function fieldName(segments: Segment[]): string {
  let out = '';
  for (const segment of segments) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(segment)) out += out ? `.${segment}` : segment;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

// ---------------------------------------------------------------- schema

function schemaCheck(data: unknown): PendingProblem[] {
  const validate = schemaValidator();
  if (validate(data)) return [];
  const problems: PendingProblem[] = [];
  const seen = new Set<string>();
  const errors = validate.errors ?? [];
  // Which fields an ssh difusor needs is moot while its transport is unknown.
  const unknownTransport = new Set(errors.filter((e) => e.instancePath.endsWith('/transport')).map((e) => e.instancePath.slice(0, -'/transport'.length)));
  for (const error of errors) {
    if (error.keyword === 'required' && error.schemaPath.includes('/else/') && unknownTransport.has(error.instancePath)) continue;
    const problem = schemaProblem(error, data);
    if (!problem) continue;
    const key = `${fieldName(problem.segments)}\u0000${problem.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    problems.push(problem);
  }
  return problems;
}

function schemaProblem(error: ErrorObject, data: unknown): PendingProblem | undefined {
  const segments = pointerSegments(error.instancePath, data);
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'if':
      return undefined;
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      const known = Object.keys((error.parentSchema as { properties?: object } | undefined)?.properties ?? {});
      const hint = closest(key, known);
      const message = `unknown key "${shown(key)}"` + (hint ? ` (did you mean "${hint}"?)` : known.length ? ` (allowed: ${known.join(', ')})` : '');
      return { segments: [...segments, key], target: 'key', message };
    }
    case 'required': {
      const missing = String(params.missingProperty);
      const forSsh = error.schemaPath.includes('/else/');
      const message = forSsh ? 'is required for ssh difusores (or set transport: local)' : 'is required';
      // The key does not exist, so the problem points at the mapping that lacks it (at its own key, when it has one).
      return { segments: [...segments, missing], target: 'key', message, at: segments };
    }
    case 'type': {
      const expected = typeDescription(String(params.type));
      return { segments, target: 'value', message: error.data === null ? `has no value (expected ${expected})` : `must be ${expected}` };
    }
    case 'enum': {
      const allowed = (params.allowedValues as unknown[]).map((v) => String(v)).join(', ');
      return { segments, target: 'value', message: `must be one of: ${allowed}` };
    }
    case 'const':
      return { segments, target: 'value', message: `must be ${JSON.stringify(params.allowedValue)}` };
    case 'pattern': {
      const custom = (error.parentSchema as { patternErrorMessage?: string } | undefined)?.patternErrorMessage;
      return { segments, target: 'value', message: custom ?? `must match ${String(params.pattern)}` };
    }
    case 'minimum':
    case 'maximum':
      return { segments, target: 'value', message: `must be ${String(params.comparison)} ${String(params.limit)}` };
    case 'minLength':
      return { segments, target: 'value', message: params.limit === 1 ? 'must not be empty' : `must be at least ${String(params.limit)} characters` };
    case 'maxLength':
      return { segments, target: 'value', message: `must be at most ${String(params.limit)} characters` };
    case 'minItems':
      return { segments, target: 'value', message: segments.join() === 'difusores' ? 'must list at least one difusor' : `must have at least ${String(params.limit)} items` };
    default:
      return { segments, target: 'value', message: error.message ?? `fails the schema rule "${error.keyword}"` };
  }
}

function typeDescription(type: string): string {
  const names: Record<string, string> = {
    object: 'a mapping (key: value lines)',
    array: 'a list',
    string: 'text',
    integer: 'a whole number',
    number: 'a number',
    boolean: 'true or false',
  };
  return names[type] ?? type;
}

/** JSON Pointer to segments, with array indexes as numbers so field names read "difusores[2]". */
function pointerSegments(pointer: string, data: unknown): Segment[] {
  if (pointer === '') return [];
  const segments: Segment[] = [];
  let current: unknown = data;
  for (const raw of pointer.slice(1).split('/')) {
    const token = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(current)) {
      const index = Number(token);
      segments.push(index);
      current = current[index];
    } else {
      segments.push(token);
      current = current !== null && typeof current === 'object' ? (current as Raw)[token] : undefined;
    }
  }
  return segments;
}

function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const candidate of candidates) {
    const distance = editDistance(word.toLowerCase(), candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}

// ---------------------------------------------------------------- rules the schema cannot express

function isRecord(value: unknown): value is Raw {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function semanticCheck(data: unknown): PendingProblem[] {
  const problems: PendingProblem[] = [];
  const report = (segments: Segment[], message: string, target: Target = 'value'): void => {
    problems.push({ segments, message, target });
  };
  findInvisibleCharacters(data, [], report);
  if (!isRecord(data)) return problems;
  if (isRecord(data.publication)) checkPublication(data.publication, report);
  if (Array.isArray(data.difusores)) checkDifusores(data.difusores, report);
  return problems;
}

type Report = (segments: Segment[], message: string, target?: Target) => void;

// YAML aliases can make the data refer to itself, so each object is visited once.
function findInvisibleCharacters(value: unknown, segments: Segment[], report: Report, visited = new WeakSet<object>()): void {
  if (typeof value === 'object' && value !== null) {
    if (visited.has(value)) return;
    visited.add(value);
  }
  if (typeof value === 'string') {
    const found = INVISIBLE_CHAR.exec(value);
    if (found) {
      const code = found[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
      report(segments, `contains the control character U+${code}; remove it`);
    }
  } else if (Array.isArray(value)) {
    value.forEach((item, index) => findInvisibleCharacters(item, [...segments, index], report, visited));
  } else if (isRecord(value)) {
    for (const [key, item] of Object.entries(value)) findInvisibleCharacters(item, [...segments, key], report, visited);
  }
}

function checkPublication(publication: Raw, report: Report): void {
  const at = (...rest: Segment[]): Segment[] => ['publication', ...rest];
  if (typeof publication.timezone === 'string') {
    const problem = timezoneProblem(publication.timezone);
    if (problem) report(at('timezone'), problem);
  }

  const window = checkTimeWindow(publication.window, at('window'), report);
  if (Array.isArray(publication.simulacros)) {
    publication.simulacros.forEach((simulacro, index) => {
      const rehearsal = checkTimeWindow(simulacro, at('simulacros', index), report);
      if (window && rehearsal && rehearsal.end > window.start) {
        report(at('simulacros', index, 'end'), `the simulacro must end by the start of the publication window (${displayTime(window.start)})`);
      }
    });
  }

  if (typeof publication.official_url === 'string') {
    const problem = httpUrlProblem(publication.official_url);
    if (problem) report(at('official_url'), problem);
  }
  const ssh = publication.ssh;
  if (isRecord(ssh) && typeof ssh.identity_file === 'string' && /^~[^/]/.test(ssh.identity_file)) {
    report(at('ssh', 'identity_file'), 'only "~/" is expanded; write your own home as "~/" or give an absolute path');
  }
}

/** Checks a {start, end} pair; returns it with comparable (seconds-included) times when both are real and in order. */
function checkTimeWindow(value: unknown, segments: Segment[], report: Report): TimeWindow | undefined {
  if (!isRecord(value)) return undefined;
  let valid = true;
  const times: Partial<TimeWindow> = {};
  for (const edge of ['start', 'end'] as const) {
    const text = value[edge];
    if (typeof text !== 'string') {
      valid = false;
      continue;
    }
    const problem = wallTimeProblem(text);
    if (problem) {
      report([...segments, edge], problem);
      valid = false;
    } else if (WALL_TIME.test(text)) {
      times[edge] = text.length === 16 ? `${text}:00` : text;
    } else {
      valid = false;
    }
  }
  if (!valid || !times.start || !times.end) return undefined;
  if (times.start >= times.end) {
    report([...segments, 'end'], `must be after start (${displayTime(times.start)})`);
    return undefined;
  }
  return { start: times.start, end: times.end };
}

function checkDifusores(difusores: unknown[], report: Report): void {
  const firstWithId = new Map<string, number>();
  const firstAtLocation = new Map<string, number>();
  difusores.forEach((difusor, index) => {
    if (!isRecord(difusor)) return;
    const at = (field: string, ...rest: Segment[]): Segment[] => ['difusores', index, field, ...rest];
    const local = difusor.transport === 'local';

    if (typeof difusor.id === 'string') {
      const first = firstWithId.get(difusor.id);
      if (first === undefined) firstWithId.set(difusor.id, index);
      else report(at('id'), `duplicate id "${difusor.id}" (also difusores[${first}])`);
    }

    if (local) {
      for (const field of SSH_ONLY_FIELDS) {
        if (field in difusor) report(at(field), `"${field}" applies only to ssh difusores; this one has transport: local`, 'key');
      }
    } else {
      if (typeof difusor.host === 'string') {
        const problem = hostProblem(difusor.host);
        if (problem) report(at('host'), problem);
      }
      if (typeof difusor.host_key === 'string') {
        const parsed = parseHostKey(difusor.host_key);
        if (typeof parsed === 'string') report(at('host_key'), `not a usable host key: ${parsed}`);
      }
    }

    if (typeof difusor.path === 'string') {
      const problem = remotePathProblem(difusor.path);
      if (problem) report(at('path'), problem);
      const host = local ? '' : typeof difusor.host === 'string' ? difusor.host.toLowerCase() : undefined;
      const port = local ? '' : (difusor.port ?? DEFAULTS.port);
      if (host !== undefined) {
        const location = `${local ? 'local' : 'ssh'}\u0000${host}\u0000${String(port)}\u0000${difusor.path}`;
        const first = firstAtLocation.get(location);
        if (first === undefined) firstAtLocation.set(location, index);
        else report(at('path'), `same ${local ? 'local path' : 'host, port and path'} as difusores[${first}]; two difusores would overwrite each other`);
      }
    }
    if (typeof difusor.public_url === 'string') {
      const problem = httpUrlProblem(difusor.public_url);
      if (problem) report(at('public_url'), problem);
    }
    if (Array.isArray(difusor.redirect_hosts)) {
      difusor.redirect_hosts.forEach((host: unknown, i: number) => {
        const problem = typeof host === 'string' ? hostProblem(host) : undefined;
        if (problem) report(at('redirect_hosts', i), problem);
      });
    }
    if (typeof difusor.access_log === 'string' && !difusor.access_log.startsWith('/')) {
      report(at('access_log'), 'must be an absolute path on the difusor\'s server (start with "/")');
    }
  });
}

export function timezoneProblem(zone: string): string | undefined {
  let canonical: string;
  try {
    canonical = new Intl.DateTimeFormat('en-US', { timeZone: zone }).resolvedOptions().timeZone;
  } catch {
    return `unknown time zone "${shown(zone)}"; use an IANA name such as America/Mexico_City`;
  }
  if (canonical !== zone && canonical.toLowerCase() === zone.toLowerCase()) return `write it as "${canonical}"`;
  if (zone !== 'UTC' && !zone.includes('/')) {
    return `"${shown(zone)}" is not an IANA zone name; write the zone (e.g. America/Mexico_City), not an abbreviation or offset`;
  }
  return undefined;
}

export function wallTimeProblem(text: string): string | undefined {
  const match = WALL_TIME.exec(text);
  if (!match) return undefined;
  const [year, month, day, hour, minute, second] = match.slice(1).map((part) => (part === undefined ? 0 : Number(part))) as number[];
  if (month! < 1 || month! > 12) return `"${text}" is not a real date`;
  const daysInMonth = new Date(Date.UTC(year!, month!, 0)).getUTCDate();
  if (day! < 1 || day! > daysInMonth) return `"${text}" is not a real date`;
  if (hour! > 23 || minute! > 59 || second! > 59) return `"${text}" is not a real time of day`;
  return undefined;
}

export function remotePathProblem(remotePath: string): string | undefined {
  if (!remotePath.startsWith('/')) return 'must be an absolute path (start with "/")';
  if (remotePath === '/') return 'must not be the root directory';
  if (remotePath.includes('//')) return 'must not contain "//"';
  if (remotePath.endsWith('/')) return 'must not end with "/"';
  const parts = remotePath.split('/');
  if (parts.includes('..')) return 'must not contain ".."';
  if (parts.includes('.')) return 'must not contain "." components';
  return undefined;
}

export function hostProblem(host: string): string | undefined {
  // ssh would read a leading "-" as an option.
  if (host.startsWith('-')) return 'must not start with "-"';
  if (host.startsWith('[')) return 'write an IPv6 address without brackets';
  if (isIP(host) !== 0) return undefined;
  if (host.length > 253) return 'is too long for a DNS name';
  const labels = host.split('.');
  if (!labels.every((label) => DNS_LABEL.test(label))) return `"${shown(host)}" is not a DNS name or an IP address`;
  if (/^\d+$/.test(labels[labels.length - 1]!)) return `"${shown(host)}" is not a valid IPv4 address`;
  return undefined;
}

export function httpUrlProblem(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return `"${shown(text)}" is not a URL; write it in full, e.g. https://prep.example.mx/`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'must be an http or https URL';
  if (!url.hostname) return 'must name a host';
  if (url.username || url.password) return 'must not contain a user name or password';
  return undefined;
}

/** A value echoed in a message: long ones cut short. */
function shown(value: string): string {
  return value.length > 60 ? `${value.slice(0, 57)}...` : value;
}

// Problems end up on terminals; an echoed escape sequence or direction override must not reach them raw.
function escapeInvisible(text: string): string {
  return text.replace(new RegExp(INVISIBLE_CHAR.source, 'gu'), (char) => `\\u${char.codePointAt(0)!.toString(16).padStart(4, '0')}`);
}

function displayTime(wallTime: string): string {
  return wallTime.replace('T', ' ').replace(/:00$/, '');
}

// ---------------------------------------------------------------- the result

function buildRegistry(data: Raw, file: string): Registry {
  const absoluteFile = path.resolve(file);
  const dir = path.dirname(absoluteFile);
  const publication = data.publication as Raw;
  const ssh = (publication.ssh ?? {}) as Raw;
  const window = publication.window as TimeWindow;
  const simulacros = (publication.simulacros ?? []) as TimeWindow[];

  return {
    file: absoluteFile,
    version: 1,
    publication: {
      timezone: publication.timezone as string,
      window: { start: window.start, end: window.end },
      simulacros: simulacros.map((s) => ({ start: s.start, end: s.end })),
      keep_releases: (publication.keep_releases as number | undefined) ?? DEFAULTS.keep_releases,
      concurrency: (publication.concurrency as number | undefined) ?? DEFAULTS.concurrency,
      switch_deadline_s: (publication.switch_deadline_s as number | undefined) ?? DEFAULTS.switch_deadline_s,
      lease_s: (publication.lease_s as number | undefined) ?? DEFAULTS.lease_s,
      ssh: withoutUndefined({
        identity_file: resolveIdentityFile(ssh.identity_file as string | undefined, dir),
        connect_timeout_s: (ssh.connect_timeout_s as number | undefined) ?? DEFAULTS.connect_timeout_s,
      }),
      ...withoutUndefined({
        official_url: publication.official_url as string | undefined,
        signing_key: resolveFrom(dir, publication.signing_key as string | undefined),
      }),
      state_dir: path.resolve(dir, (publication.state_dir as string | undefined) ?? DEFAULTS.state_dir),
    },
    difusores: (data.difusores as Raw[]).map((raw) => toDifusor(raw, dir)),
  };
}

function toDifusor(raw: Raw, dir: string): Difusor {
  const contact = raw.contact as Difusor['contact'];
  return withoutUndefined({
    id: raw.id as string,
    name: raw.name as string,
    transport: (raw.transport as Difusor['transport'] | undefined) ?? DEFAULTS.transport,
    host: raw.host as string | undefined,
    port: (raw.port as number | undefined) ?? DEFAULTS.port,
    user: raw.user as string | undefined,
    host_key: raw.host_key as string | undefined,
    path: raw.path as string,
    public_url: raw.public_url as string,
    redirect_hosts: raw.redirect_hosts ? [...(raw.redirect_hosts as string[])] : undefined,
    contact: contact ? { ...contact } : undefined,
    status: (raw.status as Difusor['status'] | undefined) ?? DEFAULTS.status,
    suspended_at: raw.suspended_at as string | undefined,
    suspension_reason: raw.suspension_reason as string | undefined,
    access: (raw.access as Difusor['access'] | undefined) ?? DEFAULTS.access,
    compress: (raw.compress as boolean | undefined) ?? DEFAULTS.compress,
    from: raw.from as string | undefined,
    access_log: raw.access_log as string | undefined,
    logo: resolveFrom(dir, raw.logo as string | undefined),
  });
}

function resolveFrom(dir: string, relative: string | undefined): string | undefined {
  return relative === undefined ? undefined : path.resolve(dir, relative);
}

function resolveIdentityFile(file: string | undefined, dir: string): string | undefined {
  if (file === undefined) return undefined;
  if (file === '~' || file.startsWith('~/')) return path.join(os.homedir(), file.slice(1));
  return path.resolve(dir, file);
}

function withoutUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

// ---------------------------------------------------------------- output

/** The file as given, or relative to the working directory when that is shorter. */
export function displayPath(file: string): string {
  const relative = path.relative(process.cwd(), path.resolve(file));
  // Only a path below the working directory reads better relative; "../x" hides where the file is.
  return relative !== '' && !relative.startsWith('..') && relative.length < file.length ? relative : file;
}

/** "FILE:LINE:COL field: message", the shape editors and terminals turn into links. */
export function formatProblem(problem: RegistryProblem): string {
  const where = `${displayPath(problem.file)}:${problem.line}:${problem.col}`;
  return problem.field ? `${where} ${problem.field}: ${problem.message}` : `${where} ${problem.message}`;
}
