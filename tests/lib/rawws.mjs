// A raw WebSocket client on a plain TCP socket, for clients that misbehave
// on purpose: one that never reads, one that never answers pings.
import net from 'node:net';
import crypto from 'node:crypto';

// Connect and complete the upgrade; resolves with the socket (paused if
// opts.noRead) once the 101 response arrived; rejects with an Error whose
// message is the status line otherwise. opts.localAddress: the source
// address (127.0.0.x acts as another client machine).
export function rawConnect(port, path, opts = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host: '127.0.0.1', localAddress: opts.localAddress });
    const key = crypto.randomBytes(16).toString('base64');
    let head = Buffer.alloc(0);
    sock.once('error', reject);
    sock.on('connect', () => {
      sock.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n`
        + `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    });
    const onData = (d) => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      sock.off('data', onData);
      const status = head.subarray(0, end).toString().split('\r\n')[0];
      if (!/^HTTP\/1\.1 101/.test(status)) { sock.destroy(); reject(new Error(status)); return; }
      sock.rest = head.subarray(end + 4);
      if (opts.noRead) sock.pause();
      resolve(sock);
    };
    sock.on('data', onData);
  });
}

// A masked client frame.
export function frame(opcode, payload = Buffer.alloc(0)) {
  const p = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const mask = crypto.randomBytes(4);
  let hdr;
  if (p.length < 126) hdr = Buffer.from([0x80 | opcode, 0x80 | p.length]);
  else if (p.length < 65536) { hdr = Buffer.alloc(4); hdr[0] = 0x80 | opcode; hdr[1] = 0x80 | 126; hdr.writeUInt16BE(p.length, 2); }
  else { hdr = Buffer.alloc(10); hdr[0] = 0x80 | opcode; hdr[1] = 0x80 | 127; hdr.writeBigUInt64BE(BigInt(p.length), 2); }
  const body = Buffer.alloc(p.length);
  for (let i = 0; i < p.length; i++) body[i] = p[i] ^ mask[i & 3];
  return Buffer.concat([hdr, mask, body]);
}
