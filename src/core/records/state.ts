import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { parseManifest, sha256Hex } from '../shared/manifest.js';
import { isCutId } from '../shared/cut-id.js';
import type { JournalRecord } from './journal.js';
import type { ProbeRow } from './probe-row.js';
import { writeAtomically } from './state-file.js';

export { StateWriteError, writeAtomically } from './state-file.js';

/**
 * What this host published, under publication.state_dir. Nothing here is needed to serve a difusor:
 * losing it loses history and hard-link sharing for one run, never content.
 */
export interface DifusorRecord {
  id: string;
  live?: string;
  liveSince?: string;
  lastResult?: { at: string; cut: string; result: string; error?: string };
  history: Array<{ at: string; cut: string; result: string }>;
}

const HISTORY_LIMIT = 200;

/** The last probe of one difusor, in `<state_dir>/probe/<id>.json`. */
export interface ProbeRecord {
  at: string;
  run: string;
  row: ProbeRow;
}

/** What the state directory holds, for an operator who must free space: the journal, the cuts' manifests, the rest. */
export async function stateDirUsage(dir: string): Promise<{ totalBytes: number; journalBytes: number; cutsBytes: number; cuts: number }> {
  const sizeOf = async (p: string): Promise<number> => {
    const info = await stat(p).catch(() => undefined);
    if (!info) return 0;
    if (!info.isDirectory()) return info.size;
    let total = 0;
    for (const name of await readdir(p).catch(() => [] as string[])) total += await sizeOf(path.join(p, name));
    return total;
  };
  const cuts = (await readdir(path.join(dir, 'cuts')).catch(() => [] as string[])).length;
  const [totalBytes, journalBytes, cutsBytes] = await Promise.all([sizeOf(dir), sizeOf(path.join(dir, 'journal.jsonl')), sizeOf(path.join(dir, 'cuts'))]);
  return { totalBytes, journalBytes, cutsBytes, cuts };
}

/** A cut's manifest as this host's own copy of the cut makes it. */
export interface LearnedManifest {
  text: string;
  entries: Array<{ path: string; size: number }>;
  /** The cut directory it was made from. */
  source: string;
}

/**
 * Where the manifest of a cut this host never published is learned: its own copy of the cuts
 * (publish/cut-library.ts). The standby of the alternate site starts with an empty state dir.
 */
export interface CutManifestSource {
  manifestOf(cut: string): Promise<LearnedManifest | undefined>;
  /** The recent cuts whose manifest would be this many bytes long, found without hashing a file. */
  cutsWithManifestLength(bytes: number): Promise<string[]>;
}

export class StateStore {
  constructor(
    readonly dir: string,
    private readonly learnFrom?: CutManifestSource,
  ) {}

  manifestFile(cut: string): string {
    return path.join(this.dir, 'cuts', cut, 'MANIFEST.sha256');
  }

  async saveManifest(cut: string, text: string, signature?: string): Promise<void> {
    await writeAtomically(this.manifestFile(cut), text);
    if (signature !== undefined) await writeAtomically(`${this.manifestFile(cut)}.sig`, signature);
  }

  /** The hashes of a cut we published, only when the copy we hold has the given digest. */
  private readonly parsed = new Map<string, Promise<Map<string, string> | undefined>>();

  /** Parsed once per run and digest, however many difusores share the same base. */
  manifestHashes(cut: string, digest: string | undefined): Promise<Map<string, string> | undefined> {
    // The name comes from the difusor (its base release): never a path out of the state dir.
    if (!digest || !isCutId(cut)) return Promise.resolve(undefined);
    const key = `${cut}:${digest}`;
    let parsed = this.parsed.get(key);
    if (!parsed) {
      parsed = this.readManifestHashes(cut, digest);
      this.parsed.set(key, parsed);
    }
    return parsed;
  }

  private readonly published = new Map<string, Promise<Map<string, string> | undefined>>();

  /** The hashes of a cut this host published, as its own copy says: for a guess of what a difusor holds, never to link by. */
  publishedHashes(cut: string): Promise<Map<string, string> | undefined> {
    let parsed = this.published.get(cut);
    if (!parsed) {
      parsed = readFile(this.manifestFile(cut), 'utf8').then(
        (text) => parseManifest(text),
        () => undefined,
      );
      this.published.set(cut, parsed);
    }
    return parsed;
  }

  private async readManifestHashes(cut: string, digest: string): Promise<Map<string, string> | undefined> {
    const text = await readFile(this.manifestFile(cut), 'utf8').catch(() => undefined);
    if (text === undefined || sha256Hex(text) !== digest) return this.learn(cut, digest);
    return parseManifest(text);
  }

  /**
   * A cut this host did not publish (or whose copy differs): known once this host's own copy of the cut hashes
   * to the same digest, then kept as if published here, so the next run and the probe find it at once.
   */
  private async learn(cut: string, digest: string): Promise<Map<string, string> | undefined> {
    const learned = await this.learnFrom?.manifestOf(cut);
    if (!learned || sha256Hex(learned.text) !== digest) return undefined;
    await this.saveManifest(cut, learned.text);
    await this.saveSizes(cut, learned.entries);
    await this.saveSource(cut, learned.source);
    this.published.delete(cut);
    this.sizes.delete(cut);
    return parseManifest(learned.text);
  }

  /** Where a cut was published from, so reinstate can deliver it again to a difusor that was suspended. */
  async saveSource(cut: string, cutDir: string): Promise<void> {
    await writeAtomically(path.join(this.dir, 'cuts', cut, 'source'), `${cutDir}\n`);
  }

