// The admin dashboard: asks for the token (or takes ?token=), checks it
// once with GET /admin/snapshot, then follows the node's WebSocket feed at
// /admin/feed, which pushes one JSON snapshot a second (docs/OPERATIONS.md).
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const status = (text, state) => { $('status').textContent = text; $('status').dataset.state = state; };
  const rates = []; // the last minute of message rates, for the sparkline
  let retryMs = 1000;

  const fmtBytes = (n) => {
    const units = ['B', 'KiB', 'MiB', 'GiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
  };
  const fmtNum = (v, digits = 0) => (v === null || v === undefined ? '–' : Number(v).toFixed(digits));
  const plugin = (p) => {
    if (!p || p.plugin === 'none') return { text: 'none', cls: '' };
    return { text: `${p.plugin}: ${p.up ? 'up' : 'down'}`, cls: p.up ? 'up' : 'down' };
  };

  function drawSpark() {
    const c = $('spark');
    const ctx = c.getContext('2d');
    ctx.clearRect(0, 0, c.width, c.height);
    if (rates.length < 2) return;
    const max = Math.max(1, ...rates);
    ctx.strokeStyle = getComputedStyle(document.documentElement).getPropertyValue('--accent') || '#3451b2';
    ctx.lineWidth = 2;
    ctx.beginPath();
    rates.forEach((r, i) => {
      const x = (i / 59) * (c.width - 4) + 2;
      const y = c.height - 4 - (r / max) * (c.height - 8);
      if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
    });
    ctx.stroke();
  }

  function show(s) {
    $('node').textContent = `${s.node.id} · nebula ${s.node.version} · ABI ${s.node.abi} · up ${s.node.uptime_s} s`;
    $('connections').textContent = s.connections;
    $('rooms').textContent = s.rooms;
    $('rate').textContent = fmtNum(s.message_rate, 1);
    $('p99').textContent = s.p99_broadcast_ms === null ? '–' : `${fmtNum(s.p99_broadcast_ms, 2)} ms`;
    $('errors').textContent = s.errors_total;
    $('rss').textContent = fmtBytes(s.rss_bytes);
    $('fds').textContent = s.open_fds < 0 ? '?' : `${s.open_fds} / ${s.max_fds}`;
    $('threads').textContent = s.threads;
    for (const k of ['store', 'broker']) {
      const p = plugin(s[k]);
      $(k).textContent = p.text + (k === 'broker' && s.broker.plugin !== 'none' ? ` (${s.broker.other_nodes} other node(s))` : '');
      $(k).className = p.cls;
    }
    const body = $('nodes');
    body.replaceChildren(...s.cluster.nodes.map((n) => {
      const tr = document.createElement('tr');
      for (const v of [n.id + (n.self ? ' (this node)' : ''), n.connections, n.rooms, fmtNum(n.message_rate, 1)]) {
        const td = document.createElement('td');
        td.textContent = v;
        tr.append(td);
      }
      return tr;
    }));
    rates.push(s.message_rate || 0);
    if (rates.length > 60) rates.shift();
    drawSpark();
    $('updated').textContent = `Updated ${new Date(s.ts).toLocaleTimeString()}`;
  }

  function follow(token) {
    status('Connecting…', 'connecting');
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}/admin/feed?token=${encodeURIComponent(token)}`);
    ws.onopen = () => { retryMs = 1000; status('Live', 'live'); };
    ws.onmessage = (ev) => { try { show(JSON.parse(ev.data)); } catch { /* a partial snapshot: wait for the next */ } };
    ws.onclose = (ev) => {
      const why = ev.code === 1001 ? 'the node is shutting down' : 'connection lost';
      status(`Disconnected (${why}); retrying…`, 'error');
      setTimeout(() => start(token), retryMs);
      retryMs = Math.min(retryMs * 2, 15000);
    };
  }

  // Check the token with one request: a 401/403 is told apart from a
  // node that is down, which a WebSocket alone cannot do.
  async function start(token) {
    let res;
    try {
      res = await fetch(`/admin/snapshot?token=${encodeURIComponent(token)}`, { cache: 'no-store' });
    } catch {
      status('The node does not answer; retrying…', 'error');
      setTimeout(() => start(token), retryMs);
      retryMs = Math.min(retryMs * 2, 15000);
      return;
    }
    if (res.status === 401 || res.status === 403) {
      sessionStorage.removeItem('nebula-admin-token');
      $('dashboard').hidden = true;
      $('token-form').hidden = false;
      $('token-error').textContent = res.status === 403 ? 'Wrong token.' : 'A token is needed.';
      status('Not connected', 'error');
      $('token').focus();
      return;
    }
    if (!res.ok) {
      status(`The node answered ${res.status}`, 'error');
      return;
    }
    sessionStorage.setItem('nebula-admin-token', token);
    $('token-form').hidden = true;
    $('dashboard').hidden = false;
    show(await res.json());
    follow(token);
  }

  $('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const token = $('token').value.trim();
    if (token) start(token);
  });

  const fromUrl = new URLSearchParams(location.search).get('token');
  if (fromUrl) history.replaceState(null, '', location.pathname); // keep it out of the address bar
  const token = fromUrl || sessionStorage.getItem('nebula-admin-token');
  if (token) start(token);
  else { $('token-form').hidden = false; $('token').focus(); }
})();
