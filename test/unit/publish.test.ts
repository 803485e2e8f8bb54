import { createHash } from 'node:crypto';
import type { Difusor } from '../../src/core/registry/types.js';
import { localDifusor } from './support/difusor.js';
import { manifestText, type Manifest, type ManifestEntry } from '../../src/core/shared/manifest.js';
import {
  exitCodeFor,
  openAhead,
  publishCut,
  type DifusorOutcome,
  type Phase,
  type PublishJournalPort,
  type PublishRequest,
} from '../../src/core/publish/publish.js';
import type { DifusorConnector, DifusorSession, HelperOutput, OpenOptions } from '../../src/adapters/difusor.js';

const sha = (data: string): string => createHash('sha256').update(data).digest('hex');
const CUT = '20220605_2030';
const PREVIOUS = '20220605_2015';

function manifestOf(files: Record<string, string>): Manifest {
  const entries: ManifestEntry[] = Object.entries(files)
    .sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
    .map(([path, content]) => ({ path, size: Buffer.byteLength(content), sha256: sha(content) }));
  const text = manifestText(entries);
  return { entries, text, digest: sha(text), totalBytes: entries.reduce((n, e) => n + e.size, 0) };
}

const previousManifest = manifestOf({ 'index.html': 'corte 20:15', 'actas/1_A.jpg': 'acta 1A', 'datos/viejo.csv': 'se va' });
const cutManifest = manifestOf({ 'index.html': 'corte 20:30', 'actas/1_A.jpg': 'acta 1A', 'actas/2_A.jpg': 'acta 2A' });

const difusor = localDifusor;

/** The inventory a release holding this manifest's files reports ("f SIZE PATH"). */
function inventory(m: Manifest, extra: string[] = []): string {
  return [...m.entries.map((e) => `f ${e.size} ${e.path}`), `f ${Buffer.byteLength(m.text)} MANIFEST.sha256`, ...extra].join('\n') + '\n';
}

/**
 * What the helper's prepare --stage answers for a new release linked from `base`: the staging's inventory,
 * the base's files whose hash the new manifest repeats and the new manifest.
 */
function stagedAnswer(base: Manifest, next: Manifest): string {
  const kept = next.entries.filter((e) => base.entries.some((b) => b.path === e.path && b.sha256 === e.sha256));
  return (
    `live ${PREVIOUS}\nfree 1000000\nbase ${PREVIOUS}\nmanifest ${base.digest}\nstaged ${CUT}\n` +
    [...kept.map((e) => `f ${e.size} ${e.path}`), `f ${Buffer.byteLength(next.text)} MANIFEST.sha256`].join('\n') +
    '\n'
  );
}

type Script = (args: string[], stdin: string) => HelperOutput | Promise<HelperOutput>;

interface FakeOptions {
  /** What prepare/inspect prints; default: the previous cut live with its manifest. */
  prepare?: string;
  openError?: string;
  /** Replace one verb's behaviour. */
  verbs?: Record<string, Script>;
  transferError?: string;
  /** Delay every call by this many ms (lets staging overlap). */
  delayMs?: number;
  /** The transfer waits for this (a link that is slow or frozen until the test lets it go). */
  transferGate?: Promise<void>;
}

const okOut = (stdout = ''): HelperOutput => ({ code: 0, stdout, stderr: '' });
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** An in-memory connector: scripted helper answers per difusor, and a log of every call in order. */
class FakeConnector implements DifusorConnector {
  readonly log: string[] = [];
  readonly stdin = new Map<string, string>();
  readonly transfers = new Map<string, string[]>();
  readonly transferLog: Array<{ id: string; files: string[]; incoming?: string; signal?: AbortSignal }> = [];
  openSessions = 0;
  maxOpenSessions = 0;
  inFlight = new Set<string>();
  maxInFlight = 0;
  opened = 0;
  closed = 0;

  constructor(
    private readonly options: Record<string, FakeOptions> = {},
    private readonly manifest: Manifest = cutManifest,
  ) {}

  private defaults(id: string, verb: string, args: string[]): HelperOutput {
    switch (verb) {
      case 'prepare':
      case 'inspect':
        if (args[1] === '--stage') return okOut(stagedAnswer(previousManifest, this.manifest));
        return okOut(
          `live ${PREVIOUS}\nfree 1000000\nbase ${PREVIOUS}\nmanifest ${previousManifest.digest}\n${inventory(previousManifest)}`,
        );
      case 'verify':
        return okOut(`check 0\n${inventory(this.manifest)}`);
      case 'promote':
        return okOut(`promoted ${args[0]}\n`);
      case 'switch':
        return okOut(`live releases/${args[0]}\n`);
      case 'link':
      case 'prune':
      case 'discard':
        return okOut();
      default:
        return { code: 2, stdout: '', stderr: `difusion-helper: refused: unknown verb ${verb} (${id})\n` };
    }
  }

  openedWith = new Map<string, OpenOptions | undefined>();

  async open(d: Difusor, openOptions?: OpenOptions): Promise<DifusorSession> {
    const opts = this.options[d.id] ?? {};
    this.log.push(`${d.id}:open`);
    this.openedWith.set(d.id, openOptions);
    this.inFlight.add(d.id);
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight.size);
    if (opts.delayMs) await sleep(opts.delayMs);
    if (opts.openError) {
      this.inFlight.delete(d.id);
      throw new Error(opts.openError);
    }
    this.opened++;
    this.openSessions++;
    this.maxOpenSessions = Math.max(this.maxOpenSessions, this.openSessions);
    let closed = false;
    return {
      helper: async (verb, args, o = {}) => {
        this.log.push(`${d.id}:${verb}`);
        this.stdin.set(`${d.id}:${verb}:${args.join(' ')}`, o.stdin ?? '');
        if (opts.delayMs) await sleep(opts.delayMs);
        const custom = opts.verbs?.[verb];
        const out = custom ? await custom(args, o.stdin ?? '') : this.defaults(d.id, verb, args);
        if (verb === 'promote' || out.code !== 0) this.inFlight.delete(d.id);
        return out;
      },
      transfer: async (_sourceDir, cut, files, _onProgress, transferOptions = {}) => {
        this.log.push(`${d.id}:transfer`);
        this.transfers.set(`${d.id}:${cut}`, files);
        this.transferLog.push({ id: d.id, files, incoming: transferOptions.incoming, signal: transferOptions.signal });
        if (opts.delayMs) await sleep(opts.delayMs);
        if (opts.transferGate) {
          const signal = transferOptions.signal;
          await Promise.race([
            opts.transferGate,
            new Promise<void>((_resolve, reject) => signal?.addEventListener('abort', () => reject(new Error('rsync killed')))),
          ]);
        }
        if (opts.transferError) {
          this.inFlight.delete(d.id);
          throw new Error(opts.transferError);
        }
        return { filesSent: files.length, bytesSent: files.length * 100 };
      },
      close: () => {
        if (closed) throw new Error(`${d.id}: session closed twice`);
        closed = true;
        this.closed++;
        this.openSessions--;
        this.inFlight.delete(d.id);
        this.log.push(`${d.id}:close`);
      },
    };
  }

  async dispose(): Promise<void> {}

  verbsOf(id: string): string[] {
    return this.log.filter((l) => l.startsWith(`${id}:`)).map((l) => l.slice(id.length + 1));
  }
}

interface Harness {
  connector: FakeConnector;
  phases: Array<[string, Phase, string | undefined]>;
  journal: Array<Parameters<PublishJournalPort['record']>[0]>;
}

async function publish(
  ids: string[],
  options: Record<string, FakeOptions> = {},
  over: Partial<PublishRequest> = {},
  baseHashes: Map<string, string> | undefined = new Map(previousManifest.entries.map((e) => [e.path, e.sha256])),
): Promise<Harness & { report: Awaited<ReturnType<typeof publishCut>> }> {
  const manifest = over.manifest ?? cutManifest;
  const connector = new FakeConnector(options, manifest);
  const phases: Harness['phases'] = [];
  const journal: Harness['journal'] = [];
  let clock = 1_654_477_200_000;
  const report = await publishCut(
    {
      cut: CUT,
      cutDir: `/srv/cortes/${CUT}`,
      manifest,
      targets: ids.map(difusor),
      concurrency: 8,
      keepReleases: 5,
      dryRun: false,
      ...over,
    },
    {
      connector,
      state: {
        manifestHashes: async (cut, digest) =>
          cut === PREVIOUS && digest === previousManifest.digest
            ? baseHashes
            : cut === CUT && digest === manifest.digest
              ? new Map(manifest.entries.map((e) => [e.path, e.sha256]))
              : undefined,
      },
      journal: { record: async (entry) => void journal.push(entry) },
      observer: { phase: (id, phase, detail) => phases.push([id, phase, detail]) },
      now: () => (clock += 10),
    },
  );
  return { connector, phases, journal, report };
}

