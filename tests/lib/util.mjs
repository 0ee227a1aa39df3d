// Small helpers shared by the integration tests.

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// One metric's value from /metrics (NaN when absent).
export async function metric(srv, name) {
  const text = await (await fetch(`${srv.url}/metrics`)).text();
  const m = text.match(new RegExp(`^${name} (-?\\d+)$`, 'm'));
  return m ? Number(m[1]) : NaN;
}

// Poll cond until it is true, or fail after timeoutMs naming what.
export async function until(cond, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timeout: ${what}`);
    await sleep(25);
  }
}
