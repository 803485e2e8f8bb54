import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { JOURNAL_FILE, JOURNAL_HEAD_FILE, headFileBeside, journalHost, readJournal, verifyJournal, type JournalVerification } from '../../core/records/journal.js';
import { MergedJournalError, headCaveat, thisHostsOf, verifyCopy, type VerifiedCopy } from '../../core/records/merged-journal.js';
import { displayPath } from '../../core/registry/registry.js';
import { journalFlag, registryFlag } from '../../ui/flags.js';
import { DifusionCommand } from '../../ui/command.js';

export type JournalVerifyResult = JournalVerification & { journal: string };

/** One journal of a verification with --journal: whose it is and which head was checked with it. */
export type JournalFileVerifyResult = JournalVerifyResult & {
  own: boolean;
  head: string | null;
  /** The seq up to which this host had verified the copy before (the copy was found to extend it). */
  seenBefore?: number;
};

export interface JournalsVerifyResult {
  ok: boolean;
  journals: JournalFileVerifyResult[];
}

export default class JournalVerify extends DifusionCommand {
  static override summary = "Check the bitácora's hash chain: no entry edited, reordered or removed.";
  static override description =
    'Each journal line records the SHA-256 of the line before it, and journal.head records the newest entry. ' +
    'Verification walks the chain and names the first line that was edited, moved or removed, or a last line ' +
    'torn by an interrupted write (the next run that journals moves such a line aside and records it).\n\n' +
    "With --journal FILE (repeatable) the other publication host's journal, copied here, is verified too, with " +
    'this host\'s own: the chain from the file alone, and its head when one is beside it (FILE.head, or ' +
    'journal.head when FILE is a journal.jsonl). Without the head a removal of its last lines cannot be detected. ' +
    'A copy must extend what this host verified of it before (kept in state_dir/journal-copies/): one cut or ' +
    'rewritten below that is refused, and so is a copy with an entry naming this host, or naming two hosts.\n\n' +
    'Exit codes: 0 intact, 2 invalid registry or a --journal file missing, 6 a journal was altered or damaged.';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --registry /etc/difusion/difusores.yaml --json',
    '<%= config.bin %> <%= command.id %> --journal /var/lib/difusion/alterno/journal.jsonl',
  ];
  static override enableJsonFlag = true;
  static override flags = { registry: registryFlag, journal: journalFlag };

  async run(): Promise<JournalVerifyResult | JournalsVerifyResult> {
    const { flags } = await this.parse(JournalVerify);
    const registry = await this.requireRegistry(flags.registry);
    const stateDir = registry.publication.state_dir;
    const journal = join(stateDir, JOURNAL_FILE);
    if (flags.journal && flags.journal.length > 0) return this.verifyWithOthers(stateDir, flags.journal);
    const verification = await verifyJournal(stateDir);
    const result: JournalVerifyResult = { ...verification, journal };
    if (verification.ok) {
      this.log(`${displayPath(journal)}: intact, ${verification.entries} entries, hash chain verified.`);
      return result;
    }
    if (this.jsonEnabled()) {
      this.logJson(result);
    } else {
      this.log(`${displayPath(journal)}:${verification.line}: ${verification.problem}`);
      this.log('The journal was altered or damaged after it was written; keep a copy of it as it is now.');
    }
    return this.exit(6);
  }

  /** This host's journal and each other host's copy, every one named, so one command checks the night. */
  private async verifyWithOthers(stateDir: string, files: string[]): Promise<JournalsVerifyResult> {
    for (const file of files) {
      const info = await stat(file).catch(() => undefined);
      if (!info?.isFile()) {
        this.error(`--journal ${file}: no such journal file`, { exit: 2, suggestions: ["copy the other host's state_dir/journal.jsonl (and journal.head) here first"] });
      }
    }
    const own = join(stateDir, JOURNAL_FILE);
    const ownVerification = await verifyJournal(stateDir);
    const journals: JournalFileVerifyResult[] = [{ ...ownVerification, journal: own, own: true, head: join(stateDir, JOURNAL_HEAD_FILE) }];
    // Names the copies may not speak for; from an altered own journal only this host's own name.
    const thisHosts = thisHostsOf(journalHost(), ownVerification.ok ? await readJournal(stateDir) : []);
    const copies: VerifiedCopy[] = [];
    for (const file of files) {
      try {
        const copy = await verifyCopy(stateDir, file, thisHosts);
        copies.push(copy);
        const { headFile, seenBefore } = copy.source;
        journals.push({ ok: true, entries: copy.entries.length, journal: file, own: false, head: headFile ?? null, ...(seenBefore ? { seenBefore } : {}) });
      } catch (error) {
        if (!(error instanceof MergedJournalError)) throw error;
        if (error.line === undefined) this.error(error.message, { exit: error.exitCode });
        journals.push({ ok: false, line: error.line, problem: error.problem ?? error.message, journal: file, own: false, head: (await headFileBeside(file)) ?? null });
      }
    }
    // What was verified of each copy is kept only when the whole night verified: the next read must extend it.
    if (journals.every((j) => j.ok)) {
      try {
        for (const copy of copies) await copy.remember();
      } catch (error) {
        if (error instanceof MergedJournalError) this.error(error.message, { exit: error.exitCode });
        throw error;
      }
    }
    const result: JournalsVerifyResult = { ok: journals.every((j) => j.ok), journals };
    if (this.jsonEnabled()) {
      if (!result.ok) {
        this.logJson(result);
        return this.exit(6);
      }
      return result;
    }
    for (const j of journals) {
      const name = `${displayPath(j.journal)}${j.own ? " (this host's journal)" : ''}`;
      if (j.ok) {
        const headSaid = j.own
          ? ''
          : j.head
            ? `; its head ${displayPath(j.head)} checked`
            : `; ${headCaveat({ head: 'none', seenBefore: j.seenBefore })}`;
        this.log(`${name}: intact, ${j.entries} entries, hash chain verified${headSaid}.`);
      } else {
        this.log(`${name}:${j.line}: ${j.problem}`);
      }
    }
    if (!result.ok) {
      this.log('A journal was altered or damaged after it was written; keep a copy of it as it is now.');
      return this.exit(6);
    }
    return result;
  }
}