const outcome = (report: { outcomes: DifusorOutcome[] }, id: string): DifusorOutcome =>
  report.outcomes.find((o) => o.id === id) as DifusorOutcome;

describe('publishCut: the normal path', () => {
  it('stages, verifies, promotes, switches and prunes each difusor, in that order', async () => {
    const { connector, report } = await publish(['a']);
    expect(connector.verbsOf('a')).toEqual(['open', 'prepare', 'transfer', 'verify', 'promote', 'switch', 'prune', 'close']);
    expect(report.exitCode).toBe(0);
    expect(outcome(report, 'a')).toMatchObject({
      result: 'live',
      cut: CUT,
      plan: 'new-release',
      previous: PREVIOUS,
      filesLinked: 1,
      filesToSend: 2,
      filesSent: 2,
      bytesSent: 200,
    });
    expect(outcome(report, 'a').switchedAt).toBeDefined();
    expect(outcome(report, 'a').failedPhase).toBeUndefined();
  });

  it('hands prepare the exact manifest to stage by, then sends only what the staging lacks', async () => {
    const { connector } = await publish(['a']);
    expect(connector.stdin.get(`a:prepare:${CUT} --stage`)).toBe(`/MANIFEST.sha256\n${cutManifest.text}`);
    expect(connector.transfers.get(`a:${CUT}`)).toEqual(['actas/2_A.jpg', 'index.html']);
  });

  it('verifies the sent files plus the manifest itself on the difusor', async () => {
    const { connector } = await publish(['a']);
    const checks = connector.stdin.get(`a:verify:${CUT}`) as string;
    expect(checks).toBe(
      manifestText(cutManifest.entries.filter((e) => e.path !== 'actas/1_A.jpg')) + `${sha(cutManifest.text)}  MANIFEST.sha256\n`,
    );
  });

  it('sends again a file the staging holds with the wrong size, over the linked copy', async () => {
    const short = stagedAnswer(previousManifest, cutManifest).replace('f 7 actas/1_A.jpg', 'f 3 actas/1_A.jpg');
    const { connector, report } = await publish(['a'], { a: { verbs: { prepare: () => okOut(short) } } });
    expect(connector.transfers.get(`a:${CUT}`)).toEqual(['actas/1_A.jpg', 'actas/2_A.jpg', 'index.html']);
    expect(connector.verbsOf('a')).not.toContain('link');
    expect(report.exitCode).toBe(0);
  });

  it('sends everything over the staging when this host does not know the base\'s manifest', async () => {
    const unknown = stagedAnswer(previousManifest, cutManifest).replace(`manifest ${previousManifest.digest}`, `manifest ${sha('otro')}`);
    const { connector, report } = await publish(['a'], { a: { verbs: { prepare: () => okOut(unknown) } } });
    expect(connector.transfers.get(`a:${CUT}`)).toEqual(cutManifest.entries.map((e) => e.path));
    expect(outcome(report, 'a')).toMatchObject({ result: 'live', filesLinked: 0, filesToSend: 3 });
  });

  it('a staging holding what the cut does not fails at preparing and sends nothing', async () => {
    const odd = stagedAnswer(previousManifest, cutManifest) + 'f 5 datos/viejo.csv\no enlace\n';
    const { connector, report } = await publish(['a'], { a: { verbs: { prepare: () => okOut(odd) } } });
    expect(outcome(report, 'a')).toMatchObject({
      failedPhase: 'preparing',
      error: 'the staging prepare built holds what the cut does not: enlace: not a regular file; datos/viejo.csv: not in the manifest',
    });
    expect(connector.verbsOf('a')).toEqual(['open', 'prepare', 'discard', 'close']);
  });

  it('with a helper that does not stage, links from the live release first, dropping what changed or went away', async () => {
    const unstaged = `live ${PREVIOUS}\nfree 1000000\nbase ${PREVIOUS}\nmanifest ${previousManifest.digest}\n${inventory(previousManifest)}`;
    const { connector, report } = await publish(['a'], { a: { verbs: { prepare: () => okOut(unstaged) } } });
    expect(connector.verbsOf('a')).toEqual(['open', 'prepare', 'link', 'transfer', 'verify', 'promote', 'switch', 'prune', 'close']);
    const link = connector.stdin.get(`a:link:${CUT} ${PREVIOUS}`) as string;
    const [dropped] = link.split('/MANIFEST.sha256\n') as [string];
    expect(dropped.split('\n').filter(Boolean).sort()).toEqual(['MANIFEST.sha256', 'datos/viejo.csv', 'index.html']);
    expect(link.endsWith(`\n/MANIFEST.sha256\n${cutManifest.text}`)).toBe(true);
    expect(connector.transfers.get(`a:${CUT}`)).toEqual(['actas/2_A.jpg', 'index.html']);
    expect(report.exitCode).toBe(0);
  });

  it('opens rsync\'s connection ahead only where a transfer is likely: not where this host last saw the cut live, never in a dry run', async () => {
    const { connector } = await publish(['a', 'b'], {}, { likelyLive: new Set(['b']) });
    expect(connector.openedWith.get('a')).toEqual({ expectTransfer: true });
    expect(connector.openedWith.get('b')).toEqual({ expectTransfer: false });
    // Nor does its prepare carry the manifest to stage by; the guess was wrong here, so it links, then sends.
    expect(connector.stdin.get(`b:prepare:${CUT}`)).toBe('');
    expect(connector.verbsOf('b')).toEqual(['open', 'prepare', 'link', 'transfer', 'verify', 'promote', 'switch', 'prune', 'close']);
    const dry = await publish(['a'], {}, { dryRun: true });
    expect(dry.connector.openedWith.get('a')).toEqual({ expectTransfer: false });
  });

  it('prunes with keep_releases', async () => {
    const { connector } = await publish(['a'], {}, { keepReleases: 3 });
    expect(connector.stdin.has('a:prune:3')).toBe(true);
  });

  it('sends the signature too when the cut is signed', async () => {
    const { connector, report } = await publish(['a'], {
      a: { verbs: { verify: () => okOut(`check 0\n${inventory(cutManifest, ['f 88 MANIFEST.sha256.sig'])}`) } },
    }, { signature: 'c2lnbmF0dXJl' });
    expect(report.exitCode).toBe(0);
    expect(connector.stdin.get(`a:prepare:${CUT} --stage`)).toBe(`/MANIFEST.sha256\n${cutManifest.text}/MANIFEST.sha256.sig\nc2lnbmF0dXJl\n`);
  });

  it('tells the observer every phase of a difusor in order', async () => {
    const { phases } = await publish(['a']);
    expect(phases.filter(([id]) => id === 'a').map(([, p]) => p)).toEqual([
      'waiting',
      'connecting',
      'preparing',
      'staging',
      'verifying',
      'ready',
      'switching',
      'live',
    ]);
  });

  it('journals each action per difusor: stage, switch, prune, and a failure with its phase', async () => {
    const { journal } = await publish(['a', 'b', 'c'], {
      a: { verbs: { prune: () => okOut('pruned 20220605_2000\n') } },
      b: { openError: 'connect ECONNREFUSED 10.0.0.2:22' },
    });
    const of = (id: string): string[] => journal.filter((e) => e.difusor === id).map((e) => `${e.phase} ${e.result}`);
    expect(of('a')).toEqual(['stage ok', 'switch ok', 'prune ok']);
    expect(of('b')).toEqual(['connecting failed']);
    // Nothing pruned, nothing journaled.
    expect(of('c')).toEqual(['stage ok', 'switch ok']);
    expect(journal.find((e) => e.difusor === 'a' && e.phase === 'stage')).toMatchObject({
      cut: CUT,
      bytes: 200,
      detail: expect.objectContaining({ plan: 'new-release', base: PREVIOUS, filesSent: 2, filesLinked: 1, previous: PREVIOUS }),
    });
    expect(journal.find((e) => e.difusor === 'a' && e.phase === 'switch')?.detail).toEqual({
      from: PREVIOUS,
      switched: true,
      lateSeconds: 0,
      switchedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
    expect(journal.find((e) => e.phase === 'prune')?.detail).toEqual({ removed: ['20220605_2000'] });
    expect(journal.find((e) => e.difusor === 'b')).toMatchObject({ cut: CUT, error: 'connect ECONNREFUSED 10.0.0.2:22' });
  });

  it('closes every session it opened exactly once', async () => {
    const { connector } = await publish(['a', 'b', 'c', 'd'], {
      b: { verbs: { verify: () => okOut('check 1\nx index.html: FAILED\n') } },
      c: { verbs: { switch: () => okOut('live releases/20220605_2015\n') } },
    });
    expect(connector.opened).toBe(4);
    expect(connector.closed).toBe(4);
  });
});

describe('publishCut: two phases across difusores', () => {
  it('switches nobody before every difusor has promoted or failed, even when one is slow', async () => {
    const { connector, report } = await publish(['fast', 'slow', 'broken'], {
      slow: { delayMs: 15 },
      broken: { delayMs: 5, verbs: { verify: () => okOut('check 1\nx index.html: FAILED\n') } },
    });
    const firstSwitch = connector.log.findIndex((l) => l.endsWith(':switch'));
    const lastStageEnd = Math.max(
      connector.log.lastIndexOf('fast:promote'),
      connector.log.lastIndexOf('slow:promote'),
      connector.log.lastIndexOf('broken:verify'),
    );
    expect(firstSwitch).toBeGreaterThan(lastStageEnd);
    expect(connector.log.filter((l) => l.endsWith(':switch')).sort()).toEqual(['fast:switch', 'slow:switch']);
    expect(report.exitCode).toBe(3);
    expect(report.switchSpreadMs).toBeGreaterThanOrEqual(0);
  });

  it('a difusor that cannot connect fails at connecting; the others go live; exit 3', async () => {
    const { connector, report } = await publish(['a', 'b', 'c'], { b: { openError: 'connect ETIMEDOUT 10.0.0.2:22' } });
    expect(outcome(report, 'b')).toMatchObject({ result: 'failed', failedPhase: 'connecting', error: 'connect ETIMEDOUT 10.0.0.2:22' });
    expect(outcome(report, 'a').result).toBe('live');
    expect(outcome(report, 'c').result).toBe('live');
    expect(connector.verbsOf('b')).toEqual(['open']);
    expect(report.exitCode).toBe(3);
  });

  it('a difusor whose sha256sum check fails is named at verifying, never promoted or switched', async () => {
    const { connector, report } = await publish(['a', 'b'], {
      b: { verbs: { verify: () => okOut(`check 1\nx index.html: FAILED\nx sha256sum: WARNING: 1 computed checksum did NOT match\n${inventory(cutManifest)}`) } },
    });
    const b = outcome(report, 'b');
    expect(b).toMatchObject({ result: 'failed', failedPhase: 'verifying', previous: PREVIOUS });
    expect(b.error).toMatch(/^sha256sum found 2 bad file\(s\) in staging: index\.html: FAILED/);
    expect(connector.verbsOf('b')).not.toContain('promote');
    expect(connector.verbsOf('b')).not.toContain('switch');
    expect(outcome(report, 'a').result).toBe('live');
    expect(report.exitCode).toBe(3);
  });

  it('a staging that differs from the manifest fails at verifying, naming the difference', async () => {
    const { report } = await publish(['a'], {
      a: { verbs: { verify: () => okOut(`check 0\n${inventory(cutManifest, ['f 3 intruso.php'])}`) } },
    });
    expect(outcome(report, 'a')).toMatchObject({ failedPhase: 'verifying', error: 'staging differs from the manifest: intruso.php: not in the manifest' });
    expect(report.exitCode).toBe(1);
  });

  it('a failing transfer fails at staging with the rsync message', async () => {
    const { connector, report } = await publish(['a', 'b'], { a: { transferError: 'rsync exit 23 (some files could not be transferred)' } });
    expect(outcome(report, 'a')).toMatchObject({ failedPhase: 'staging', error: 'rsync exit 23 (some files could not be transferred)' });
    // The manifest was put alongside the transfer; nothing after the transfer ran.
    expect(connector.verbsOf('a')).not.toContain('verify');
    expect(connector.verbsOf('a')).not.toContain('promote');
    expect(report.exitCode).toBe(3);
  });

  it('a helper step that exits non-zero fails at its phase with the helper\'s words', async () => {
    const { report } = await publish(['a'], {
      a: { verbs: { prepare: () => ({ code: 2, stdout: '', stderr: 'difusion-helper: cannot link releases/20220605_2015 into staging\n' }) } },
    });
    expect(outcome(report, 'a')).toMatchObject({
      failedPhase: 'preparing',
      error: 'prepare failed (exit 2): difusion-helper: cannot link releases/20220605_2015 into staging',
    });
  });

  it('refuses to send more than the difusor has free, before linking anything', async () => {
    const { connector, report } = await publish(['a'], {
      a: { verbs: { prepare: () => okOut(`free 0\nbase ${PREVIOUS}\nmanifest ${previousManifest.digest}\n${inventory(previousManifest)}`) } },
    });
    expect(outcome(report, 'a')).toMatchObject({ failedPhase: 'preparing' });
    expect(outcome(report, 'a').error).toMatch(/^not enough free disk: 1 KB to send, 0 KB free under \/srv\/a$/);
    expect(connector.verbsOf('a')).toEqual(['open', 'prepare', 'close']);
  });

  it('names where the fix is when the helper a restricted difusor\'s admin installed refuses a step', async () => {
    const refused = 'rsync exit 12 (the connection was lost mid-transfer): difusion-helper: refused: rsync into .staging/x/';
    const restricted = { ...difusor('a'), access: 'restricted' as const };
    const { report } = await publish(['a'], { a: { transferError: refused } }, { targets: [restricted] });
    expect(outcome(report, 'a').error).toBe(
      `${refused} (the helper installed there may be older than this difusion: \`difusion preflight\` checks it; \`difusion onboard a\` prints the one to install)`,
    );
    // A shell account gets the helper inline, always the current one: no such hint.
    expect(outcome(await publish(['a'], { a: { transferError: refused } }).then((r) => r.report), 'a').error).toBe(refused);
  });

  it('every difusor failing is exit 1', async () => {
    const { report } = await publish(['a', 'b'], { a: { openError: 'host key mismatch' }, b: { transferError: 'rsync exit 12' } });
    expect(report.outcomes.map((o) => o.result)).toEqual(['failed', 'failed']);
    expect(report.exitCode).toBe(1);
    expect(report.switchSpreadMs).toBeUndefined();
  });

  it('a switch that does not confirm the new target fails at switching', async () => {
    const { report, journal } = await publish(['a', 'b'], { b: { verbs: { switch: () => okOut('live releases/20220605_2015\n') } } });
    expect(outcome(report, 'b')).toMatchObject({
      result: 'failed',
      failedPhase: 'switching',
      error: 'current points to live releases/20220605_2015 after the switch',
    });
    expect(journal.filter((e) => e.difusor === 'b').map((e) => `${e.phase} ${e.result}`)).toEqual(['stage ok', 'switch failed']);
    expect(outcome(report, 'a').result).toBe('live');
    expect(report.exitCode).toBe(3);
  });

  it('a switch the helper refuses fails at switching', async () => {
    const { report } = await publish(['a'], {
      a: { verbs: { switch: () => ({ code: 2, stdout: '', stderr: 'difusion-helper: current is not a symlink; refusing to replace it\n' }) } },
    });
    expect(outcome(report, 'a')).toMatchObject({ failedPhase: 'switching', error: expect.stringContaining('current is not a symlink') });
    expect(report.exitCode).toBe(1);
  });

  it('a prune that fails never undoes the publication', async () => {
    const { report } = await publish(['a', 'b'], {
      a: { verbs: { prune: () => ({ code: 2, stdout: '', stderr: 'no' }) } },
      b: { verbs: { prune: () => Promise.reject(new Error('channel closed')) } },
    });
    expect(report.outcomes.map((o) => o.result)).toEqual(['live', 'live']);
    expect(report.exitCode).toBe(0);
  });

  it('stages at most `concurrency` difusores at once, and uses that many', async () => {
    const ids = ['a', 'b', 'c', 'd', 'e'];
    const { connector, report } = await publish(ids, Object.fromEntries(ids.map((id) => [id, { delayMs: 3 }])), { concurrency: 2 });
    expect(report.exitCode).toBe(0);
    expect(connector.maxInFlight).toBe(2);
    // What is bounded is staging. A staged session stays open until the common switch, so up to every target's
    // session is open at once (connector.maxOpenSessions reaches 5 here): by design, noted in the report.
  });

  it('with concurrency 1 stages one difusor after the other', async () => {
    const { connector } = await publish(['a', 'b', 'c'], { a: { delayMs: 2 }, b: { delayMs: 2 }, c: { delayMs: 2 } }, { concurrency: 1 });
    expect(connector.maxInFlight).toBe(1);
    const opens = ['a', 'b', 'c'].map((id) => connector.log.indexOf(`${id}:open`));
    const promotes = ['a', 'b', 'c'].map((id) => connector.log.indexOf(`${id}:promote`));
    expect(opens[1]).toBeGreaterThan(promotes[0] as number);
    expect(opens[2]).toBeGreaterThan(promotes[1] as number);
  });
});

/** A clock that moves only when told, and timers fired by hand: the deadline without waiting for it. */
class ManualTime {
  t = 1_654_477_200_000;
  readonly timers: Array<{ at: number; ms: number; fn: () => void; cancelled: boolean }> = [];
  now = (): number => this.t;
  after = (ms: number, fn: () => void): (() => void) => {
    const timer = { at: this.t, ms, fn, cancelled: false };
    this.timers.push(timer);
    return () => {
      timer.cancelled = true;
    };
  };
  /** Moves the clock and fires every timer now due. */
  advance(ms: number): void {
    this.t += ms;
    for (const timer of this.timers) {
      if (!timer.cancelled && timer.at + timer.ms <= this.t) {
        timer.cancelled = true;
        timer.fn();
      }
    }
  }
}

function gate(): { promise: Promise<void>; open(): void; fail(error: Error): void } {
  let open!: () => void;
  let fail!: (error: Error) => void;
  const promise = new Promise<void>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  return { promise, open, fail };
}

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !condition(); i++) await new Promise((resolve) => setImmediate(resolve));
  if (!condition()) throw new Error('condition never met');
}

