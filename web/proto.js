// The browser client's Protobuf codec: nebula.v1.Envelope of
// proto/nebula.proto (subprotocol nebula.proto.v1, binary frames), on
// protobufjs's minimal runtime — its Reader and Writer, no .proto parser.
// `make build` copies that runtime from npm (web/package.json) to
// web/vendor/protobuf.min.js; without it this file defines nothing and the
// page offers JSON only. Frames become the same objects JSON.parse gives
// for nebula.json.v1, so app.js handles both alike.
'use strict';

(function () {
  const pb = window.protobuf;
  if (!pb || !pb.Reader || !pb.Writer) return;

  // Field numbers and wire types of proto/nebula.proto.
  const TYPES = [null, 'message', 'join', 'leave', 'presence', 'history', 'error', 'welcome'];
  const VARINT = 0;
  const LEN = 2;
  const STRINGS = new Map([[2, 'room'], [3, 'sender'], [4, 'content'], [6, 'id'], [8, 'code'], [11, 'epoch']]);

  function decode(data) {
    const r = pb.Reader.create(new Uint8Array(data));
    const f = {};
    while (r.pos < r.len) {
      const tag = r.uint32();
      const field = tag >>> 3;
      const wire = tag & 7;
      if (field === 1 && wire === VARINT) f.type = TYPES[r.int32()] || 'unknown';
      else if (STRINGS.has(field) && wire === LEN) f[STRINGS.get(field)] = r.string();
      else if (field === 5 && wire === LEN) (f.users || (f.users = [])).push(r.string());
      else if (field === 7 && wire === VARINT) f.ts = Number(r.int64());
      else if (field === 9 && wire === VARINT) f.seq = Number(r.uint64());
      else if (field === 10 && wire === VARINT) f.since = Number(r.uint64());
      else if (field === 12 && wire === VARINT) f.incomplete = r.bool();
      else r.skipType(wire); // unknown, or reserved for later
    }
    // On this wire an empty list and no list look the same.
    if (f.type === 'presence' && !f.users) f.users = [];
    return f;
  }

  // In field-number order, like every Protobuf encoder.
  function encode(o) {
    const w = pb.Writer.create();
    w.uint32(1 << 3 | VARINT).int32(Math.max(0, TYPES.indexOf(o.type)));
    const str = (n) => { const v = o[STRINGS.get(n)]; if (typeof v === 'string') w.uint32(n << 3 | LEN).string(v); };
    str(2); str(3); str(4);
    for (const u of o.users || []) w.uint32(5 << 3 | LEN).string(u);
    str(6);
    if (o.ts) w.uint32(7 << 3 | VARINT).int64(o.ts);
    str(8);
    if (o.seq) w.uint32(9 << 3 | VARINT).uint64(o.seq);
    if (typeof o.since === 'number') w.uint32(10 << 3 | VARINT).uint64(o.since);
    str(11);
    if (o.incomplete) w.uint32(12 << 3 | VARINT).bool(true);
    return w.finish();
  }

  window.NebulaProto = { subprotocol: 'nebula.proto.v1', binary: true, encode, decode };
})();
