// Nebula browser client: plain JS. Speaks the JSON codec (subprotocol
// nebula.json.v1) of docs/PROTOCOL.md, or Protobuf (nebula.proto.v1, see
// proto.js) when chosen in the join form or with ?codec=proto.
'use strict';

const $ = (id) => document.getElementById(id);
const NAME_RE = /^[A-Za-z0-9_.-]+$/;
const MAX_USER = 32;
const MAX_ROOM = 64;
const MAX_ITEMS = 500;            // per room log; older items are dropped
const BACKOFF_MIN = 500;          // ms, doubled per failed attempt ...
const BACKOFF_MAX = 15000;        // ... up to this
const GHOST_WINDOW = 120000;      // see onClose: how long 4409 after a drop still means "our old session"

const state = {
  me: '',
  rooms: new Map(),   // name -> room; insertion order is tab order, and what we re-join
  current: null,      // the room shown
  ws: null,
  urlRoom: null,      // the room named in the current socket's URL
  attempt: 0,         // failed attempts since the last welcome
  timer: 0,
  everConnected: false,
  lostAt: 0,          // when the last established connection dropped
  lastError: null,    // last error frame, to explain a close that follows it
  signingOut: false,
  restarted: false,   // the last drop was close 1001 or 1012: the server restarts, the network is fine
  codec: null,        // the CODECS entry the current socket speaks
};

// ---- names -----------------------------------------------------------------

// Same rules as the server (core/names.c); null when the name is fine.
function nameProblem(kind, v, max) {
  if (!v) return `${kind} is required.`;
  if (v.length > max) return `${kind} is too long: at most ${max} characters.`;
  if (!NAME_RE.test(v)) return `${kind} may only contain letters A–Z a–z, digits 0–9, _ - and . (no spaces).`;
  return null;
}

function showFieldError(input, box, msg) {
  box.textContent = msg || '';
  box.hidden = !msg;
  if (msg) input.setAttribute('aria-invalid', 'true'); else input.removeAttribute('aria-invalid');
}

// ---- rooms and rendering ---------------------------------------------------

function el(tag, cls, text) {
  const n = document.createElement(tag);
  if (cls) n.className = cls;
  if (text !== undefined) n.textContent = text; // always text, never HTML
  return n;
}

function addRoom(name) {
  let r = state.rooms.get(name);
  if (r) return r;
  // lastSeq/epoch: where we are in the room's order (docs/PROTOCOL.md,
  // "Order and seq"), sent back as since/epoch on every reconnect;
  // everJoined: a join after this one is a re-join, whose replay is the gap.
  r = { name, joined: false, users: [], unread: 0, seen: new Set(), inHistory: false,
    lastSeq: 0, epoch: '', everJoined: false };
  r.log = el('ol', 'log');
  r.log.dataset.room = name;
  r.log.hidden = true;
  $('messages').append(r.log);
  r.tab = el('li');
  const b = el('button', 'tab');
  b.type = 'button';
  b.dataset.room = name;
  b.append(el('span', 'tab-name', '#' + name), el('span', 'badge'));
  b.addEventListener('click', () => showRoom(r));
  r.tab.append(b);
  $('rooms').append(r.tab);
  state.rooms.set(name, r);
  renderTab(r);
  return r;
}

function removeRoom(r) {
  const names = [...state.rooms.keys()];
  const i = names.indexOf(r.name);
  state.rooms.delete(r.name);
  r.log.remove();
  r.tab.remove();
  if (state.current === r) {
    const next = state.rooms.get(names[i + 1]) || state.rooms.get(names[i - 1]);
    state.current = null;
    if (next) showRoom(next);
  }
  $('leave-button').disabled = state.rooms.size < 2;
}