describe('publishCut: the switch deadline', () => {
  function start(ids: string[], options: Record<string, FakeOptions>, over: Partial<PublishRequest> = {}) {
    const connector = new FakeConnector(options);
    const time = new ManualTime();
    const journal: Harness['journal'] = [];
    const phases: Harness['phases'] = [];
    const running = publishCut(
      { cut: CUT, cutDir: `/srv/cortes/${CUT}`, manifest: cutManifest, targets: ids.map(difusor), concurrency: 8, keepReleases: 5, dryRun: false, switchDeadlineMs: 20_000, ...over },
      {
        connector,
        state: { manifestHashes: async (cut, digest) => (cut === PREVIOUS && digest === previousManifest.digest ? new Map(previousManifest.entries.map((e) => [e.path, e.sha256])) : undefined) },
        journal: { record: async (entry) => void journal.push(entry) },
        observer: { phase: (id, phase, detail) => phases.push([id, phase, detail]) },
        now: time.now,
        after: time.after,
      },
    );
    return { connector, time, journal, phases, running };
  }
  const switchEntry = (journal: Harness['journal'], id: string) => journal.find((e) => e.difusor === id && e.phase === 'switch');

  it('starts the deadline when the first difusor is ready, then switches the ready ones without the slow one', async () => {
    const slow = gate();
    const { connector, time, journal, running } = start(['a', 'b', 'slow'], { slow: { transferGate: slow.promise } });
    await until(() => connector.log.includes('a:promote') && connector.log.includes('b:promote'));
    expect(time.timers.map((t) => t.ms)).toEqual([20_000]);
    expect(connector.log.filter((l) => l.endsWith(':switch'))).toEqual([]);

    time.advance(20_000);
    await until(() => connector.log.includes('b:close') && connector.log.includes('a:close'));
    expect(connector.log.filter((l) => l.endsWith(':switch')).sort()).toEqual(['a:switch', 'b:switch']);
    expect(connector.verbsOf('slow')).toEqual(['open', 'prepare', 'transfer']);

    time.advance(7_500);
    slow.open();
    const report = await running;
    expect(connector.verbsOf('slow')).toEqual(['open', 'prepare', 'transfer', 'verify', 'promote', 'switch', 'prune', 'close']);
    expect(report.exitCode).toBe(0);
    expect(report.deadlinePassed).toBe(true);
    expect(report.outcomes.map((o) => [o.id, o.result, o.lateSeconds])).toEqual([
      ['a', 'live', 0],
      ['b', 'live', 0],
      ['slow', 'live', 7.5],
    ]);
    expect(switchEntry(journal, 'a')?.detail).toEqual({
      from: PREVIOUS,
      switched: true,
      lateSeconds: 0,
      switchedAt: new Date(time.t - 7_500).toISOString(),
    });
    expect(switchEntry(journal, 'slow')?.detail).toMatchObject({ lateSeconds: 7.5, switchedAt: new Date(time.t).toISOString() });
  });

  it('a late difusor that then fails keeps its previous cut; the others stay live; exit 3', async () => {
    const slow = gate();
    const { connector, time, running } = start(['a', 'slow'], { slow: { transferGate: slow.promise } });
    await until(() => connector.log.includes('a:promote'));
    time.advance(20_000);
    await until(() => connector.log.includes('a:close'));
    slow.fail(new Error('rsync exit 30 (timeout in data send/receive)'));
    const report = await running;
    expect(outcome(report, 'a')).toMatchObject({ result: 'live', lateSeconds: 0 });
    expect(outcome(report, 'slow')).toMatchObject({ result: 'failed', failedPhase: 'staging', previous: PREVIOUS });
    expect(connector.verbsOf('slow')).not.toContain('switch');
    expect(report.exitCode).toBe(3);
  });

  it('when everyone is ready before the deadline, all switch together, nobody is late and the timer is cancelled', async () => {
    const { time, running } = start(['a', 'b', 'c'], { c: { delayMs: 3 } }, { switchDeadlineMs: 5_000 });
    const report = await running;
    expect(time.timers).toEqual([expect.objectContaining({ ms: 5_000, cancelled: true })]);
    expect(report.deadlinePassed).toBe(false);
    expect(report.outcomes.map((o) => o.lateSeconds)).toEqual([0, 0, 0]);
    expect(report.switchSpreadMs).toBe(0);
  });

  it('difusores not yet started when the deadline passes (concurrency) each switch as soon as they are verified', async () => {
    const [gb, gc] = [gate(), gate()];
    const { connector, time, running } = start(['a', 'b', 'c'], { b: { transferGate: gb.promise }, c: { transferGate: gc.promise } }, {
      concurrency: 1,
      switchDeadlineMs: 0,
    });
    await until(() => time.timers.length === 1);
    time.advance(0);
    await until(() => connector.log.includes('a:close'));
    expect(connector.log).not.toContain('c:open');
    gb.open();
    await until(() => connector.log.includes('b:close'));
    expect(connector.verbsOf('b').slice(-4)).toEqual(['promote', 'switch', 'prune', 'close']);
    gc.open();
    const report = await running;
    expect(connector.verbsOf('c').slice(-4)).toEqual(['promote', 'switch', 'prune', 'close']);
    expect(report.outcomes.map((o) => o.result)).toEqual(['live', 'live', 'live']);
    expect(report.exitCode).toBe(0);
  });

  it('nobody ready: no deadline, no switch', async () => {
    const { time, running } = start(['a', 'b'], { a: { openError: 'refused' }, b: { transferError: 'rsync exit 12' } });
    const report = await running;
    expect(time.timers).toEqual([]);
    expect(report.groupSwitchAt).toBeUndefined();
    expect(report.exitCode).toBe(1);
  });
});

