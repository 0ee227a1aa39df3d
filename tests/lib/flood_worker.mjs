// A worker thread that sends a fixed frame on n raw WebSocket connections
// at a steady rate, so that a test measures latency on its own event loop
// undisturbed by the attack's generation (hostile.test.mjs, the CPU case).
//
// workerData: { port, n, intervalMs, payloads: [string per connection],
// paths: [connect path per connection], localAddresses: [source per
// connection] }. Posts 'ready' once connected; on 'stop' posts
// { echoes: [text frames received per connection], codes: [close code or
// null] } and exits.
import { parentPort, workerData } from 'node:worker_threads';
import { rawConnect, frame } from './rawws.mjs';

const { port, n, intervalMs, payloads, paths, localAddresses } = workerData;
const socks = [];
const echoes = new Array(n).fill(0);
const codes = new Array(n).fill(null);
for (let i = 0; i < n; i++) {
  const s = await rawConnect(port, paths[i], { localAddress: localAddresses[i] });
  let buf = s.rest || Buffer.alloc(0);
  s.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 2) {
      const op = buf[0] & 0x0f;
      let len = buf[1] & 0x7f;
      let at = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); at = 4; }
      else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); at = 10; }
      if (buf.length < at + len) return;
      if (op === 0x1) echoes[i]++;
      if (op === 0x8 && codes[i] === null) codes[i] = len >= 2 ? buf.readUInt16BE(at) : 1005;
      buf = buf.subarray(at + len);
    }
  });
  s.on('error', () => {});
  socks.push(s);
}
const frames = payloads.map((p) => frame(0x1, p));
parentPort.postMessage('ready');
const timer = setInterval(() => socks.forEach((s, i) => s.write(frames[i])), intervalMs);
parentPort.on('message', (m) => {
  if (m !== 'stop') return;
  clearInterval(timer);
  setTimeout(() => {
    parentPort.postMessage({ echoes, codes });
    for (const s of socks) s.destroy();
    parentPort.close();
  }, 200);
});
