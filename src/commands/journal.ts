import { Command, Errors, Flags } from '@oclif/core';
import { join } from 'node:path';
import { JOURNAL_FILE, readJournal, type JournalEntry } from '../core/journal.js';
import { displayPath, formatProblem, loadRegistry } from '../core/registry.js';
import type { Registry } from '../core/types.js';
import { formatLocal, parseTimeArgument } from '../core/window.js';
import { registryFlag } from '../ui/flags.js';
import { formatBytes, renderTable } from '../ui/render.js';

export interface JournalResult {
  journal: string;
  timezone: string;
  entries: JournalEntry[];
}

/** What both journal commands share: the registry, whose state_dir holds the journal, and exit codes kept under --json. */
export abstract class JournalBaseCommand extends Command {
  /** Loads the registry or ends the command with every problem listed (or as JSON) and exit 2. */
  protected async loadRegistryOrExit(file: string): Promise<Registry> {
    const result = await loadRegistry(file);
    if (result.ok) return result.registry;
    if (this.jsonEnabled()) {
      this.logJson({ error: 'invalid registry', file, problems: result.problems });
    } else {
      for (const problem of result.problems) this.logToStderr(formatProblem(problem));
      this.logToStderr(`${displayPath(file)} is invalid (${result.problems.length} problem(s)); run \`difusion validate\``);
    }
    return this.exit(2);
  }

  // The output is already written and the exit code chosen; oclif's JSON mode would otherwise turn every exit into 1.
  protected override async catch(error: Errors.CLIError): Promise<unknown> {
    if (error instanceof Errors.ExitError) throw error;
    const exit = error.oclif?.exit;
    if (this.jsonEnabled() && exit !== undefined) {
      this.logJson({ error: { message: error.message, exit } });
      throw new Errors.ExitError(exit);
    }
    return super.catch(error);
  }
}

export default class Journal extends JournalBaseCommand {
  static override summary = 'Show the bitácora: every publication, cutoff, failure and takeover, in order.';
  static override description =
    'Prints the append-only journal kept in publication.state_dir (journal.jsonl), one row per entry, with ' +
    'times in the publication timezone. Filter by --since, --difusor and --cut; --json prints the entries as ' +
    'written. Entries made under DIFUSION_NOW say so. Run `difusion journal verify` to check the hash chain.';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    "<%= config.bin %> <%= command.id %> --since '2022-06-05 20:00' --difusor ujed",
    '<%= config.bin %> <%= command.id %> --cut 20220605_2015_PREP_DGO --json',
    '<%= config.bin %> <%= command.id %> --since 2022-06-06T01:00:00Z --registry /etc/difusion/difusores.yaml',
  ];
  static override enableJsonFlag = true;
  static override flags = {
    registry: registryFlag,
    since: Flags.string({
      description: 'only entries at or after this time: ISO 8601 with offset, or a wall time/date in the publication timezone',
      helpValue: 'TIME',
    }),
    difusor: Flags.string({ description: 'only entries about this difusor id', helpValue: 'ID' }),
    cut: Flags.string({ description: 'only entries about this cut id', helpValue: 'CUT' }),
  };

  async run(): Promise<JournalResult> {
    const { flags } = await this.parse(Journal);
    const registry = await this.loadRegistryOrExit(flags.registry);
    const timezone = registry.publication.timezone;
    let since: Date | undefined;
    if (flags.since !== undefined) {
      since = parseTimeArgument(flags.since, timezone);
      if (!since) {
        this.error(`--since "${flags.since}" is not a time`, {
          exit: 2,
          suggestions: ["'2022-06-05 20:00' (in the publication timezone)", '2022-06-05T20:00:00-05:00', '2022-06-05'],
        });
      }
    }
    const stateDir = registry.publication.state_dir;
    const entries = await readJournal(stateDir, { since, difusor: flags.difusor, cut: flags.cut });
    if (entries.length === 0) {
      const filtered = since !== undefined || flags.difusor !== undefined || flags.cut !== undefined;
      this.log(filtered ? 'No journal entries match.' : `The journal in ${displayPath(stateDir)} is empty.`);
    } else {
      this.log(renderJournal(entries, timezone));
    }
    return { journal: join(stateDir, JOURNAL_FILE), timezone, entries };
  }
}

export function renderJournal(entries: JournalEntry[], timezone: string): string {
  const rows = entries.map((entry) => [
    String(entry.seq),
    formatLocal(new Date(entry.at), timezone),
    entry.operator,
    entry.command,
    entry.difusor ?? '',
    entry.cut ?? '',
    entry.phase,
    entry.result,
    notes(entry),
  ]);
  return renderTable(['SEQ', 'TIME', 'OPERATOR', 'COMMAND', 'DIFUSOR', 'CUT', 'PHASE', 'RESULT', 'NOTES'], rows);
}

function notes(entry: JournalEntry): string {
  const parts: string[] = [];
  if (entry.bytes !== undefined) parts.push(formatBytes(entry.bytes));
  if (entry.seconds !== undefined) parts.push(`${entry.seconds} s`);
  if (entry.error !== undefined) parts.push(entry.error);
  for (const [key, value] of Object.entries(entry.detail ?? {})) parts.push(`${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
  if (entry.clock !== undefined) parts.push(`[${entry.clock}]`);
  return parts.join('; ').replace(/[\r\n\t]+/g, ' ');
}