describe('publishCut: nothing or little to do', () => {
  const upToDate = `live ${CUT}\nfree 1000000\nbase ${CUT}\nmanifest ${cutManifest.digest}\n${inventory(cutManifest)}`;
  const hashes = new Map(cutManifest.entries.map((e) => [e.path, e.sha256]));

  async function publishOver(prepare: string, over: Partial<PublishRequest> = {}): ReturnType<typeof publish> {
    const connector = new FakeConnector({ a: { verbs: { prepare: () => okOut(prepare), inspect: () => okOut(prepare) } } });
    const journal: Harness['journal'] = [];
    const report = await publishCut(
      { cut: CUT, cutDir: `/srv/cortes/${CUT}`, manifest: cutManifest, targets: [difusor('a')], concurrency: 8, keepReleases: 5, dryRun: false, ...over },
      {
        connector,
        state: { manifestHashes: async (cut, digest) => (cut === CUT && digest === cutManifest.digest ? hashes : undefined) },
        journal: { record: async (e) => void journal.push(e) },
      },
    );
    return { connector, report, journal, phases: [] };
  }

  it('up to date: no link, no transfer, no switch; result up-to-date and exit 0', async () => {
    const { connector, report, journal } = await publishOver(upToDate);
    expect(connector.verbsOf('a')).toEqual(['open', 'prepare', 'close']);
    expect(outcome(report, 'a')).toMatchObject({ result: 'up-to-date', plan: 'up-to-date', filesToSend: 0 });
    expect(report.exitCode).toBe(0);
    expect(journal).toEqual([expect.objectContaining({ difusor: 'a', phase: 'check', result: 'skipped' })]);
  });

  it('switch only: the release is whole but not live, so only the switch runs', async () => {
    const { connector, report } = await publishOver(upToDate.replace(`live ${CUT}`, `live ${PREVIOUS}`));
    expect(connector.verbsOf('a')).toEqual(['open', 'prepare', 'switch', 'prune', 'close']);
    expect(outcome(report, 'a')).toMatchObject({ result: 'live', plan: 'switch-only', previous: PREVIOUS });
  });

  it('repair of the live cut: replaces the bad file and removes the intruder, without a switch', async () => {
    const damaged = upToDate.replace('f 11 index.html', 'f 3 index.html') + 'f 5 intruso.php\n';
    const { connector, report } = await publishOver(damaged);
    expect(connector.verbsOf('a')).toEqual(['open', 'prepare', 'link', 'transfer', 'verify', 'promote', 'prune', 'close']);
    expect(connector.transfers.get(`a:${CUT}`)).toEqual(['index.html']);
    expect(connector.stdin.get(`a:promote:${CUT}`)).toBe('M index.html\nM MANIFEST.sha256\nD intruso.php\n');
    expect(outcome(report, 'a')).toMatchObject({ result: 'live', plan: 'repair' });
    expect(outcome(report, 'a').switchedAt).toBeUndefined();
  });

  it('dry run: inspects instead of preparing and never links, sends, puts, promotes, switches or prunes', async () => {
    const { connector, report } = await publish(['a', 'b'], {}, { dryRun: true });
    for (const id of ['a', 'b']) expect(connector.verbsOf(id)).toEqual(['open', 'inspect', 'close']);
    expect(connector.transfers.size).toBe(0);
    expect(report.dryRun).toBe(true);
    expect(report.exitCode).toBe(0);
    expect(outcome(report, 'a')).toMatchObject({ result: 'planned', plan: 'new-release', filesToSend: 2, filesLinked: 1 });
  });

  it('dry run: a difusor that cannot be reached is reported failed, with its phase', async () => {
    const { connector, report } = await publish(['a', 'b'], { b: { openError: 'connect ECONNREFUSED 10.0.0.2:22' } }, { dryRun: true });
    expect(outcome(report, 'b')).toMatchObject({ result: 'failed', failedPhase: 'connecting', error: 'connect ECONNREFUSED 10.0.0.2:22' });
    expect(outcome(report, 'a').result).toBe('planned');
    expect(connector.verbsOf('a')).toEqual(['open', 'inspect', 'close']);
    // report.exitCode is 0 here (publish.ts forces 0 on a dry run): see the report.
  });

  it('dry run on an up-to-date difusor plans up-to-date', async () => {
    const { connector, report, journal } = await publishOver(upToDate, { dryRun: true });
    expect(connector.verbsOf('a')).toEqual(['open', 'inspect', 'close']);
    expect(outcome(report, 'a')).toMatchObject({ result: 'planned', plan: 'up-to-date' });
    expect(journal).toEqual([
      expect.objectContaining({ difusor: 'a', phase: 'plan', result: 'info', detail: expect.objectContaining({ plan: 'up-to-date', filesToSend: 0 }) }),
    ]);
  });
});

