import { join } from 'node:path';
import { JOURNAL_FILE, verifyJournal, type JournalVerification } from '../../core/records/journal.js';
import { displayPath } from '../../core/registry/registry.js';
import { registryFlag } from '../../ui/flags.js';
import { DifusionCommand } from '../../ui/command.js';

export type JournalVerifyResult = JournalVerification & { journal: string };

export default class JournalVerify extends DifusionCommand {
  static override summary = "Check the bitácora's hash chain: no entry edited, reordered or removed.";
  static override description =
    'Each journal line records the SHA-256 of the line before it, and journal.head records the newest entry. ' +
    'Verification walks the chain and names the first line that was edited, moved or removed, or a last line ' +
    'torn by an interrupted write (the next run that journals moves such a line aside and records it).\n\n' +
    'Exit codes: 0 intact, 2 invalid registry, 6 the journal was altered or damaged.';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --registry /etc/difusion/difusores.yaml --json',
  ];
  static override enableJsonFlag = true;
  static override flags = { registry: registryFlag };

  async run(): Promise<JournalVerifyResult> {
    const { flags } = await this.parse(JournalVerify);
    const registry = await this.requireRegistry(flags.registry);
    const stateDir = registry.publication.state_dir;
    const journal = join(stateDir, JOURNAL_FILE);
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
}
