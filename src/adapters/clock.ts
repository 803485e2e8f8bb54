import { parseTimeArgument } from '../core/registry/window.js';
import type { Clock } from '../core/clock-port.js';

export type { Clock } from '../core/clock-port.js';

export const NOW_VARIABLE = 'DIFUSION_NOW';


export interface ClockOptions {
  /** Zone for a DIFUSION_NOW without an offset (a wall time); defaults to this host's zone, as ISO 8601 reads it. */
  timezone?: string;
}

/**
 * The real clock, or the fixed instant in DIFUSION_NOW. A fixed clock does not advance: every decision in the
 * run sees the same time, so a test at 19:59:59 cannot drift past the opening. Measure durations with a
 * monotonic timer, not with this clock.
 */
export function systemClock(env: NodeJS.ProcessEnv = process.env, options: ClockOptions = {}): Clock {
  const value = env[NOW_VARIABLE];
  if (value === undefined || value === '') return { now: () => new Date(), fromEnv: false };
  const timezone = options.timezone ?? Intl.DateTimeFormat().resolvedOptions().timeZone;
  const fixed = parseTimeArgument(value, timezone);
  if (!fixed) {
    throw new Error(
      `${NOW_VARIABLE}="${value}" is not an ISO 8601 date and time (e.g. 2022-06-05T20:00:00-05:00, or a wall time ` +
        `2022-06-05T20:00:00 read in ${timezone}); unset it to use the real clock`,
    );
  }
  return { now: () => new Date(fixed.getTime()), fromEnv: true, setting: `${NOW_VARIABLE}=${value}` };
}

export function fixedClock(instant: Date): Clock {
  return { now: () => new Date(instant.getTime()), fromEnv: false };
}