describe('exitCodeFor', () => {
  const o = (result: DifusorOutcome['result']): DifusorOutcome => ({
    id: result,
    name: result,
    result,
    cut: CUT,
    filesToSend: 0,
    bytesToSend: 0,
    filesLinked: 0,
    filesSent: 0,
    bytesSent: 0,
    seconds: 0,
  });

  it.each([
    [[], 0],
    [['live', 'up-to-date'], 0],
    [['planned'], 0],
    [['live', 'failed'], 3],
    [['up-to-date', 'failed', 'failed'], 3],
    [['failed'], 1],
    [['failed', 'failed'], 1],
  ] as Array<[DifusorOutcome['result'][], number]>)('%j → %i', (results, code) => {
    expect(exitCodeFor(results.map(o))).toBe(code);
  });
});

describe('publishCut: the transfer starts on a guess while prepare builds the staging', () => {
  const lastLive = new Map([['a', { cut: PREVIOUS, hashes: new Map(previousManifest.entries.map((e) => [e.path, e.sha256])) }]]);
  const early = { incoming: 'run1', lastLive };

  it('sends what changed since the cut last seen live, before prepare answers, and merges it at verify', async () => {
    const { connector, report, journal } = await publish(['a'], {}, early);
    expect(connector.verbsOf('a')).toEqual(['open', 'transfer', 'prepare', 'verify', 'promote', 'switch', 'prune', 'close']);
    expect(journal.find((e) => e.phase === 'stage')?.detail).toMatchObject({ sentOnGuess: 2, guessedFrom: PREVIOUS, filesSent: 2 });
    expect(connector.transferLog).toEqual([expect.objectContaining({ files: ['actas/2_A.jpg', 'index.html'], incoming: 'run1' })]);
    expect(connector.stdin.has(`a:prepare:${CUT} --stage --incoming run1`)).toBe(true);
    expect(connector.stdin.get(`a:verify:${CUT} --incoming run1`)).toBe(
      manifestText(cutManifest.entries.filter((e) => e.path !== 'actas/1_A.jpg')) + `${sha(cutManifest.text)}  MANIFEST.sha256\n`,
    );
    expect(outcome(report, 'a')).toMatchObject({ result: 'live', filesSent: 2, filesLinked: 1 });
  });

  it('a wrong guess sends the rest after it, into the same incoming directory, and verifies both', async () => {
    // The staging lacks the acta too (its base copy had the wrong size): the guess did not send it.
    const short = stagedAnswer(previousManifest, cutManifest).replace('f 7 actas/1_A.jpg', 'f 3 actas/1_A.jpg');
    const { connector, report } = await publish(['a'], { a: { verbs: { prepare: () => okOut(short) } } }, early);
    expect(connector.transferLog.map((t) => [t.files, t.incoming])).toEqual([
      [['actas/2_A.jpg', 'index.html'], 'run1'],
      [['actas/1_A.jpg'], 'run1'],
    ]);
    const checks = connector.stdin.get(`a:verify:${CUT} --incoming run1`) as string;
    expect(checks.split('\n').filter(Boolean).map((l) => l.slice(66)).sort()).toEqual(['MANIFEST.sha256', 'actas/1_A.jpg', 'actas/2_A.jpg', 'index.html']);
    expect(outcome(report, 'a')).toMatchObject({ result: 'live', filesSent: 3 });
  });

  it('stops the early transfer when the cut turns out to be there already, and only switches', async () => {
    const whole = `live ${PREVIOUS}\nfree 1000000\nbase ${CUT}\nmanifest ${cutManifest.digest}\n${inventory(cutManifest)}`;
    const gate = new Promise<void>(() => undefined);
    const { connector, report } = await publish(['a'], { a: { verbs: { prepare: () => okOut(whole) }, transferGate: gate } }, early);
    expect(connector.transferLog[0]?.signal?.aborted).toBe(true);
    expect(connector.verbsOf('a')).toEqual(['open', 'transfer', 'prepare', 'switch', 'prune', 'close']);
    expect(outcome(report, 'a')).toMatchObject({ result: 'live', plan: 'switch-only', filesSent: 0 });
  });

  it('an early transfer stopped because the cut is live already is cleared away by a prune', async () => {
    const live = `live ${CUT}\nfree 1000000\nbase ${CUT}\nmanifest ${cutManifest.digest}\n${inventory(cutManifest)}`;
    const gate = new Promise<void>(() => undefined);
    const { connector, report } = await publish(['a'], { a: { verbs: { prepare: () => okOut(live) }, transferGate: gate } }, early);
    expect(connector.transferLog[0]?.signal?.aborted).toBe(true);
    expect(connector.verbsOf('a')).toEqual(['open', 'transfer', 'prepare', 'prune', 'close']);
    expect(outcome(report, 'a')).toMatchObject({ result: 'up-to-date' });
  });

  it('checks the free disk against what the guess does not send: what it sent may already be there', async () => {
    const tight = (free: number) => stagedAnswer(previousManifest, cutManifest).replace('free 1000000', `free ${free}`);
    const fits = await publish(['a'], { a: { verbs: { prepare: () => okOut(tight(0)) } } }, early);
    expect(outcome(fits.report, 'a')).toMatchObject({ result: 'live' });
    // The acta the staging also lacks (a base copy of the wrong size) is not on the guess: it must fit.
    const short = tight(0).replace('f 7 actas/1_A.jpg', 'f 3 actas/1_A.jpg');
    const full = await publish(['a'], { a: { verbs: { prepare: () => okOut(short) } } }, early);
    expect(outcome(full.report, 'a')).toMatchObject({ result: 'failed', failedPhase: 'preparing' });
    expect(outcome(full.report, 'a').error).toMatch(/^not enough free disk: 1 KB to send, 0 KB free under /);
    expect(full.connector.transferLog[0]?.signal?.aborted).toBe(true);
  });

  it('stops the early transfer before closing when prepare fails', async () => {
    const gate = new Promise<void>(() => undefined);
    const { connector, report } = await publish(
      ['a'],
      { a: { verbs: { prepare: () => ({ code: 2, stdout: '', stderr: 'difusion-helper: .staging is not a directory\n' }) }, transferGate: gate } },
      early,
    );
    expect(connector.transferLog[0]?.signal?.aborted).toBe(true);
    expect(outcome(report, 'a')).toMatchObject({ failedPhase: 'preparing', error: 'prepare failed (exit 2): difusion-helper: .staging is not a directory' });
    expect(connector.verbsOf('a').slice(-1)).toEqual(['close']);
  });

  it('an early transfer that fails fails the difusor at staging, after prepare', async () => {
    const { connector, report } = await publish(['a'], { a: { transferError: 'rsync exit 12 (connection lost?)' } }, early);
    expect(outcome(report, 'a')).toMatchObject({ failedPhase: 'staging', error: 'rsync exit 12 (connection lost?)' });
    expect(connector.verbsOf('a')).toEqual(['open', 'transfer', 'prepare', 'discard', 'close']);
  });

  it('guesses nothing without an incoming name, for a difusor likely live, or in a dry run', async () => {
    expect((await publish(['a'], {}, { lastLive })).connector.verbsOf('a').slice(0, 3)).toEqual(['open', 'prepare', 'transfer']);
    const likely = (await publish(['a'], {}, { ...early, likelyLive: new Set(['a']) })).connector.transferLog;
    expect(likely).toHaveLength(1);
    expect(likely[0]?.incoming).toBeUndefined();
    expect((await publish(['a'], {}, { ...early, dryRun: true })).connector.transferLog).toEqual([]);
  });
});

