import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { TLSSocket } from 'node:tls';
import type * as Undici from 'undici';
import type { HttpResult } from '../core/preflight.js';
import type { HttpAnswer, PeerCertificate, ProbeHttp } from '../core/probe.js';

/** The one door to HTTP: a GET with a deadline, reporting status or the reason it failed (preflight). */
export async function httpGet(url: string, timeoutMs: number, readBody = false): Promise<HttpResult> {
  try {
    const res = await fetch(url, { redirect: 'follow', signal: AbortSignal.timeout(timeoutMs) });
    const body = readBody ? await res.text() : undefined;
    if (!readBody) await res.body?.cancel();
    return { ok: res.status >= 200 && res.status < 400, status: res.status, body };
  } catch (error) {
    const e = error as Error & { cause?: { code?: string; message?: string } };
    const reason = e.name === 'TimeoutError' ? `no answer within ${timeoutMs / 1000} s` : (e.cause?.code ?? e.cause?.message ?? e.message);
    return { ok: false, error: reason };
  }
}

export interface ProbeHttpOptions {
  connectTimeoutMs: number;
  /** From the request sent to the response's headers. */
  headersTimeoutMs: number;
  /** Between two chunks of a body. */
  bodyTimeoutMs: number;
  /** The whole answer, redirects included: a body trickling in a byte at a time never trips the others. */
  totalTimeoutMs: number;
  /** Keep-alive connections per difusor. */
  connectionsPerOrigin: number;
  /** Redirects followed, as a browser would (http to https, a trailing slash). */
  maxRedirects?: number;
}

// Only the agent and the connector: undici's index also loads fetch, WebSocket, caches and mocks, which cost a
// probe run from cron more CPU (~0.1 s) than its own work. Pinned in package.json, so these paths do not move.
const require = createRequire(import.meta.url);
const Agent = require('undici/lib/dispatcher/agent.js') as typeof Undici.Agent;
const buildConnector = require('undici/lib/core/connect.js') as typeof Undici.buildConnector;

/** The largest body kept in memory (a manifest of a federal election's cut is a few MB). */
const MAX_KEPT_BYTES = 64 * 1048576;

/** Node's own codes for a certificate TLS refused (openssl's verify errors, plus a name mismatch). */
const CERTIFICATE_CODES = /^(CERT_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_(GET_ISSUER_CERT|VERIFY_LEAF_SIGNATURE|DECRYPT_CERT)|ERR_TLS_CERT_ALTNAME_INVALID|INVALID_CA|INVALID_PURPOSE|CERT_UNTRUSTED|CERT_REJECTED|HOSTNAME_MISMATCH)/;

function describe(error: unknown): { message: string; certificate: boolean } {
  const e = error as Error & { code?: string; cause?: Error & { code?: string } };
  const code = e.cause?.code ?? e.code ?? '';
  const certificate = CERTIFICATE_CODES.test(code);
  const timeouts: Record<string, string> = {
    UND_ERR_CONNECT_TIMEOUT: 'no connection within the connect timeout',
    UND_ERR_HEADERS_TIMEOUT: 'no response headers within the timeout',
    UND_ERR_BODY_TIMEOUT: 'the body stalled past the timeout',
  };
  const message = timeouts[code] ?? `${code ? `${code}: ` : ''}${e.cause?.message ?? e.message}`;
  return { message: certificate ? `certificate refused: ${message}` : message, certificate };
}

/**
 * The probe's HTTP client: undici with keep-alive and a bounded number of connections per difusor,
 * timeouts per phase, real certificate checks (Node's CA store, plus NODE_EXTRA_CA_CERTS), and the
 * peer certificate of each connection captured at the handshake for its expiry.
 */