function renderTab(r) {
  const b = r.tab.firstChild;
  const badge = b.lastChild;
  if (state.current === r) b.setAttribute('aria-current', 'true'); else b.removeAttribute('aria-current');
  b.classList.toggle('pending', !r.joined);
  badge.textContent = '';
  if (r.unread) badge.append(String(r.unread), el('span', 'visually-hidden', ' unread'));
}

function showRoom(r) {
  const prev = state.current;
  state.current = r;
  for (const x of state.rooms.values()) x.log.hidden = x !== r;
  r.unread = 0;
  if (prev && prev !== r) renderTab(prev);
  renderTab(r);
  $('room-title').textContent = '#' + r.name;
  $('users-room').textContent = '#' + r.name;
  $('leave-button').disabled = state.rooms.size < 2;
  renderUsers();
  scrollToEnd(true);
}

function renderUsers() {
  const ul = $('users');
  ul.textContent = '';
  for (const u of state.current ? state.current.users : []) {
    const li = el('li', u === state.me ? 'me' : '', u);
    li.dataset.user = u;
    if (u === state.me) li.append(el('span', 'you', ' (you)'));
    ul.append(li);
  }
}

// Keep the view pinned to the newest item unless the user scrolled up to read.
function scrollToEnd(force) {
  const box = $('messages');
  if (force || box.scrollHeight - box.scrollTop - box.clientHeight < 80) box.scrollTop = box.scrollHeight;
}

function append(r, item) {
  const box = $('messages');
  const pinned = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  r.log.append(item);
  while (r.log.childElementCount > MAX_ITEMS) r.log.firstElementChild.remove();
  if (r === state.current && pinned) box.scrollTop = box.scrollHeight;
}

function notice(r, text, kind = 'info') {
  r = r || state.current;
  if (!r) return;
  const li = el('li', 'notice ' + kind, text);
  li.dataset.testid = kind === 'error' ? 'error-notice' : 'notice';
  append(r, li);
}

// The room's position: the highest seq of any frame of it.
function seeSeq(r, f) {
  if (typeof f.seq === 'number' && f.seq > r.lastSeq) r.lastSeq = f.seq;
}

// What a (re-)join of r sends: since/epoch once the room was joined before.
function resumeFields(r) {
  if (!r.everJoined) return {};
  return r.epoch ? { since: r.lastSeq, epoch: r.epoch } : { since: r.lastSeq };
}

function addMessage(r, f, history) {
  // Shown once: a replay after a reconnect may repeat what we already show
  // (the server's id is unique; seq and ts for servers that give no id).
  const key = f.id ? `id:${f.id}` : `${f.seq}|${f.ts}|${f.sender}`;
  if (r.seen.has(key)) return;
  r.seen.add(key);
  // The replay after a re-join fills the gap: it is shown as conversation,
  // after the gap line, not as "earlier messages".
  if (history && r.everJoined) history = false;
  if (history && !r.inHistory) {
    r.inHistory = true;
    append(r, el('li', 'divider', 'Earlier messages'));
  }
  const li = el('li', 'msg' + (history ? ' history' : '') + (f.sender === state.me ? ' mine' : ''));
  li.dataset.testid = 'message';
  if (history) li.dataset.history = 'true';
  const d = new Date(f.ts || Date.now());
  const time = el('time', 'time', d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }));
  time.dateTime = d.toISOString();
  time.title = d.toLocaleString();
  li.append(el('span', 'sender', f.sender || '?'), time);
  if (history) li.append(el('span', 'visually-hidden', ' (earlier message)'));
  li.append(el('p', 'text', f.content ?? ''));
  append(r, li);
  if (!history && r !== state.current) {
    r.unread++;
    renderTab(r);
  }
}

// ---- connection ------------------------------------------------------------

function setStatus(kind, text) {
  const s = $('status');
  s.dataset.state = kind;
  s.textContent = text;
  $('chat-view').dataset.conn = kind;
  $('reconnect-button').hidden = kind !== 'reconnecting';
}

// ---- codecs ------------------------------------------------------------------