describe('openAhead: sessions connect while the manifest is built', () => {
  const difusor = (id: string): Difusor => localDifusor(id);
  function counting(failing: string[] = []) {
    const opened: Array<{ id: string; opts?: OpenOptions }> = [];
    const closed: string[] = [];
    let disposed = false;
    const connector: DifusorConnector = {
      open: async (d, opts) => {
        opened.push({ id: d.id, opts });
        if (failing.includes(d.id)) throw new Error(`${d.id}: connection refused`);
        return {
          helper: async () => ({ code: 0, stdout: '', stderr: '' }),
          transfer: async () => ({ filesSent: 0, bytesSent: 0 }),
          close: () => void closed.push(d.id),
        };
      },
      dispose: async () => {
        disposed = true;
      },
    };
    return { connector, opened, closed, disposed: () => disposed };
  }

  it('hands each session opened ahead out once, and opens the others when asked', async () => {
    const fake = counting();
    const ahead = openAhead(fake.connector, [difusor('a')], () => ({ expectTransfer: false }));
    expect(fake.opened).toEqual([{ id: 'a', opts: { expectTransfer: false } }]);
    await ahead.open(difusor('a'), { expectTransfer: false });
    await ahead.open(difusor('b'), { expectTransfer: true });
    await ahead.open(difusor('a'), { expectTransfer: true });
    expect(fake.opened.map((o) => o.id)).toEqual(['a', 'b', 'a']);
  });

  it('a refused cut closes the sessions never used, then the connector; an unreachable difusor is told when asked for', async () => {
    const fake = counting(['down']);
    const ahead = openAhead(fake.connector, [difusor('a'), difusor('b'), difusor('down')], () => ({}));
    (await ahead.open(difusor('a'))).close();
    await ahead.dispose();
    expect(fake.closed.sort()).toEqual(['a', 'b']);
    expect(fake.disposed()).toBe(true);

    const again = openAhead(fake.connector, [difusor('down')], () => ({}));
    await expect(again.open(difusor('down'))).rejects.toThrow('down: connection refused');
    await again.dispose();
  });
});

