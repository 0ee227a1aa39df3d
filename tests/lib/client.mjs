// A test client on the `ws` package (an independent implementation of
// RFC 6455): connect, send JSON, and await frames by type with a timeout.
import WebSocket from 'ws';

export class Client {
  constructor(url, protocols) {
    this.frames = [];      // every frame received, parsed when JSON
    this.waiters = [];
    this.closed = null;    // { code, reason } once closed
    this.ws = new WebSocket(url, protocols);
    this.ws.on('message', (data, isBinary) => {
      let f;
      try { f = isBinary ? { binary: data } : JSON.parse(data.toString()); } catch { f = { raw: data.toString() }; }
      this.frames.push(f);
      this._wake();
    });
    this.ws.on('close', (code, reason) => { this.closed = { code, reason: reason.toString() }; this._wake(); });
    this.ws.on('error', (e) => { this.error = e; this._wake(); });
  }

  static async connect(url, protocols) {
    const c = new Client(url, protocols);
    await new Promise((resolve, reject) => {
      c.ws.once('open', resolve);
      c.ws.once('error', reject);
      c.ws.once('unexpected-response', (req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    return c;
  }

  _wake() { for (const w of this.waiters.splice(0)) w(); }

  send(obj) { this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj)); }

  // Wait for the first not-yet-taken frame matching pred; removes it from the queue.
  async next(pred = () => true, timeoutMs = 5000) {
    if (typeof pred === 'string') { const t = pred; pred = (f) => f.type === t; }
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.frames.findIndex(pred);
      if (i >= 0) return this.frames.splice(i, 1)[0];
      if (this.closed) throw new Error(`closed (${this.closed.code} ${this.closed.reason}) while waiting; have ${JSON.stringify(this.frames)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout waiting for frame; have ${JSON.stringify(this.frames)}`);
      await new Promise((resolve) => { const t = setTimeout(resolve, left); this.waiters.push(() => { clearTimeout(t); resolve(); }); });
    }
  }

  // Resolve with { code, reason } once the server closes.
  async waitClose(timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timeout waiting for close');
      await new Promise((resolve) => { const t = setTimeout(resolve, left); this.waiters.push(() => { clearTimeout(t); resolve(); }); });
    }
    return this.closed;
  }

  // Assert nothing matching pred arrives within ms.
  async none(pred, ms = 300) {
    if (typeof pred === 'string') { const t = pred; pred = (f) => f.type === t; }
    await new Promise((r) => setTimeout(r, ms));
    const f = this.frames.find(pred);
    if (f) throw new Error(`unexpected frame ${JSON.stringify(f)}`);
  }

  close() { this.ws.close(); }
}
