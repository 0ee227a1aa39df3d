// End-to-end through the load balancer: deployments/local-cluster.sh
// (Redis, three nodes with broker-redis, haproxy), two browser pages on
// different nodes chat in one room. haproxy places a connection by the room
// of its URL, so alice and bob enter through rooms that land on different
// nodes, then both join "lobby" over those connections: lobby has members
// on two nodes, and only the Redis broker brings them together.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { launchBrowser } from '../lib/browser.mjs';
import { Client } from '../lib/client.mjs';
import { makeCluster } from '../lib/cluster.mjs';
import { pluginDir } from '../lib/server.mjs';
import { sleep } from '../lib/util.mjs';

const WAIT = 15000;

async function until(page, what, fn, arg) {
  try {
    await page.waitForFunction(fn, arg, { timeout: WAIT });
  } catch (e) {
    const seen = await page.evaluate(() => ({
      status: document.querySelector('#status')?.textContent,
      room: document.querySelector('#room-title')?.textContent,
      users: [...document.querySelectorAll('#users li')].map((li) => li.dataset.user),
      log: [...document.querySelectorAll('#messages ol:not([hidden]) li')].map((li) => li.textContent),
    })).catch(() => 'page gone');
    throw new Error(`timed out waiting for ${what}; page shows ${JSON.stringify(seen)}\n${e.message}`);
  }
}

const waitUsers = (page, list) => until(page, `users ${list}`,
  (want) => JSON.stringify([...document.querySelectorAll('#users li')].map((li) => li.dataset.user).sort()) === want,
  JSON.stringify([...list].sort()));
const logItem = (page, cls, text) => page.locator(`#messages ol:not([hidden]) li.${cls}`, { hasText: text });

async function connectedPerNode(cluster) {
  return Promise.all(cluster.nodePorts.map(async (port) => {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    return Number(text.match(/^nebula_connections (\d+)$/m)?.[1] ?? NaN);
  }));
}

// The node (0-based) haproxy sends a connection for `room` to: connect one
// probe through it and see which node's connection count rises.
async function nodeOf(cluster, room) {
  const before = await connectedPerNode(cluster);
  const probe = await Client.connect(cluster.wsUrl(room, 'probe'));
  await probe.next('welcome');
  const during = await connectedPerNode(cluster);
  probe.close();
  await probe.waitClose().catch(() => {});
  const i = during.findIndex((n, k) => n > before[k]);
  assert.ok(i >= 0, `no node gained the probe for ${room}: ${before} -> ${during}`);
  // Let the node see the close before the next probe counts.
  for (let t = 0; t < 40 && (await connectedPerNode(cluster))[i] > before[i]; t++) await sleep(25);
  return i;
}

async function enter(page, url, user, room) {
  await page.goto(url);
  await page.fill('#username', user);
  await page.fill('#room', room);
  await page.click('#join-button');
  await until(page, 'connected', () => document.querySelector('#status').dataset.state === 'connected');
}

async function joinRoom(page, room) {
  await page.fill('#new-room', room);
  await page.press('#new-room', 'Enter');
  await until(page, `${room} joined`, (r) => document.querySelector('#room-title').textContent === `#${r}` &&
    document.querySelector(`#rooms button[data-room="${r}"]:not(.pending)`), room);
}

async function send(page, text) {
  await page.fill('#message-input', text);
  await page.press('#message-input', 'Enter');
}

test('browser pages on two nodes chat through haproxy and Redis', { timeout: 120000 }, async () => {
  const plugin = path.join(pluginDir, 'broker-redis.so');
  assert.ok(existsSync(plugin), `${plugin} is not built (plugins/broker-redis)`);
  const cluster = await makeCluster({ nodes: 3, broker: 'broker-redis' });
  let browser;
  try {
    const started = await cluster.run('start');
    assert.equal(started.code, 0, `start failed:\n${started.stdout}\n${started.stderr}`);

    // Two entry rooms that haproxy places on different nodes.
    const home = {};
    for (let k = 0; Object.keys(home).length < 2 && k < 50; k++) {
      const node = await nodeOf(cluster, `entry-${k}`);
      if (!(node in home)) home[node] = `entry-${k}`;
    }
    const [[nodeA, roomA], [nodeB, roomB]] = Object.entries(home);
    assert.ok(roomA && roomB, 'no two entry rooms on different nodes');

    browser = await launchBrowser();
    const pageErrors = [];
    const open = async () => {
      const page = await (await browser.newContext({ viewport: { width: 760, height: 580 } })).newPage();
      page.on('pageerror', (e) => pageErrors.push(String(e)));
      return page;
    };
    const alice = await open();
    const bob = await open();
    await enter(alice, cluster.lbUrl, 'alice', roomA);
    await enter(bob, cluster.lbUrl, 'bob', roomB);
    const counts = await connectedPerNode(cluster);
    assert.equal(counts[nodeA], 1, `alice's node ${nodeA}: ${counts}`);
    assert.equal(counts[nodeB], 1, `bob's node ${nodeB}: ${counts}`);

    await joinRoom(alice, 'lobby');
    await joinRoom(bob, 'lobby');
    // One presence list across the nodes.
    await waitUsers(alice, ['alice', 'bob']);
    await waitUsers(bob, ['alice', 'bob']);

    await send(alice, 'Hello from node A');
    await logItem(bob, 'msg', 'Hello from node A').waitFor({ timeout: WAIT });
    await send(bob, 'Hello back from node B');
    await logItem(alice, 'msg', 'Hello back from node B').waitFor({ timeout: WAIT });
    // One order on both pages.
    const order = (page) => page.evaluate(() =>
      [...document.querySelectorAll('#messages ol:not([hidden]) li.msg .text')].map((e) => e.textContent));
    await until(alice, 'both messages on alice', () => document.querySelectorAll('#messages ol:not([hidden]) li.msg').length >= 2);
    await until(bob, 'both messages on bob', () => document.querySelectorAll('#messages ol:not([hidden]) li.msg').length >= 2);
    assert.deepEqual(await order(alice), await order(bob));
    assert.deepEqual(pageErrors, []);
  } finally {
    if (browser) await browser.close();
    await cluster.dispose();
  }
});