describe('publishCut: a failed difusor leaves its staging as it found it', () => {
  const lastLive = new Map([['a', { cut: PREVIOUS, hashes: new Map(previousManifest.entries.map((e) => [e.path, e.sha256])) }]]);
  const early = { incoming: 'run1', lastLive };
  const discarded = (out = `discarded ${CUT}\ndiscarded ${CUT}.in-run1\n`): Script => () => okOut(out);

  it('a transfer that fails (a full disk) discards the cut\'s staging and incoming directory over the same session, before it closes', async () => {
    const { connector, report, journal } = await publish(
      ['a'],
      { a: { transferError: 'rsync: write failed: No space left on device (28)', verbs: { discard: discarded() } } },
      early,
    );
    expect(connector.verbsOf('a')).toEqual(['open', 'transfer', 'prepare', 'discard', 'close']);
    expect(connector.stdin.has(`a:discard:${CUT} run1`)).toBe(true);
    expect(outcome(report, 'a')).toMatchObject({ result: 'failed', failedPhase: 'staging' });
    expect(outcome(report, 'a').stagingLeft).toBeUndefined();
    expect(journal.find((e) => e.result === 'failed')?.detail).toEqual({ previous: PREVIOUS, discarded: [CUT, `${CUT}.in-run1`] });
  });

  it('a verify, promote or link the helper refuses discards the staging too (without an incoming token when nothing went early)', async () => {
    for (const verb of ['verify', 'promote']) {
      const refused: Script = () => ({ code: 2, stdout: '', stderr: `difusion-helper: refused: ${verb}\n` });
      const { connector, report } = await publish(['a'], { a: { verbs: { [verb]: refused } } });
      expect(outcome(report, 'a')).toMatchObject({ result: 'failed', failedPhase: 'verifying' });
      expect(connector.verbsOf('a').slice(-2)).toEqual(['discard', 'close']);
      expect(connector.stdin.has(`a:discard:${CUT}`)).toBe(true);
    }
  });

  it('a session that died with the failure: one new connection, the discard over it, then closed', async () => {
    let calls = 0;
    const { connector, report, journal } = await publish(
      ['a'],
      {
        a: {
          transferError: 'rsync exit 255: the connection was lost mid-transfer: closed',
          verbs: {
            discard: () => {
              calls++;
              if (calls === 1) throw new Error('connection to a closed');
              return okOut(`discarded ${CUT}\n`);
            },
          },
        },
      },
      early,
    );
    expect(connector.verbsOf('a')).toEqual(['open', 'transfer', 'prepare', 'discard', 'open', 'discard', 'close', 'close']);
    expect(connector.openedWith.get('a')).toEqual({ expectTransfer: false });
    expect(connector.openSessions).toBe(0);
    expect(journal.find((e) => e.result === 'failed')?.detail).toMatchObject({ discarded: [CUT], discardedOver: 'a new connection' });
    expect(outcome(report, 'a').stagingLeft).toBeUndefined();
  });

  it('a link that went silent is not waited on again: the staging is left for the next run, and said so', async () => {
    const { connector, report, journal } = await publish(
      ['a'],
      {
        a: {
          transferError: 'rsync exit 255: the link went silent: no answer to the SSH keepalives',
          verbs: {
            discard: () => {
              throw new Error('connection to a lost: Keepalive timeout');
            },
          },
        },
      },
      early,
    );
    expect(connector.verbsOf('a')).toEqual(['open', 'transfer', 'prepare', 'discard', 'close']);
    expect(outcome(report, 'a').stagingLeft).toMatch(/^the link to a is down \(connection to a lost: Keepalive timeout\)$/);
    expect(journal.find((e) => e.result === 'failed')?.detail).toMatchObject({ stagingLeft: outcome(report, 'a').stagingLeft });
  });

  it('a difusor that cannot be reached again: said, never thrown', async () => {
    let opened = 0;
    const connector = new FakeConnector({
      a: {
        transferError: 'rsync exit 12: closed',
        verbs: {
          discard: () => {
            throw new Error('connection to a closed');
          },
        },
      },
    });
    const open = connector.open.bind(connector);
    connector.open = async (d, o) => {
      if (++opened > 1) throw new Error('connect ECONNREFUSED');
      return open(d, o);
    };
    const report = await publishCut(
      { cut: CUT, cutDir: '/srv', manifest: cutManifest, targets: [difusor('a')], concurrency: 1, keepReleases: 5, dryRun: false, ...early },
      { connector, state: { manifestHashes: async () => new Map(previousManifest.entries.map((e) => [e.path, e.sha256])) } },
    );
    expect(outcome(report, 'a')).toMatchObject({ result: 'failed', failedPhase: 'staging', error: 'rsync exit 12: closed' });
    expect(outcome(report, 'a').stagingLeft).toBe('could not reach a again to free its staging: connect ECONNREFUSED');
  });

  it('nothing written, nothing discarded: a failed connection, a dry run, a refusal before staging', async () => {
    expect((await publish(['a'], { a: { openError: 'connect ECONNREFUSED' } })).connector.verbsOf('a')).toEqual(['open']);
    const dry = await publish(['a'], { a: { verbs: { inspect: () => ({ code: 2, stdout: '', stderr: 'x' }) } } }, { dryRun: true });
    expect(dry.connector.verbsOf('a')).toEqual(['open', 'inspect', 'close']);
    const full = await publish(['a'], {
      a: { verbs: { prepare: () => okOut(`free 0\nbase ${PREVIOUS}\nmanifest ${previousManifest.digest}\n${inventory(previousManifest)}`) } },
    });
    expect(full.connector.verbsOf('a')).toEqual(['open', 'prepare', 'close']);
  });

  it('a switch that fails after an early transfer was stopped discards its incoming directory; the release stays', async () => {
    const staged = `live ${PREVIOUS}\nfree 1000000\nbase ${CUT}\nmanifest ${cutManifest.digest}\n${inventory(cutManifest)}`;
    const { connector, report } = await publish(
      ['a'],
      { a: { verbs: { prepare: () => okOut(staged), switch: () => ({ code: 2, stdout: '', stderr: 'difusion-helper: cannot switch current\n' }), discard: discarded(`discarded ${CUT}.in-run1\n`) } } },
      early,
    );
    expect(outcome(report, 'a')).toMatchObject({ result: 'failed', failedPhase: 'switching' });
    expect(connector.verbsOf('a')).toEqual(['open', 'transfer', 'prepare', 'switch', 'discard', 'close']);
    expect(connector.stdin.has(`a:discard:${CUT} run1`)).toBe(true);
  });
});