export function createProbeHttp(opts: ProbeHttpOptions): ProbeHttp & { close(): Promise<void> } {
  const certificates = new Map<string, PeerCertificate>();
  const connect = buildConnector({ timeout: opts.connectTimeoutMs });
  const agent = new Agent({
    connections: opts.connectionsPerOrigin,
    headersTimeout: opts.headersTimeoutMs,
    bodyTimeout: opts.bodyTimeoutMs,
    keepAliveTimeout: 10_000,
    connect(options, callback) {
      connect(options, (...args) => {
        const socket = args[1];
        if (socket instanceof TLSSocket) {
          const peer = socket.getPeerCertificate();
          if (peer?.valid_to) {
            certificates.set(`${options.hostname}:${options.port}`, {
              validTo: new Date(peer.valid_to).toISOString(),
              subject: [peer.subject?.CN].flat()[0],
              issuer: [peer.issuer?.CN].flat()[0],
            });
          }
        }
        callback(...args);
      });
    },
  });

  // A dispatch handler rather than a body stream: each chunk goes straight into the hash, nothing is buffered.
  const once = (target: URL, keepBody: boolean, started: number): Promise<HttpAnswer & { location?: string }> =>
    new Promise((resolve, reject) => {
      const hash = createHash('sha256');
      const chunks: Buffer[] = [];
      let bytes = 0;
      let status = 0;
      let ttfbMs = 0;
      const headers: Record<string, string | undefined> = {};
      let cancel: ((reason: Error) => void) | undefined;
      let expired: Error | undefined;
      const timer = setTimeout(
        () => {
          expired = new Error(`no complete answer within ${opts.totalTimeoutMs / 1000} s`);
          cancel?.(expired);
        },
        Math.max(0, opts.totalTimeoutMs - (performance.now() - started)),
      );
      agent.dispatch(
        {
          origin: target.origin,
          path: `${target.pathname}${target.search}`,
          method: 'GET',
          headers: { 'cache-control': 'no-cache', pragma: 'no-cache', 'user-agent': 'difusion-probe' },
        },
        {
          onConnect(abort) {
            cancel = abort;
            // Past the deadline while queued behind this difusor's other requests: never sent.
            if (expired) abort(expired);
          },
          onHeaders(statusCode, rawHeaders) {
            status = statusCode;
            ttfbMs = Math.round(performance.now() - started);
            // A header sent twice (two Cache-Control lines) is read as one list, as HTTP defines it, not as the last line.
            for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
              const name = String(rawHeaders[i]).toLowerCase();
              const value = String(rawHeaders[i + 1]);
              headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
            }
            return true;
          },
          onData(chunk) {
            hash.update(chunk);
            bytes += chunk.length;
            if (keepBody) {
              // A manifest or an aviso.json is kept to be read; a difusor sending gigabytes in their place is refused.
              if (bytes > MAX_KEPT_BYTES) {
                cancel?.(new Error(`${target.pathname}: more than ${MAX_KEPT_BYTES / 1048576} MB, not a manifest`));
                return false;
              }
              chunks.push(chunk);
            }
            return true;
          },
          onComplete() {
            clearTimeout(timer);
            resolve({
              status,
              headers,
              sha256: hash.digest('hex'),
              bytes,
              body: keepBody ? Buffer.concat(chunks) : undefined,
              ttfbMs,
              totalMs: Math.round(performance.now() - started),
              certificate: certificates.get(`${target.hostname}:${target.port || (target.protocol === 'https:' ? '443' : '80')}`),
              location: status >= 300 && status < 400 ? headers.location : undefined,
            });
          },
          onError(error) {
            clearTimeout(timer);
            reject(error);
          },
        },
      );
    });

  return {
    async get(url, { keepBody = false } = {}) {
      const started = performance.now();
      let target = new URL(url);
      try {
        for (let hop = 0; ; hop++) {
          const answer = await once(target, keepBody, started);
          if (!answer.location || hop >= (opts.maxRedirects ?? 5)) {
            delete answer.location;
            return answer;
          }
          const next = new URL(answer.location, target);
          // The cache-busting query must survive a redirect that drops it.
          if (!next.search) next.search = target.search;
          target = next;
        }
      } catch (error) {
        const { message, certificate } = describe(error);
        return { headers: {}, bytes: 0, totalMs: Math.round(performance.now() - started), error: message, certificateError: certificate };
      }
    },
    close: () => agent.close(),
  };
}
