import { format } from 'node:util';
import { Command, Errors, ux } from '@oclif/core';
import { displayPath, formatProblem, loadRegistry } from '../core/registry/registry.js';
import type { Difusor, Registry } from '../core/registry/types.js';
import { RunRefusal, selectTargets } from '../core/publish/publish-run.js';
import { CutRefusedError } from '../core/publish/cut.js';
import { RegistryEditError } from '../core/registry/registry-edit.js';
import { RosterError } from '../core/enforcement/roster.js';
import type { Clock, ClockFactory } from '../core/clock-port.js';
import { MergedJournalError, readMergedJournal, type MergedJournal } from '../core/records/merged-journal.js';
import { terminalJson, terminalText } from '../core/shared/printable.js';

const CLEAR_AND_HOME = '\x1b[2J\x1b[H';

/** An error as the operator reads it: its message, suggestions and stack with every control escaped (in place). */
function terminalSafeError<T>(error: T): T {
  if (!(error instanceof Error)) return error;
  error.message = terminalText(error.message);
  const withSuggestions = error as Error & { suggestions?: unknown };
  if (Array.isArray(withSuggestions.suggestions)) withSuggestions.suggestions = withSuggestions.suggestions.map((s) => (typeof s === 'string' ? terminalText(s) : s));
  // V8 kept the raw message in the stack it captured; oclif prints the stack of an error that is not its own.
  const stack = error.stack;
  if (typeof stack === 'string') Object.defineProperty(error, 'stack', { value: terminalText(stack), configurable: true, writable: true });
  return error;
}

/**
 * What every difusion command shares: the registry, refusals turned into exit codes, and exit codes kept under --json.
 * Everything a command prints passes through here (log, logToStderr, say, warn, error, logJson, and the errors it ends
 * with), its controls escaped (terminalText): a difusor's words reach the operator's terminal from many paths (an
 * error, a journal entry, a probe's detail), and no new path can put an escape sequence on it.
 */
export abstract class DifusionCommand extends Command {
  override log(message = '', ...args: unknown[]): void {
    super.log(terminalText(format(message, ...args)));
  }

  /** A screen redrawn in place (probe --watch): cleared, the cursor home, then the text, its controls escaped. */
  protected redrawScreen(text: string): void {
    if (this.jsonEnabled()) return;
    ux.stdout(CLEAR_AND_HOME + terminalText(text));
  }

  override logToStderr(message = '', ...args: unknown[]): void {
    super.logToStderr(terminalText(format(message, ...args)));
  }

  override warn(input: Error | string): Error | string {
    return super.warn(typeof input === 'string' ? terminalText(input) : terminalSafeError(input));
  }

  override error(input: Error | string, options: { code?: string; exit: false } & Errors.PrettyPrintableError): void;
  override error(input: Error | string, options?: { code?: string; exit?: number } & Errors.PrettyPrintableError): never;
  override error(input: Error | string, options: { code?: string; exit?: false | number } & Errors.PrettyPrintableError = {}): void {
    const safe = typeof input === 'string' ? terminalText(input) : terminalSafeError(input);
    const suggestions = options.suggestions?.map(terminalText);
    // The overloads above are oclif's; one call satisfies both.
    return super.error(safe, { ...options, ...(suggestions ? { suggestions } : {}) } as { exit?: number });
  }

  protected override logJson(json: unknown): void {
    ux.stdout(terminalJson(ux.colorizeJson(json, { pretty: true, theme: this.config.theme?.json })));
  }

  /** Loads the registry or ends the command with every problem listed (or as JSON) and exit 2. */
  protected async requireRegistry(file: string): Promise<Registry> {
    const result = await loadRegistry(file);
    if (result.ok) return result.registry;
    if (this.jsonEnabled()) {
      this.logJson({ error: 'invalid registry', file, problems: result.problems });
      return this.exit(2);
    }
    for (const problem of result.problems) this.logToStderr(formatProblem(problem));
    this.error(`${displayPath(file)} is invalid (${result.problems.length} problem(s)); run \`difusion validate\``, { exit: 2 });
  }

  /** The run's clock (DIFUSION_NOW honoured, read in the publication timezone); a set clock is said on stderr. */
  protected clockFor(registry: Registry, makeClock: ClockFactory): Clock {
    let clock: Clock;
    try {
      clock = makeClock(process.env, { timezone: registry.publication.timezone });
    } catch (error) {
      this.error((error as Error).message, { exit: 2 });
    }
    if (clock.fromEnv && !this.jsonEnabled()) this.logToStderr(`note: the clock is set by ${clock.setting}`);
    return clock;
  }

  /** A line for the operator: stdout, or stderr when stdout carries the JSON document. */
  protected say(line: string): void {
    // logToStderr is silent under --json; the operator must still see the plan they confirm.
    if (this.jsonEnabled()) ux.stderr(terminalText(line));
    else this.log(line);
  }

  /** A refusal of the core (bad usage, a bad cut, the window, the lock) ends the command with its own exit code. */
  protected refuse(error: unknown): never {
    if (error instanceof RunRefusal) this.error(error.message, { exit: error.exitCode, suggestions: error.suggestions });
    if (error instanceof CutRefusedError || error instanceof RegistryEditError || error instanceof RosterError) this.error(error.message, { exit: 2 });
    throw error;
  }

  /** The difusores --only names (every one by default), suspended ones included: for commands that look, not publish. */
  protected lookAt(registry: Registry, only: string[] | undefined): Difusor[] {
    try {
      const chosen = selectTargets(registry, only ?? []);
      return registry.difusores.filter((d) => chosen.targets.includes(d) || chosen.skipped.some((s) => s.id === d.id));
    } catch (error) {
      this.refuse(error);
    }
  }

  /** This host's journal and the other host's copies (--journal), verified and merged; undefined without them. */
  protected async mergedJournal(stateDir: string, others: string[]): Promise<MergedJournal | undefined> {
    if (others.length === 0) return undefined;
    try {
      return await readMergedJournal(stateDir, others);
    } catch (error) {
      if (error instanceof MergedJournalError) this.error(error.message, { exit: error.exitCode });
      throw error;
    }
  }

  /** Ends with the run's exit code; under --json the document is printed first and the code still reaches cron. */
  protected finish(exitCode: number): void {
    if (exitCode === 0) return;
    if (this.jsonEnabled()) process.exitCode = exitCode;
    else this.exit(exitCode);
  }

  // The output is already written and the exit code chosen; oclif's JSON mode would otherwise turn every exit into 1.
  protected override async catch(error: Errors.CLIError): Promise<unknown> {
    if (error instanceof Errors.ExitError) throw error;
    terminalSafeError(error);
    const exit = error.oclif?.exit;
    if (this.jsonEnabled() && exit !== undefined) {
      this.logJson({ error: { message: error.message, exit } });
      throw new Errors.ExitError(exit);
    }
    return super.catch(error);
  }
}
