/** What the core asks of time; src/adapters/clock.ts gives the real clock or DIFUSION_NOW's. */
export interface Clock {
  now(): Date;
  /** True when DIFUSION_NOW set the time; such a run must say so in its output and journal. */
  fromEnv: boolean;
  /** 'DIFUSION_NOW=<value>' when fromEnv: the journal's clock field and the run's warning. */
  setting?: string;
}

/** Builds the run's clock from the environment (DIFUSION_NOW) in the publication timezone. */
export type ClockFactory = (env: NodeJS.ProcessEnv, options: { timezone?: string }) => Clock;
