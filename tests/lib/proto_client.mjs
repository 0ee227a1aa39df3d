// A Protobuf test client, written the way a stranger would: protobufjs
// (an independent Protobuf implementation) loads proto/nebula.proto — the
// contract file, nothing else — and every frame is one nebula.v1.Envelope
// in a binary WebSocket message, subprotocol nebula.proto.v1.
//
// Frames are turned into the JSON protocol's shape ({type: 'message',
// room, ...}, seq and ts as numbers) so that tests compare what a JSON and
// a Protobuf member of one room see with deepEqual.
import path from 'node:path';
import protobuf from 'protobufjs';
import { Client } from './client.mjs';
import { repoRoot } from './server.mjs';

export const PROTO_SUBPROTOCOL = 'nebula.proto.v1';

const root = protobuf.loadSync(path.join(repoRoot, 'proto', 'nebula.proto'));
export const Envelope = root.lookupType('nebula.v1.Envelope');
const TypeEnum = root.lookupEnum('nebula.v1.Type');

// 'TYPE_MESSAGE' <-> 'message'
const typeName = (n) => n.replace(/^TYPE_/, '').toLowerCase();
const typeValue = (s) => TypeEnum.values[`TYPE_${String(s).toUpperCase()}`];

// Decoded Envelope -> the JSON envelope's shape.
export function toJsonShape(bytes) {
  const msg = Envelope.decode(bytes);
  const o = Envelope.toObject(msg, { longs: Number, enums: String, defaults: false, arrays: false });
  const out = {};
  for (const [k, v] of Object.entries(o)) {
    if (k === 'type') out.type = typeName(v);
    else out[k] = v;
  }
  // On the Protobuf wire an empty list and no list look the same; the
  // server always gives presence a list.
  if (out.type === 'presence' && !out.users) out.users = [];
  return out;
}

// A JSON-shaped object -> Envelope bytes.
export function fromJsonShape(obj) {
  const fields = { ...obj };
  if (fields.type !== undefined) fields.type = typeValue(fields.type) ?? fields.type;
  const err = Envelope.verify(fields);
  if (err) throw new Error(`not an Envelope: ${err}`);
  return Envelope.encode(Envelope.fromObject(fields)).finish();
}

export class ProtoClient extends Client {
  constructor(url, protocols = [PROTO_SUBPROTOCOL]) {
    super(url, protocols);
    this.ws.binaryType = 'nodebuffer';
    // Replace the JSON parsing of the base class: binary frames are
    // Envelopes; a text frame here is a protocol violation worth seeing.
    this.ws.removeAllListeners('message');
    this.ws.on('message', (data, isBinary) => {
      let f;
      try {
        f = isBinary ? toJsonShape(data) : { text: data.toString() };
      } catch (e) {
        f = { undecodable: String(e) };
      }
      this.frames.push(f);
      this._wake();
    });
  }

  static async connect(url, protocols) {
    const c = new ProtoClient(url, protocols);
    await new Promise((resolve, reject) => {
      c.ws.once('open', resolve);
      c.ws.once('error', reject);
      c.ws.once('unexpected-response', (req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    return c;
  }

  // An object is encoded as an Envelope; raw bytes (Buffer/Uint8Array) go
  // out as they are, in a binary frame; a string goes out as a text frame.
  send(obj) {
    if (typeof obj === 'string' || obj instanceof Uint8Array) this.ws.send(obj);
    else this.ws.send(fromJsonShape(obj));
  }
}
