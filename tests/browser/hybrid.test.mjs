// The hybrid strategy (issue 14) in a real browser: two people chat through the demo with
// `?strategy=hybrid` (messages on SSE, presence and typing on a WebSocket of their own); the
// WebSocket is blocked mid-stream (upgrades refused, every connection dropped) and restored while
// they talk. Every message arrives exactly once and in order, typing from the other person still
// arrives while the WebSocket is blocked, the split comes back, and the demo's panel shows both
// links in its timelines.
//
// It runs on the published package (target/npm/lifeline-client, `cargo xtask npm`), which carries
// the strategy.

import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, test } from 'node:test';
import {
  artifact, checkPrerequisites, demoDir, launchBrowser, openDemo, receivedIn, startServer, until,
} from './harness.mjs';

const CONV = 'hybrid';

let server;
let browser;
let dir;

before(async () => {
  checkPrerequisites();
  dir = demoDir();
  server = await startServer(dir);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Messages on SSE (`degraded` says whether the WebSocket of presence and typing is missing). */
async function onSse(page, who, degraded, what) {
  await until(page, `${who}: ${what}`, (d) => {
    const s = window.demo.client.status;
    const lane = window.demo.panel.ephemeralSegments;
    const ws = lane[lane.length - 1]?.kind === 'websocket';
    return s.state === 'connected' && s.transport === 'sse' && s.degraded === d && ws === !d;
  }, degraded, 30_000);
}

/** `typist` types until `watcher` has seen one more typing event from `who` (bounded). */
async function typingArrives(typist, watcher, who) {
  const before = await watcher.evaluate((w) => window.demo.typing.filter((t) => t.user === w).length, who);
  const deadline = Date.now() + 20_000;
  for (;;) {
    await typist.evaluate((c) => window.demo.client.typing(c), CONV);
    try {
      await until(watcher, `typing from ${who}`, ([w, n]) => window.demo.typing
        .filter((t) => t.user === w).length > n, [who, before], 500);
      return;
    } catch (e) {
      if (Date.now() > deadline) throw e;
    }
  }
}

test('hybrid: the WebSocket blocked and restored mid-stream, nothing lost, typing still arrives', async () => {
  const alice = await openDemo(await browser.newContext(), server.base, 'alice', CONV, { strategy: 'hybrid' });
  const bob = await openDemo(await browser.newContext(), server.base, 'bob', CONV, { strategy: 'hybrid' });
  await onSse(alice, 'alice', false, 'split: messages on SSE, typing on the WebSocket');
  await onSse(bob, 'bob', false, 'split: messages on SSE, typing on the WebSocket');
  await typingArrives(bob, alice, 'bob');

  const expected = [];
  const acks = [];
  const chat = (page, who, n) => {
    for (let i = 0; i < n; i++) {
      const body = `${who} ${expected.filter((b) => b.startsWith(who)).length + 1}`;
      expected.push(body);
      acks.push(page.evaluate(([c, b]) => window.demo.client.send(c, b).then((a) => a.seq), [CONV, body]));
    }
  };
  chat(alice, 'alice', 5);
  chat(bob, 'bob', 5);

  // The WebSocket is blocked: upgrades refused, every connection dropped (SSE resumes from its
  // cursor); what they send meanwhile waits in the outbox.
  await server.faults({ refuse_ws: true });
  await server.dropAll();
  chat(alice, 'alice', 5);
  chat(bob, 'bob', 5);
  await onSse(alice, 'alice', true, 'everything on SSE');
  await onSse(bob, 'bob', true, 'everything on SSE');
  chat(alice, 'alice', 5);
  // Typing still arrives: over /v1/send, then on alice's SSE stream (carry=all).
  await typingArrives(bob, alice, 'bob');

  // Restored: the WebSocket comes back on its own backoff and the split with it.
  await server.faults({ refuse_ws: false });
  await onSse(alice, 'alice', false, 'the split restored');
  await onSse(bob, 'bob', false, 'the split restored');
  chat(bob, 'bob', 5);
  await typingArrives(bob, alice, 'bob');
  await alice.screenshot({ path: artifact('demo-hybrid.png'), fullPage: true });

  const seqs = await Promise.all(acks);
  assert.equal(new Set(seqs).size, seqs.length, 'every send stored once');
  for (const [who, page] of [['alice', alice], ['bob', bob]]) {
    await until(page, `${who} to receive all ${expected.length} messages`, (n) => window.demo.received
      .filter((m) => m.conversation === 'hybrid').length >= n, expected.length);
    const got = await receivedIn(page, CONV);
    assert.deepEqual([...got].sort(), [...expected].sort(), `${who} got every message exactly once`);
    for (const sender of ['alice', 'bob']) {
      const own = (list) => list.filter((b) => b.startsWith(sender));
      assert.deepEqual(own(got), own(expected), `${who} got ${sender}'s messages in order`);
    }
    // Messages never left SSE; the panel's second timeline shows the WebSocket's trip.
    const transports = await page.evaluate(() => window.demo.states
      .filter((s) => s.state === 'connected').map((s) => s.transport));
    assert.deepEqual([...new Set(transports)], ['sse'], `${who}'s messages transports`);
    const lane = await page.evaluate(() => window.demo.panel.ephemeralSegments.map((s) => s.kind));
    const trip = lane.filter((k, i) => i === 0 || k !== lane[i - 1]);
    assert.deepEqual(trip.slice(-3), ['websocket', 'down', 'websocket'], `${who}'s ephemeral timeline ${trip.join(' → ')}`);
    assert.deepEqual(page.errors, []);
  }
});
