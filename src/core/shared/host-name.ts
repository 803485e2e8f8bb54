import { hostname } from 'node:os';

/**
 * A publication host's name, as leases and journal entries carry it. Here, not in publish/, because the journal
 * (records/) names the host of every entry and records must not import publish.
 */

const NAME = /^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}$/;

/** Whether a host or run name passes the helper's check (need_lease_name). */
export function isLeaseName(name: string): boolean {
  return NAME.test(name);
}

/**
 * This host's name in leases and journal entries: DIFUSION_HOST when set (refused unless a plain token), else
 * the machine's hostname with anything the helper would refuse replaced by '-'.
 */
export function leaseHostName(env: { DIFUSION_HOST?: string }, machineHostname: string): string {
  const set = env.DIFUSION_HOST;
  if (set !== undefined && set !== '') {
    if (!isLeaseName(set)) {
      throw new Error(`DIFUSION_HOST must be letters, digits, '.', '_' or '-' (at most 64, not starting with '-'): ${JSON.stringify(set)}`);
    }
    return set;
  }
  const cleaned = machineHostname.replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^-+/, '').slice(0, 64);
  return cleaned || 'unnamed-host';
}

/** This host's name as the environment and the machine give it (see leaseHostName). */
export function thisHost(): string {
  return leaseHostName(process.env, hostname());
}