  async sourceOf(cut: string): Promise<string | undefined> {
    const text = await readFile(path.join(this.dir, 'cuts', cut, 'source'), 'utf8').catch(() => undefined);
    return text?.trim() || undefined;
  }

  /** Sizes by path, so a quick verify can spot a changed file without re-hashing it. */
  async saveSizes(cut: string, entries: Array<{ path: string; size: number }>): Promise<void> {
    await writeAtomically(path.join(this.dir, 'cuts', cut, 'sizes.json'), JSON.stringify(entries.map((e) => [e.path, e.size])));
  }

  private readonly sizes = new Map<string, Promise<Map<string, number> | undefined>>();

  /** Read once per run, however many difusores serve the same cut. */
  sizesOf(cut: string): Promise<Map<string, number> | undefined> {
    let sizes = this.sizes.get(cut);
    if (!sizes) {
      sizes = this.readSizes(cut);
      this.sizes.set(cut, sizes);
    }
    return sizes;
  }

  private async readSizes(cut: string): Promise<Map<string, number> | undefined> {
    const text = await readFile(path.join(this.dir, 'cuts', cut, 'sizes.json'), 'utf8').catch(() => undefined);
    if (text === undefined) return undefined;
    try {
      return new Map(JSON.parse(text) as Array<[string, number]>);
    } catch {
      return undefined;
    }
  }

  async manifestText(cut: string): Promise<string | undefined> {
    return readFile(this.manifestFile(cut), 'utf8').catch(() => undefined);
  }

  hashCacheFile(): string {
    return path.join(this.dir, 'hash-cache');
  }

  private recordFile(id: string): string {
    return path.join(this.dir, 'difusores', `${id}.json`);
  }

  async readRecord(id: string): Promise<DifusorRecord> {
    const text = await readFile(this.recordFile(id), 'utf8').catch(() => undefined);
    if (text) {
      try {
        return JSON.parse(text) as DifusorRecord;
      } catch {
        // A torn record is history lost, not a reason to stop publishing.
      }
    }
    return { id, history: [] };
  }

  async recordResult(id: string, entry: { at: string; cut: string; result: string; error?: string; live?: string }): Promise<void> {
    const record = await this.readRecord(id);
    if (entry.live && entry.live !== record.live) {
      record.live = entry.live;
      record.liveSince = entry.at;
    }
    record.lastResult = { at: entry.at, cut: entry.cut, result: entry.result, ...(entry.error ? { error: entry.error } : {}) };
    record.history = [...record.history, { at: entry.at, cut: entry.cut, result: entry.result }].slice(-HISTORY_LIMIT);
    await writeAtomically(this.recordFile(id), JSON.stringify(record, null, 2) + '\n');
  }

  private readonly manifestDigests = new Map<string, { key: string; digest: string }>();

  /** The cut whose manifest we published has these bytes; only the copies of the same length are read and hashed. */
  async cutWithManifest(digest: string, bytes: number): Promise<string | undefined> {
    const cuts = await readdir(path.join(this.dir, 'cuts')).catch(() => [] as string[]);
    for (const cut of cuts) {
      const info = await stat(this.manifestFile(cut)).catch(() => undefined);
      if (!info || info.size !== bytes) continue;
      const key = `${info.size}:${info.mtimeMs}`;
      let known = this.manifestDigests.get(cut);
      if (known?.key !== key) {
        const text = await readFile(this.manifestFile(cut)).catch(() => undefined);
        if (!text) continue;
        known = { key, digest: sha256Hex(text) };
        this.manifestDigests.set(cut, known);
      }
      if (known.digest === digest) return cut;
    }
    return this.learnCutOf(digest, bytes, new Set(cuts));
  }

  /**
   * Among this host's recent cuts not yet in the state dir. Asked again every time (a copy of a cut may arrive
   * while a probe watches): the source hashes each cut once, so a digest nobody published costs comparisons.
   */
  private async learnCutOf(digest: string, bytes: number, kept: Set<string>): Promise<string | undefined> {
    if (!this.learnFrom) return undefined;
    for (const cut of await this.learnFrom.cutsWithManifestLength(bytes)) {
      if (!kept.has(cut) && (await this.learn(cut, digest))) return cut;
    }
    return undefined;
  }

  private probeFile(id: string): string {
    return path.join(this.dir, 'probe', `${id}.json`);
  }

  async saveProbe(id: string, record: ProbeRecord): Promise<void> {
    await writeAtomically(this.probeFile(id), JSON.stringify(record, null, 2) + '\n');
  }

  async readProbe(id: string): Promise<ProbeRecord | undefined> {
    const text = await readFile(this.probeFile(id), 'utf8').catch(() => undefined);
    if (!text) return undefined;
    try {
      return JSON.parse(text) as ProbeRecord;
    } catch {
      return undefined;
    }
  }

  private unjournaledFile(): string {
    // Beside probe/, not in it: probe/*.json are the difusores' last results.
    return path.join(this.dir, 'probe-unjournaled.json');
  }

  /** Probe incidents that could not be journaled because another run held the lock; the next probe journals them. */
  async readUnjournaled(): Promise<JournalRecord[]> {
    const text = await readFile(this.unjournaledFile(), 'utf8').catch(() => undefined);
    if (!text) return [];
    try {
      return JSON.parse(text) as JournalRecord[];
    } catch {
      return [];
    }
  }

  async saveUnjournaled(records: JournalRecord[]): Promise<void> {
    await writeAtomically(this.unjournaledFile(), JSON.stringify(records) + '\n');
  }
}
