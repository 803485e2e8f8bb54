import type { CutoffPlan, ReinstatePlan } from '../core/enforcement/suspension.js';
import type { RollbackPlan } from '../core/enforcement/rollback.js';
import { describeServing } from '../core/publish/operation.js';
import { displayPath } from '../core/registry/registry.js';
import { terminalText } from './render.js';

/** The plan an operator confirms, in the words of what the public will see. */
export function planLines(plan: CutoffPlan | ReinstatePlan): string[] {
  return cutoffOrReinstateLines(plan).map(terminalText);
}

function cutoffOrReinstateLines(plan: CutoffPlan | ReinstatePlan): string[] {
  const d = plan.difusor;
  if (plan.action === 'cutoff') {
    return [
      `cutoff ${d.id} (${d.name})`,
      `  now serving:   ${describeServing(plan.serving)} at ${d.public_url}`,
      `  will serve:    the notice (aviso) on every path, 503 + no-store, dated ${plan.local}`,
      `  reason shown:  ${plan.reason}`,
      `  registry:      ${displayPath(plan.registryFile)} gets status: suspended; later publishes skip ${d.id}`,
    ];
  }
  return [
    `reinstate ${d.id} (${d.name})`,
    `  now serving:   ${describeServing(plan.serving)} at ${d.public_url}`,
    `  will serve:    cut ${plan.cut} (what the other difusores serve), delivered, verified and switched in`,
    `  registry:      ${displayPath(plan.registryFile)} gets status: active once it serves ${plan.cut}`,
  ];
}

const ROLLBACK_ACTION = {
  switch: 'switches back',
  already: 'already there',
  lacking: 'LACKS IT: stays where it is',
  unreachable: 'UNREACHABLE: stays where it is',
} as const;

export function rollbackPlanLines(plan: RollbackPlan): string[] {
  return [
    `rollback to ${plan.to}${plan.from ? ` (from ${plan.from})` : ''}`,
    ...plan.rows.map((r) => `  ${r.difusor.id.padEnd(16)} ${describeServing(r.serving).padEnd(34)} ${ROLLBACK_ACTION[r.action]}`),
    ...plan.skipped.map((s) => `  ${s.id.padEnd(16)} ${s.reason}: keeps its notice`),
    `  then publish --latest keeps them on ${plan.to} until a cut is published by name`,
  ].map(terminalText);
}
