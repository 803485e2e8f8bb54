import { open, readFile, realpath, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { isMap, isScalar, isSeq, parseDocument, Scalar, type Pair, type YAMLMap } from 'yaml';
import { formatProblem, parseRegistry } from './registry.js';

/**
 * `cutoff` and `reinstate` write the registry the institute maintains by hand, so the edit must be
 * one the institute would have made: through the yaml Document API, only the difusor's status
 * fields change; comments, key order, quoting and blank lines stay as they were. The result must
 * still validate, and it replaces the file by a rename, so a crash leaves the old file or the new
 * one, never half of one.
 */

export class RegistryEditError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RegistryEditError';
  }
}

export type StatusChange =
  | { status: 'suspended'; suspended_at: string; suspension_reason: string }
  | { status: 'active' };

const SUSPENSION_KEYS = ['suspended_at', 'suspension_reason'] as const;

type Doc = ReturnType<typeof parseDocument>;

function keyOf(pair: Pair): string | undefined {
  const key = pair.key;
  if (isScalar(key)) return String(key.value);
  return typeof key === 'string' ? key : undefined;
}

function findDifusor(doc: Doc, id: string): YAMLMap {
  const difusores = doc.get('difusores', true);
  if (isSeq(difusores)) {
    for (const item of difusores.items) {
      if (isMap(item) && item.get('id') === id) return item;
    }
  }
  throw new RegistryEditError(`no difusor "${id}" in the registry`);
}

/** The value as YAML: plain where that reads back as the same string, otherwise double-quoted. */
function yamlValue(key: string, value: string): string {
  if (key === 'suspension_reason') return JSON.stringify(value);
  // A YAML 1.1 reader would take an unquoted timestamp for a date; quoted, every reader agrees.
  if (key === 'suspended_at') return `'${value}'`;
  return value;
}

interface Splice {
  from: number;
  to: number;
  text: string;
}

function lineStart(text: string, offset: number): number {
  return text.lastIndexOf('\n', offset - 1) + 1;
}

function lineEnd(text: string, offset: number): number {
  const end = text.indexOf('\n', offset);
  return end < 0 ? text.length : end + 1;
}

/**
 * Edits of a block mapping as splices of the original text, located through the Document's node
 * ranges: every byte outside the changed values stays as it was, even the spacing before a comment.
 */
function blockSplices(text: string, map: YAMLMap, change: StatusChange): Splice[] | undefined {
  const pairs = map.items.filter((p) => isScalar(p.key) && p.key.range && (p.value === null || (p.value as { range?: unknown }).range));
  if (pairs.length !== map.items.length || pairs.length === 0) return undefined;
  const first = pairs[0]!.key as Scalar;
  const indent = ' '.repeat(first.range![0] - lineStart(text, first.range![0]));
  const splices: Splice[] = [];
  const pairOf = (key: string): Pair | undefined => pairs.find((p) => keyOf(p) === key);
  const endOfPairLine = (pair: Pair): number => {
    const node = (pair.value ?? pair.key) as Scalar;
    return lineEnd(text, Math.max(node.range![1] - 1, (pair.key as Scalar).range![1]));
  };
  const setValue = (key: string, value: string, after: Pair | undefined): void => {
    const pair = pairOf(key);
    if (pair && isScalar(pair.value) && pair.value.range) {
      const node = pair.value;
      const quoted = node.type === Scalar.QUOTE_DOUBLE ? JSON.stringify(value) : node.type === Scalar.QUOTE_SINGLE ? `'${value.replace(/'/g, "''")}'` : yamlValue(key, value);
      splices.push({ from: node.range![0], to: node.range![1], text: quoted });
      return;
    }
    if (pair) throw new RegistryEditError(`${key} of the difusor is not a plain value; fix it by hand`);
    const at = endOfPairLine(after ?? pairs[pairs.length - 1]!);
    const newline = at > 0 && text[at - 1] !== '\n' ? '\n' : '';
    splices.push({ from: at, to: at, text: `${newline}${indent}${key}: ${yamlValue(key, value)}\n` });
  };

  const status = pairOf('status');
  setValue('status', change.status, pairOf('public_url'));
  if (change.status === 'suspended') {
    // New keys go right below status (or where status itself is being added), in this order.
    const anchor = status ?? pairOf('public_url');
    const existingAt = pairOf('suspended_at');
    if (existingAt) setValue('suspended_at', change.suspended_at, anchor);
    if (pairOf('suspension_reason')) setValue('suspension_reason', change.suspension_reason, anchor);
    const fresh = SUSPENSION_KEYS.filter((k) => !pairOf(k));
    if (fresh.length > 0) {
      const at = status ? endOfPairLine(status) : undefined;
      const lines = fresh.map((k) => `${indent}${k}: ${yamlValue(k, k === 'suspended_at' ? change.suspended_at : change.suspension_reason)}\n`).join('');
      if (at !== undefined) splices.push({ from: at, to: at, text: lines });
      else {
        const added = splices.find((sp) => sp.text.includes('status: '));
        if (added) added.text += lines;
      }
    }
  } else {
    for (const key of SUSPENSION_KEYS) {
      const pair = pairOf(key);
      if (pair) splices.push({ from: lineStart(text, (pair.key as Scalar).range![0]), to: endOfPairLine(pair), text: '' });
    }
  }
  return splices;
}

