/** The one door to HTTP: a GET with a deadline, reporting status or the reason it failed. */
export interface HttpResult {
  ok: boolean;
  status?: number;
  error?: string;
  body?: string;
}

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