const CODECS = {
  json: { subprotocol: 'nebula.json.v1', binary: false, encode: JSON.stringify, decode: JSON.parse },
  proto: window.NebulaProto || null, // proto.js, when the runtime was vendored
};

function codec() {
  return CODECS[$('codec').value] || CODECS.json;
}

function send(obj) {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return false;
  state.ws.send(state.codec.encode(obj));
  return true;
}

function connect() {
  clearTimeout(state.timer);
  state.timer = 0;
  // The first room goes in the URL; the others are joined after `welcome`.
  state.urlRoom = state.rooms.keys().next().value || null;
  const q = new URLSearchParams();
  if (state.urlRoom) q.set('room', state.urlRoom);
  q.set('username', state.me);
  // On every reconnect: the URL room resumes where we were.
  const resume = state.urlRoom ? resumeFields(state.rooms.get(state.urlRoom)) : {};
  if ('since' in resume) q.set('since', String(resume.since));
  if (resume.epoch) q.set('epoch', resume.epoch);
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  state.codec = codec();
  const ws = new WebSocket(`${scheme}//${location.host}/ws?${q}`, state.codec.subprotocol);
  if (state.codec.binary) ws.binaryType = 'arraybuffer';
  state.ws = ws;
  state.lastError = null;
  setStatus('connecting', state.attempt ? `Reconnecting (attempt ${state.attempt + 1})…` : 'Connecting…');
  // Events of a socket we already gave up on must not touch the state.
  ws.onmessage = (ev) => { if (ws === state.ws) onFrame(ev.data); };
  ws.onclose = (ev) => { if (ws === state.ws) onClose(ev); };
}

function onFrame(data) {
  let f;
  try { f = state.codec.decode(data); } catch { return notice(null, 'Received a frame that could not be decoded.', 'error'); }
  if (!f || typeof f !== 'object') return;
  if (f.type === 'welcome') return onWelcome();
  if (f.type === 'error') return onError(f);
  const r = state.rooms.get(f.room);
  if (!r) return; // a room we left: late frames are dropped
  seeSeq(r, f);
  switch (f.type) {
    case 'history': return addMessage(r, f, true);
    case 'message': return addMessage(r, f, false);
    case 'join':
      if (f.sender === state.me) {
        const rejoin = r.everJoined;
        r.joined = true;
        r.everJoined = true;
        r.inHistory = false; // history for this join is complete
        // Our join's seq is where its history ends; its epoch names the
        // history we resume from next time (another epoch: seqs restarted).
        if (typeof f.seq === 'number') r.lastSeq = f.seq;
        if (f.epoch) r.epoch = f.epoch;
        renderTab(r);
        if (f.incomplete) {
          const li = el('li', 'notice warn', 'Some messages could not be recovered: the conversation above may have a hole.');
          li.dataset.testid = 'incomplete';
          append(r, li);
        }
        notice(r, rejoin ? `You are back in #${r.name}` : `You joined #${r.name}`);
        if (r.name === state.urlRoom) established();
      } else {
        notice(r, `${f.sender} joined`);
      }
      return;
    case 'leave':
      // Our own leave echo: the room was already removed when we asked.
      if (f.sender !== state.me) notice(r, `${f.sender} left`);
      return;
    case 'presence':
      r.users = Array.isArray(f.users) ? f.users.slice() : [];
      if (r === state.current) renderUsers();
      return;
    default: // newer server, unknown event: ignore (forward compatible)
  }
}

function onWelcome() {
  setStatus('connected', `Connected as ${state.me}`);
  for (const r of state.rooms.values()) {
    if (r.name !== state.urlRoom) send({ type: 'join', room: r.name, ...resumeFields(r) });
  }
  if (!state.urlRoom) established();
}

// The connection is really in: `welcome` alone is not enough, since a taken
// name gets `welcome`, then an error and close 4409.
function established() {
  if (state.everConnected) notice(null, 'Reconnected.');
  state.everConnected = true;
  state.attempt = 0;
  state.lostAt = 0;
  state.restarted = false;
}

