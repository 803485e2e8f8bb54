import path from 'node:path';
import { displayPath, formatProblem, loadRegistry } from '../core/registry/registry.js';
import type { Registry, RegistryProblem } from '../core/registry/types.js';
import { registryFlag } from '../ui/flags.js';
import { DifusionCommand } from '../ui/command.js';

export type ValidateResult =
  | { valid: true; file: string; difusores: { id: string; status: string; transport: string }[] }
  | { valid: false; file: string; problems: RegistryProblem[] };

export default class Validate extends DifusionCommand {
  static override summary = 'Check the registry of difusores.';
  static override description =
    'Checks difusores.yaml against its schema and the rules a schema cannot express (unique ids and ' +
    'locations, an existing IANA timezone, real dates in order, simulacros before the window, absolute ' +
    'paths, parsable host keys, http(s) URLs). Every problem is reported at once as FILE:LINE:COL field: ' +
    'message. Exits 2 when the registry is invalid.';
  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --registry /etc/difusion/difusores.yaml',
    '<%= config.bin %> <%= command.id %> --json',
  ];
  static override enableJsonFlag = true;
  static override flags = { registry: registryFlag };

  async run(): Promise<ValidateResult> {
    const { flags } = await this.parse(Validate);
    const result = await loadRegistry(flags.registry);
    if (!result.ok) {
      if (this.jsonEnabled()) {
        this.logJson({ valid: false, file: path.resolve(flags.registry), problems: result.problems });
      } else {
        for (const problem of result.problems) this.logToStderr(formatProblem(problem));
        const count = result.problems.length;
        this.logToStderr(`${displayPath(flags.registry)}: invalid — ${count} problem${count === 1 ? '' : 's'}`);
      }
      this.exit(2);
    }
    const { registry } = result;
    this.log(summary(flags.registry, registry));
    return {
      valid: true,
      file: registry.file,
      difusores: registry.difusores.map(({ id, status, transport }) => ({ id, status, transport })),
    };
  }

  // The output is already written and the exit code chosen; oclif's JSON mode would otherwise print the exit as an error and exit 1.
}

function summary(file: string, registry: Registry): string {
  const { difusores, publication } = registry;
  const suspended = difusores.filter((d) => d.status === 'suspended').length;
  const noun = difusores.length === 1 ? 'difusor' : 'difusores';
  const { start, end } = publication.window;
  const wall = (time: string): string => time.replace('T', ' ');
  return (
    `${displayPath(file)}: valid — ${difusores.length} ${noun} (${difusores.length - suspended} active, ${suspended} suspended), ` +
    `window ${wall(start)} → ${wall(end)} ${publication.timezone}`
  );
}
