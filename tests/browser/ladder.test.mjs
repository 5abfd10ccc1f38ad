// The transport ladder in a real browser: WebSocket blocked → Server-Sent Events, SSE blocked too →
// long polling, everything healed → back up to WebSocket, with two people chatting throughout and
// every message delivered exactly once and in order on both sides. Saves a screenshot of the demo
// mid-session (tests/artifacts/).
//
// Only the ladder is tested here; page lifecycle and tokens are in lifecycle.test.mjs.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  artifact, openDemo, receivedIn, until, withDemoServerAndBrowser,
} from './harness.mjs';

let server;
let browser;

withDemoServerAndBrowser((s, b) => {
  server = s;
  browser = b;
});

const transportOf = (page) => page.evaluate(() => {
  const s = window.demo.client.status;
  return s.state === 'connected' ? s.transport : s.state;
});

/** Sends without waiting for the ack; the returned promise settles with the ack. */
function send(page, body) {
  return page.evaluate((b) => window.demo.client.send('ladder', b).then((a) => a.seq), body);
}

async function onTransport(page, who, transport, timeout = 30_000) {
  await until(page, `${who} to be connected on ${transport}`, (t) => {
    const s = window.demo.client.status;
    return s.state === 'connected' && s.transport === t;
  }, transport, timeout);
}

test('WebSocket → SSE → long polling → WebSocket, every message exactly once and in order', async () => {
  const alice = await openDemo(await browser.newContext(), server.base, 'alice', 'ladder');
  const bob = await openDemo(await browser.newContext(), server.base, 'bob', 'ladder');
  assert.equal(await transportOf(alice), 'websocket');
  const expected = [];
  const acks = [];
  const chat = (page, body) => {
    expected.push(body);
    acks.push(send(page, body));
  };

  chat(alice, 'on websocket 1');
  chat(bob, 'on websocket 2');

  // Block WebSocket and drop everyone: both step down to SSE; what they send meanwhile waits.
  await server.faults({ refuse_ws: true });
  await server.dropAll();
  chat(alice, 'while stepping down 1');
  chat(bob, 'while stepping down 2');
  await onTransport(alice, 'alice', 'sse');
  await onTransport(bob, 'bob', 'sse');
  chat(alice, 'on sse 1');
  chat(bob, 'on sse 2');

  // Block SSE too: long polling.
  await server.faults({ refuse_sse: true });
  await server.dropAll();
  chat(bob, 'while stepping down again');
  await onTransport(alice, 'alice', 'long-poll');
  await onTransport(bob, 'bob', 'long-poll');
  chat(alice, 'on long polling 1');
  chat(bob, 'on long polling 2');
  await Promise.all(acks);
  await until(alice, 'alice to catch up on long polling', (n) => window.demo.received.length >= n, expected.length);
  await alice.screenshot({ path: artifact('demo-on-long-polling.png'), fullPage: true });

  // Heal: the background probes climb back to WebSocket.
  await server.faults({ refuse_ws: false, refuse_sse: false });
  await onTransport(alice, 'alice', 'websocket', 45_000);
  await onTransport(bob, 'bob', 'websocket', 45_000);
  chat(alice, 'back on websocket 1');
  chat(bob, 'back on websocket 2');

  const seqs = await Promise.all(acks);
  assert.equal(new Set(seqs).size, seqs.length, 'every send stored once');
  for (const [who, page] of [['alice', alice], ['bob', bob]]) {
    await until(page, `${who} to receive all ${expected.length} messages`, (n) => window.demo.received
      .filter((m) => m.conversation === 'ladder').length >= n, expected.length);
    const got = await receivedIn(page, 'ladder');
    assert.deepEqual([...got].sort(), [...expected].sort(), `${who} got every message exactly once`);
    // Each sender's messages arrive in the order they were sent.
    for (const prefix of ['1', '2']) {
      const own = (list) => list.filter((b) => b.endsWith(` ${prefix}`) || (prefix === '2' && b === 'while stepping down again'));
      assert.deepEqual(own(got), own(expected), `${who} got sender ${prefix}'s messages in order`);
    }
    // The timeline shows the whole trip.
    const kinds = await page.evaluate(() => window.demo.panel.segments.map((s) => s.kind).filter((k) => k !== 'down'));
    const trip = kinds.filter((k, i) => i === 0 || k !== kinds[i - 1]);
    const order = ['websocket', 'sse', 'long-poll', 'websocket'];
    let at = 0;
    for (const k of trip) if (k === order[at]) at += 1;
    assert.equal(at, order.length, `${who}'s timeline ${trip.join(' → ')} contains ${order.join(' → ')}`);
    assert.deepEqual(page.errors, []);
  }
  // The rung that worked last is remembered for this server.
  const remembered = await alice.evaluate(() => Object.entries(localStorage).filter(([k]) => k.startsWith('lifeline:transport:')));
  assert.deepEqual(remembered.map(([, v]) => v), ['websocket']);
});

test('the rung that worked is remembered: a reload starts on it, not on a blocked WebSocket', async () => {
  await server.faults({ refuse_ws: true });
  const ctx = await browser.newContext();
  const first = await openDemo(ctx, server.base, 'frank', 'ladder');
  await onTransport(first, 'frank', 'sse');
  const remembered = await first.evaluate(() => Object.entries(localStorage)
    .filter(([k]) => k.startsWith('lifeline:transport:')).map(([, v]) => v));
  assert.deepEqual(remembered, ['sse']);
  await first.close();

  const again = await openDemo(ctx, server.base, 'frank', 'ladder');
  const tried = await again.evaluate(() => window.demo.states.filter((s) => s.state === 'connecting').map((s) => s.transport));
  assert.equal(tried[0], 'sse', `the first attempt after the reload (attempts: ${tried.join(', ')})`);
  await server.faults({ refuse_ws: false });
  // Still climbs back once WebSocket works again.
  await onTransport(again, 'frank', 'websocket', 45_000);
  await ctx.close();
});

test('a black-holed WebSocket (upgrades, then silence) falls back instead of hanging', async () => {
  const ctx = await browser.newContext();
  const carol = await openDemo(ctx, server.base, 'carol', 'ladder');
  await server.faults({ blackhole_ws: true });
  await server.dropAll();
  await until(carol, 'carol to leave the silent WebSocket', () => {
    const s = window.demo.client.status;
    return s.state === 'connected' && s.transport !== 'websocket';
  }, undefined, 30_000);
  const seq = await send(carol, 'through the fallback');
  assert.ok(seq > 0);
  await server.faults({ blackhole_ws: false });
  await ctx.close();
});