function onError(f) {
  state.lastError = f;
  const r = state.rooms.get(f.room);
  const text = `${f.content || 'Error'} (${f.code || 'error'})`;
  // A failed `join` of an extra room: drop its tab, say why where the user is.
  // (A failure of the URL room is followed by a close; onClose explains it.)
  if (r && !r.joined && f.room !== state.urlRoom &&
      ['username_taken', 'bad_room', 'too_many_rooms'].includes(f.code)) {
    removeRoom(r);
    notice(null, `Could not join #${f.room}: ${text}`, 'error');
    return;
  }
  notice(r || null, text, 'error');
}

const CLOSE_TEXT = { 1001: 'server going away', 1006: 'network error or server unreachable', 1011: 'server error', 1012: 'server restarting' };
// Closes that mean "the server restarts" (a deploy), not a network problem.
const RESTART_CODES = [1001, 1012];

// Close codes by class (docs/PROTOCOL.md, "Close codes").
function shouldReconnect(code) {
  return code === 1001 || code === 1006 || code === 1011 || code === 1012 || code === 1013 ||
    (code >= 4000 && code < 4400);
}

// A line in every room where the conversation was cut: what is said while
// we are away is not shown, and the reader should know where.
function markGap(restart) {
  const at = new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  const text = restart ? `The server restarted at ${at}` : `Connection lost at ${at}`;
  for (const r of state.rooms.values()) {
    const li = el('li', 'divider gap', text);
    li.dataset.testid = 'gap';
    append(r, li);
  }
}

function onClose(ev) {
  state.ws = null;
  if (RESTART_CODES.includes(ev.code)) state.restarted = true;
  if (state.everConnected && !state.lostAt) {
    state.lostAt = Date.now();
    if (!state.signingOut) markGap(RESTART_CODES.includes(ev.code));
  }
  for (const r of state.rooms.values()) { r.joined = false; renderTab(r); }
  if (state.signingOut) return;
  const why = ev.reason || (state.lastError && state.lastError.content) || CLOSE_TEXT[ev.code] || `code ${ev.code}`;
  // After a drop (e.g. network loss) the server may not have noticed our old
  // socket yet, so our own name still looks taken: keep retrying for a while.
  const ghost = ev.code === 4409 && state.everConnected && Date.now() - state.lostAt < GHOST_WINDOW;
  if (shouldReconnect(ev.code) || ghost) return scheduleReconnect(why);
  giveUp(ev.code, why);
}

function scheduleReconnect(why) {
  // Exponential backoff with "equal jitter": half fixed, half random, so that
  // many clients dropped at once do not come back in lockstep.
  const base = Math.min(BACKOFF_MAX, BACKOFF_MIN * 2 ** state.attempt);
  const delay = base / 2 + Math.random() * (base / 2);
  state.attempt++;
  // 1001 "going away" / 1012 "restart" is a deploy, not the user's network:
  // say so, also while the next attempts are refused until it is back.
  if (state.restarted) setStatus('reconnecting', 'The server restarted, reconnecting…');
  else setStatus('reconnecting', `Connection lost (${why}). Reconnecting in ${Math.ceil(delay / 1000)} s…`);
  state.timer = setTimeout(connect, delay);
}

// "Do not reconnect" class: back to the join form with the reason.
function giveUp(code, why) {
  const room = state.urlRoom;
  let msg = `Disconnected: ${why} (close code ${code}).`;
  let field = $('username');
  if (code === 4409) msg = `The name “${state.me}” is already taken in #${room}. Pick another name.`;
  else if (code === 4408) msg = 'Disconnected after a while without messages. Join again to continue.';
  else if (state.lastError && state.lastError.code === 'bad_room') field = $('room');
  else if (code === 4429) msg = `Disconnected for too many errors or messages (${why}). Wait a moment, then join again.`;
  resetChat();
  setStatus('disconnected', 'Disconnected');
  $('room').value = room || $('room').value;
  showFieldError(field, $('join-error'), msg);
  field.focus();
}