describe('the difusor\'s lease and never backwards (the alternate site)', () => {
  const claim = { host: 'primario', run: '20220606T011502Z-ab12cd', seconds: 120 };
  const leaseFree: Script = (args) => okOut(`now 1000\n${args[0] === 'release' ? 'released' : 'taken 1000 1120'}\n`);
  const leaseHeld: Script = () => okOut('now 1000\nheld alterno 20220606T011455Z-cd34ef 990 1110\n');

  test('taken before prepare and released after the switch and prune; another host\'s live lease leaves that difusor untouched, named, exit 3', async () => {
    const { connector, report, journal } = await publish(['a', 'b'], { a: { verbs: { lease: leaseFree } }, b: { verbs: { lease: leaseHeld } } }, { lease: claim });
    expect(connector.verbsOf('a').filter((v) => v !== 'open')).toEqual(['lease', 'prepare', 'transfer', 'verify', 'promote', 'switch', 'prune', 'lease', 'close']);
    expect(connector.verbsOf('b').filter((v) => v !== 'open')).toEqual(['lease', 'close']);
    const b = report.outcomes.find((o) => o.id === 'b') as DifusorOutcome;
    expect({ result: b.result, leftAlone: b.leftAlone, error: b.error }).toEqual({
      result: 'failed',
      leftAlone: 'held',
      error: expect.stringMatching(/^held by alterno \(run 20220606T011455Z-cd34ef\) since 1970-01-01T00:16:30Z, 110 s left/),
    });
    expect(report.exitCode).toBe(3);
    expect(journal.find((e) => e.difusor === 'b' && e.result === 'failed')?.detail).toMatchObject({ leftAlone: 'held', host: 'primario' });
  });

  test('every difusor held is still exit 3, not a failure of the run', async () => {
    const { report } = await publish(['a', 'b'], { a: { verbs: { lease: leaseHeld } }, b: { verbs: { lease: leaseHeld } } }, { lease: claim });
    expect(report.exitCode).toBe(3);
    expect(exitCodeFor([{ result: 'failed', leftAlone: 'held' }, { result: 'failed' }])).toBe(1);
  });

  test('an expired lease taken over is journaled with whose it was', async () => {
    const takeover: Script = (args) => okOut(`now 2000\n${args[0] === 'release' ? 'released' : 'takeover alterno r9 900 1020\ntaken 2000 2120'}\n`);
    const { journal, report } = await publish(['a'], { a: { verbs: { lease: takeover } } }, { lease: claim });
    expect(report.exitCode).toBe(0);
    expect(journal.find((e) => e.phase === 'lease-takeover')).toMatchObject({
      difusor: 'a',
      result: 'info',
      detail: { host: 'primario', tookOverFrom: { host: 'alterno', run: 'r9' } },
    });
  });

  test('a difusor serving a newer cut is not switched back: named, its staging discarded, the lease released, exit 3', async () => {
    const newer = '20220605_2045';
    const { connector, report } = await publish(['a'], {
      a: { verbs: { lease: leaseFree, prepare: () => okOut(`live ${newer}\nfree 1000000\nbase ${newer}\nstaged ${CUT}\n${inventory(cutManifest)}`) } },
    }, { lease: claim });
    const a = report.outcomes[0] as DifusorOutcome;
    expect({ result: a.result, leftAlone: a.leftAlone, error: a.error }).toEqual({
      result: 'failed',
      leftAlone: 'newer-live',
      error: expect.stringMatching(new RegExp(`^a newer cut is live: ${newer} `)),
    });
    expect(connector.verbsOf('a')).not.toContain('switch');
    expect(connector.verbsOf('a').slice(-3)).toEqual(['discard', 'lease', 'close']);
    expect(report.exitCode).toBe(3);
  });

  test('only a run following a rollback\'s hold may move a difusor back', async () => {
    const older = '20220605_2015';
    const { report } = await publish(['a'], {
      a: { verbs: { lease: leaseFree, prepare: () => okOut(`live 20220605_2045\nfree 1000000\nbase ${older}\nstaged ${CUT}\n${inventory(cutManifest)}`) } },
    }, { lease: claim, allowBackwards: true });
    expect(report.outcomes[0]?.result).toBe('live');
  });

  test('cron\'s no-op takes no lease: a read-only inspect finds the cut live and whole', async () => {
    const live: Script = () => okOut(`live ${CUT}\nfree 1000000\nbase ${CUT}\nmanifest ${cutManifest.digest}\n${inventory(cutManifest)}`);
    const { connector, report } = await publish(['a'], { a: { verbs: { inspect: live, lease: () => okOut('') } } }, {
      lease: claim,
      likelyLive: new Set(['a']),
    }, new Map(cutManifest.entries.map((e) => [e.path, e.sha256])));
    expect(report.outcomes[0]?.result).toBe('up-to-date');
    expect(connector.verbsOf('a').filter((v) => v !== 'open')).toEqual(['inspect', 'close']);
  });

  describe('a rollback\'s hold on the difusor (either host\'s)', () => {
    const newest = '20220605_2045';
    const held = `hold ${PREVIOUS} alterno 20220606T020000Z-ef56ab 1654480800\n`;
    const prepared = (extra: string): Script => () => okOut(`live ${PREVIOUS}\n${extra}free 1000000\nbase ${PREVIOUS}\nstaged ${CUT}\n${inventory(cutManifest)}`);

    test('publish --latest leaves a difusor held on an older cut alone: named, staging discarded, lease released, exit 3', async () => {
      const { connector, report, journal } = await publish(['a'], { a: { verbs: { lease: leaseFree, prepare: prepared(held) } } }, { lease: claim, respectHolds: true });
      const a = report.outcomes[0] as DifusorOutcome;
      expect({ result: a.result, leftAlone: a.leftAlone, error: a.error }).toEqual({
        result: 'failed',
        leftAlone: 'rollback-hold',
        error: `held on ${PREVIOUS} by a rollback of alterno since 2022-06-06T02:00:00Z: publish ${CUT} by name to lift it`,
      });
      expect(connector.verbsOf('a')).not.toContain('switch');
      expect(connector.verbsOf('a').slice(-3)).toEqual(['discard', 'lease', 'close']);
      expect(report.exitCode).toBe(3);
      expect(journal.find((e) => e.result === 'failed')?.detail).toMatchObject({ leftAlone: 'rollback-hold' });
    });

    test('a hold on the cut itself, or on a newer one, or a lifted trace does not stop --latest', async () => {
      for (const extra of [`hold ${CUT} alterno r1 1\n`, `hold ${newest} alterno r1 1\n`, `lifted ${PREVIOUS} alterno r1 1\n`]) {
        const { report } = await publish(['a'], { a: { verbs: { lease: leaseFree, prepare: prepared(extra) } } }, { lease: claim, respectHolds: true });
        expect({ extra, result: report.outcomes[0]?.result }).toEqual({ extra, result: 'live' });
      }
    });

    test('a publish by name lifts it under the lease, before staging, and journals it', async () => {
      const { connector, report, journal } = await publish(['a'], { a: { verbs: { lease: leaseFree, prepare: prepared(held), hold: () => okOut(`now 1\nlifted ${PREVIOUS} primario r 1\n`) } } }, { lease: claim, liftHolds: true });
      expect(report.outcomes[0]?.result).toBe('live');
      const verbs = connector.verbsOf('a').filter((v) => v !== 'open');
      expect(verbs.slice(0, 4)).toEqual(['lease', 'prepare', 'hold', 'transfer']);
      expect(journal.find((e) => e.phase === 'rollback-hold')).toMatchObject({ difusor: 'a', result: 'info', detail: { lifted: PREVIOUS, heldBy: 'alterno', host: 'primario' } });
    });

    test('this host\'s cron following its own hold moves back no difusor whose hold a publish by name lifted', async () => {
      const { report } = await publish(['a'], {
        a: { verbs: { lease: leaseFree, prepare: () => okOut(`live ${newest}\nlifted ${CUT} alterno r2 1654480800\nfree 1000000\nbase ${newest}\nstaged ${CUT}\n${inventory(cutManifest)}`) } },
      }, { lease: claim, allowBackwards: true });
      expect(report.outcomes[0]).toMatchObject({ result: 'failed', leftAlone: 'newer-live', error: expect.stringContaining(`the rollback hold on ${CUT} was lifted here by a publish by name of alterno at 2022-06-06T02:00:00Z`) });
    });

    describe('a difusor the rollback could not reach, moved back by this host\'s cron following its hold', () => {
      const servingNewest: Script = () => okOut(`live ${newest}\nfree 1000000\nbase ${newest}\nstaged ${CUT}\n${inventory(cutManifest)}`);
      const holdSet: Script = (args) => okOut(`now 1654480800\nhold ${args[1]} ${args[2]} ${args[3]} 1654480800\n`);

      test('gets the hold there too: set under the lease once the release is there, before the switch, and journaled', async () => {
        const { connector, report, journal } = await publish(['a'], { a: { verbs: { lease: leaseFree, prepare: servingNewest, hold: holdSet } } }, { lease: claim, allowBackwards: true, respectHolds: true });
        expect(report.outcomes[0]).toMatchObject({ result: 'live', previous: newest });
        expect(report.outcomes[0]?.error).toBeUndefined();
        expect(report.exitCode).toBe(0);
        const verbs = connector.verbsOf('a').filter((v) => v !== 'open');
        expect(verbs.slice(0, 2)).toEqual(['lease', 'prepare']);
        // The helper holds a difusor only on a release it has: after the promote, before the switch.
        expect(verbs).toContain('promote');
        expect(verbs.indexOf('hold')).toBeGreaterThan(verbs.indexOf('promote'));
        expect(verbs.indexOf('hold')).toBeLessThan(verbs.indexOf('switch'));
        expect([...connector.stdin.keys()]).toContain(`a:hold:set ${CUT} primario ${claim.run}`);
        expect(journal.find((e) => e.phase === 'rollback-hold')).toMatchObject({ difusor: 'a', cut: CUT, result: 'info', detail: { held: CUT, from: newest, host: 'primario' } });
      });

      test('an older helper that keeps no hold: still moved back, the outcome says the hold is not recorded there, exit 3', async () => {
        const { report, journal } = await publish(['a', 'b'], { a: { verbs: { lease: leaseFree, prepare: servingNewest } }, b: { verbs: { lease: leaseFree } } }, { lease: claim, allowBackwards: true, respectHolds: true });
        const a = outcome(report, 'a');
        expect(a).toMatchObject({ result: 'live', holdNotRecorded: expect.stringContaining('refused: unknown verb hold') });
        expect(a.error).toMatch(/^live, but the rollback's hold is not recorded on the difusor \(hold failed \(exit 2\): .*\): the other host's publish --latest may put the newer cut back there; stop its cron until a cut is published by name$/);
        expect(outcome(report, 'b')).toMatchObject({ result: 'live' });
        expect(outcome(report, 'b').holdNotRecorded).toBeUndefined();
        expect(report.exitCode).toBe(3);
        expect(journal.find((e) => e.phase === 'rollback-hold')).toMatchObject({ difusor: 'a', result: 'failed', error: expect.stringContaining('unknown verb hold') });
      });

      test('no hold where nothing moves back: a difusor on an older cut, one already held on the cut, a rehearsal, a run not following a hold', async () => {
        const cases: Array<[string, Record<string, Script>, Partial<PublishRequest>]> = [
          ['forward', { lease: leaseFree }, { lease: claim, allowBackwards: true }],
          ['already held', { lease: leaseFree, prepare: () => okOut(`live ${newest}\nhold ${CUT} primario r0 1\nfree 1000000\nbase ${newest}\nstaged ${CUT}\n${inventory(cutManifest)}`) }, { lease: claim, allowBackwards: true }],
          ['dry run', { lease: leaseFree, prepare: servingNewest, inspect: servingNewest }, { lease: claim, allowBackwards: true, dryRun: true }],
          ['not following', { lease: leaseFree, prepare: servingNewest }, { lease: claim }],
        ];
        for (const [name, verbs, over] of cases) {
          const { connector } = await publish(['a'], { a: { verbs: { ...verbs, hold: holdSet } } }, over);
          expect({ name, verbs: connector.verbsOf('a') }).toEqual({ name, verbs: expect.not.arrayContaining(['hold']) });
        }
      });
    });
  });
});
