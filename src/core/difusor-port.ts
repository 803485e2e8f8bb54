import type { Writable } from 'node:stream';
import type { Difusor } from './registry/types.js';

/**
 * What the core asks of a difusor (src/adapters/difusor.ts is the one door that implements it): every remote
 * step is a verb of templates/difusion-helper.sh, run over one SSH connection kept open for the whole run (or
 * locally for `transport: local`), plus the rsync transfer into staging.
 */
export interface HelperOutput {
  code: number;
  stdout: string;
  stderr: string;
  /** helperToStream stopped the verb at its `limit`: what was asked for came, the rest was not read. */
  stdoutCut?: boolean;
}

export interface DifusorSession {
  helper(verb: string, args: string[], opts?: { stdin?: string; timeoutMs?: number }): Promise<HelperOutput>;
  /**
   * A verb whose stdout is bytes to keep (a log pulled): written to `sink` as it arrives, at most `limit` bytes
   * (then the verb is stopped, stdoutCut); `stdout` comes back empty. Every other answer is capped at MAX_ANSWER_BYTES.
   */
  helperToStream?(verb: string, args: string[], sink: Writable, opts?: { timeoutMs?: number; limit?: number }): Promise<HelperOutput>;
  transfer(
    sourceDir: string,
    cut: string,
    files: string[],
    onProgress?: (bytes: number, percent: number) => void,
    opts?: TransferOptions,
  ): Promise<RsyncResult>;
  close(): void;
}

export interface TransferOptions {
  /** Into this run's incoming directory (rsync's `incoming`), not the staging prepare builds. */
  incoming?: string;
  /** Stops the transfer (rsync is killed): one sent on a guess that prepare proved wrong. */
  signal?: AbortSignal;
}

export interface OpenOptions {
  /**
   * Whether this session will likely send a cut (default true). Only then is rsync's own connection
   * opened ahead, alongside the helper's; a publish that finds the cut already live never needs it.
   */
  expectTransfer?: boolean;
}

export interface DifusorConnector {
  open(difusor: Difusor, opts?: OpenOptions): Promise<DifusorSession>;
  dispose(): Promise<void>;
}

/** What a transfer reports: rsync's own --stats figures. */
export interface RsyncResult {
  bytesSent: number;
  filesSent: number;
}