/** The same for a flow mapping, `{ id: x, ..., status: active }`: values replaced, pairs added before `}` or cut out with their comma. */
function flowSplices(text: string, map: YAMLMap, change: StatusChange): Splice[] | undefined {
  const pairs = map.items;
  if (!map.range || pairs.some((p) => !isScalar(p.key) || !isScalar(p.value) || !p.value.range)) return undefined;
  const close = text.lastIndexOf('}', map.range[1]);
  let insertAt = close;
  while (insertAt > 0 && /\s/.test(text[insertAt - 1]!)) insertAt--;
  const splices: Splice[] = [];
  const wanted: Array<[string, string | undefined]> =
    change.status === 'suspended'
      ? [['status', 'suspended'], ['suspended_at', change.suspended_at], ['suspension_reason', change.suspension_reason]]
      : [['status', 'active'], ['suspended_at', undefined], ['suspension_reason', undefined]];
  let added = '';
  for (const [key, value] of wanted) {
    const index = pairs.findIndex((p) => keyOf(p) === key);
    const pair = pairs[index];
    const node = pair?.value as Scalar | undefined;
    if (value === undefined) {
      if (pair && index > 0) splices.push({ from: (pairs[index - 1]!.value as Scalar).range![1], to: node!.range![1], text: '' });
    } else if (node) {
      splices.push({ from: node.range![0], to: node.range![1], text: yamlValue(key, value) });
    } else {
      added += `, ${key}: ${yamlValue(key, value)}`;
    }
  }
  if (added) splices.push({ from: insertAt, to: insertAt, text: added });
  return splices;
}

/** The registry text with one difusor's status changed; everything else as it was. */
export function editDifusorStatus(text: string, id: string, change: StatusChange): string {
  const bom = text.startsWith('\uFEFF') ? '\uFEFF' : '';
  const body = text.slice(bom.length);
  const doc = parseDocument(body);
  if (doc.errors.length > 0) throw new RegistryEditError(`the registry is not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
  const map = findDifusor(doc, id);
  const splices = map.flow ? flowSplices(body, map, change) : blockSplices(body, map, change);
  if (!splices) throw new RegistryEditError(`difusor ${id} is written in a form this edit does not handle (keys that are not plain); set its status by hand`);
  let edited = body;
  for (const sp of [...splices].sort((a, b) => b.from - a.from)) edited = edited.slice(0, sp.from) + sp.text + edited.slice(sp.to);
  // The splices are checked against the meaning they were meant to have.
  const check = parseDocument(edited);
  const after = check.errors.length === 0 ? findDifusor(check, id) : undefined;
  const expected: Record<string, unknown> =
    change.status === 'suspended'
      ? { status: 'suspended', suspended_at: change.suspended_at, suspension_reason: change.suspension_reason }
      : { status: 'active', suspended_at: undefined, suspension_reason: undefined };
  for (const [key, value] of Object.entries(expected)) {
    if (after?.get(key) !== value) throw new RegistryEditError(`editing difusor ${id} in the registry went wrong at ${key}; the file was left as it was`);
  }
  return bom + edited;
}

export interface RegistryStore {
  read(): Promise<string>;
  /** Replaces the file atomically; refuses text that does not validate. */
  write(text: string): Promise<void>;
}

/** The registry file: edited where it really lives (through a symlink too), by temp file, fsync and rename. */
export function registryFileStore(file: string): RegistryStore {
  return {
    read: () => readFile(file, 'utf8'),
    async write(text) {
      const checked = parseRegistry(text, file);
      if (!checked.ok) {
        throw new RegistryEditError(`the edited registry would not validate, so it was left as it was:\n${checked.problems.map(formatProblem).join('\n')}`);
      }
      const target = await realpath(file);
      const mode = (await stat(target)).mode & 0o7777;
      const tmp = path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${Date.now()}.tmp`);
      const handle = await open(tmp, 'wx', mode);
      try {
        await handle.writeFile(text);
        await handle.sync();
      } catch (error) {
        await handle.close();
        await rm(tmp, { force: true });
        throw error;
      }
      await handle.close();
      await rename(tmp, target).catch(async (error: Error) => {
        await rm(tmp, { force: true });
        throw new RegistryEditError(`cannot replace ${target}: ${error.message}`);
      });
      // The rename itself must reach the disk before the notice is sent.
      const dir = await open(path.dirname(target), 'r');
      await dir.sync().finally(() => dir.close());
    },
  };
}

/** Reads, edits one difusor's status, validates and writes back. */
export async function changeDifusorStatus(store: RegistryStore, id: string, change: StatusChange): Promise<void> {
  const text = await store.read();
  await store.write(editDifusorStatus(text, id, change));
}

