import { Flags } from '@oclif/core';
import { join } from 'node:path';
import { JOURNAL_FILE, readJournal, type JournalEntry } from '../core/records/journal.js';
import { displayPath } from '../core/registry/registry.js';
import { DifusionCommand } from '../ui/command.js';
import { formatLocal, parseTimeArgument } from '../core/registry/window.js';
import { registryFlag } from '../ui/flags.js';
import { formatBytes, renderTable } from '../ui/render.js';

export interface JournalResult {
  journal: string;
  timezone: string;
  entries: JournalEntry[];
}

export default class Journal extends DifusionCommand {
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
    const registry = await this.requireRegistry(flags.registry);
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