function resetChat() {
  clearTimeout(state.timer);
  Object.assign(state, { ws: null, current: null, attempt: 0, timer: 0, everConnected: false, lostAt: 0, lastError: null, restarted: false });
  state.rooms.clear();
  $('messages').textContent = '';
  $('rooms').textContent = '';
  $('users').textContent = '';
  $('chat-view').hidden = true;
  $('join-view').hidden = false;
  $('signout-button').hidden = true;
  $('skip-link').hidden = true;
  $('me').textContent = '';
}

// ---- user actions ----------------------------------------------------------

$('join-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const user = $('username').value.trim();
  const room = $('room').value.trim();
  const err = $('join-error');
  showFieldError($('room'), err, null);
  showFieldError($('username'), err, nameProblem('Username', user, MAX_USER));
  if (!err.hidden) return $('username').focus();
  showFieldError($('room'), err, nameProblem('Room', room, MAX_ROOM));
  if (!err.hidden) return $('room').focus();
  if (!CODECS[$('codec').value]) {
    showFieldError($('codec'), err, 'Protobuf is not available here: web/vendor/protobuf.min.js is missing (make build copies it).');
    return $('codec').focus();
  }
  resetChat();
  state.me = user;
  state.signingOut = false;
  $('me').textContent = `Signed in as ${user}`;
  $('join-view').hidden = true;
  $('chat-view').hidden = false;
  $('signout-button').hidden = false;
  $('skip-link').hidden = false;
  showRoom(addRoom(room));
  connect();
  $('message-input').focus();
});

$('send-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = $('message-input');
  const r = state.current;
  if (!r || !input.value.trim()) return;
  if (!r.joined || !send({ type: 'message', room: r.name, content: input.value })) {
    notice(r, 'Not connected: the message was not sent (it is still in the box).', 'error');
    return;
  }
  input.value = '';
});

$('add-room-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = $('new-room');
  const name = input.value.trim();
  showFieldError(input, $('new-room-error'), nameProblem('Room', name, MAX_ROOM));
  if (nameProblem('Room', name, MAX_ROOM)) return input.focus();
  input.value = '';
  const known = state.rooms.has(name);
  const r = addRoom(name);
  if (!known) send({ type: 'join', room: name }); // when offline, connect() joins it
  showRoom(r);
  $('message-input').focus();
});

$('leave-button').addEventListener('click', () => {
  const r = state.current;
  if (!r || state.rooms.size < 2) return;
  if (r.joined) send({ type: 'leave', room: r.name });
  removeRoom(r);
  $('message-input').focus();
});

$('signout-button').addEventListener('click', () => {
  state.signingOut = true;
  if (state.ws) state.ws.close(1000, 'signed out');
  resetChat();
  setStatus('idle', 'Not connected');
  $('username').focus();
});

$('reconnect-button').addEventListener('click', () => { if (state.timer) connect(); });
// The browser knows when the network is back: do not wait out the backoff.
window.addEventListener('online', () => { if (state.timer) connect(); });

// Alt+ArrowUp / Alt+ArrowDown: previous / next room.
document.addEventListener('keydown', (e) => {
  if (!e.altKey || (e.key !== 'ArrowUp' && e.key !== 'ArrowDown') || !state.current) return;
  const list = [...state.rooms.values()];
  const i = list.indexOf(state.current) + (e.key === 'ArrowDown' ? 1 : -1);
  if (i >= 0 && i < list.length) { e.preventDefault(); showRoom(list[i]); }
});

// ?codec=proto (or json) preselects the encoding.
{
  const wanted = new URLSearchParams(location.search).get('codec');
  if (wanted === 'proto' || wanted === 'json') $('codec').value = wanted;
}
