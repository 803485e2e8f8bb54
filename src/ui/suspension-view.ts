import type { CutoffPlan, ReinstatePlan } from '../core/suspension.js';
import { describeServing } from '../core/operation.js';
import { displayPath } from '../core/registry.js';

/** The plan an operator confirms, in the words of what the public will see. */
export function planLines(plan: CutoffPlan | ReinstatePlan): string[] {
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
    `  will serve:    cut ${plan.cut} (the newest published), delivered, verified and switched in`,
    `  registry:      ${displayPath(plan.registryFile)} gets status: active once it serves ${plan.cut}`,
  ];
}
