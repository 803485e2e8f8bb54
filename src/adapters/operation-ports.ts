import type { Clock } from '../core/clock-port.js';
import type { OperationPorts } from '../core/publish/operation.js';
import { openJournal, newRunId } from '../core/records/journal.js';
import { createConnector } from './difusor.js';

/** The real ports every plan-and-confirm command runs with. */
export function operationPorts(clock: Clock): OperationPorts {
  return { clock, connect: (registry, targets) => createConnector(registry, targets), openJournal, newRunId: () => newRunId() };
}
