// The page and the network as the browser really reports them: going offline and back online
// (context.setOffline), a background tab frozen and resumed (CDP Page.setWebLifecycleState), and
// tokens that expire mid-session (refreshed through getToken, on WebSocket and on SSE).
//
// Only lifecycle and credentials are tested here; the ladder is in ladder.test.mjs.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  openDemo, receivedIn, until, withDemoServerAndBrowser,
} from './harness.mjs';

let server;
let browser;

withDemoServerAndBrowser((s, b) => {
  server = s;
  browser = b;
});

const send = (page, conv, body) => page.evaluate(([c, b]) => window.demo.client.send(c, b).then((a) => a.seq), [conv, body]);
const connected = () => window.demo.client.status.state === 'connected';

test('offline pauses the client, online brings it back, and what was sent offline arrives once', async () => {
  const aliceCtx = await browser.newContext();
  const alice = await openDemo(aliceCtx, server.base, 'alice', 'net');
  const bob = await openDemo(await browser.newContext(), server.base, 'bob', 'net');

  await aliceCtx.setOffline(true);
  await until(alice, 'alice to notice she is offline', () => {
    const s = window.demo.client.status;
    return s.state === 'reconnecting' && s.nextRetryAt === null;
  });
  const queued = send(alice, 'net', 'written offline');
  await until(alice, 'the message to wait in the outbox', () => window.demo.client.pending === 1);

  await aliceCtx.setOffline(false);
  await until(alice, 'alice to reconnect', connected);
  assert.ok((await queued) > 0);
  await until(bob, 'bob to get the message', () => window.demo.received.some((m) => m.body === 'written offline'));
  await send(bob, 'net', 'welcome back');
  await until(alice, 'alice to get the reply', () => window.demo.received.some((m) => m.body === 'welcome back'));
  assert.deepEqual(await receivedIn(bob, 'net'), ['written offline', 'welcome back']);
  assert.deepEqual(await receivedIn(alice, 'net'), ['written offline', 'welcome back']);
  await aliceCtx.close();
  await bob.context().close();
});

test('a frozen background tab catches up exactly once when it resumes', async () => {
  const aliceCtx = await browser.newContext();
  const alice = await openDemo(aliceCtx, server.base, 'alice', 'frozen');
  const bob = await openDemo(await browser.newContext(), server.base, 'bob', 'frozen');
  const cdp = await aliceCtx.newCDPSession(alice);

  await cdp.send('Page.setWebLifecycleState', { state: 'frozen' });
  const frozenAt = Date.now();
  for (const body of ['while frozen 1', 'while frozen 2', 'while frozen 3']) await send(bob, 'frozen', body);
  // Stay frozen long enough for the timers to come back late (a clock jump to the driver).
  await until(bob, 'eight seconds of freeze', (t) => Date.now() > t, frozenAt + 8_000, 15_000);
  await cdp.send('Page.setWebLifecycleState', { state: 'active' });

  await until(alice, 'alice to catch up', () => window.demo.received.filter((m) => m.conversation === 'frozen').length >= 3);
  await until(alice, 'alice to be connected', connected);
  await send(bob, 'frozen', 'after the thaw');
  await until(alice, 'alice to get live messages again', () => window.demo.received.some((m) => m.body === 'after the thaw'));
  assert.deepEqual(await receivedIn(alice, 'frozen'), ['while frozen 1', 'while frozen 2', 'while frozen 3', 'after the thaw']);
  assert.deepEqual(alice.errors, []);
  await aliceCtx.close();
  await bob.context().close();
});

test('an expired token is refreshed through getToken, on WebSocket and on SSE', async () => {
  const ctx = await browser.newContext();
  // Development tokens that live three seconds.
  const page = await openDemo(ctx, server.base, 'erin', 'tokens', { ttl: '3' });
  assert.equal(await page.evaluate(() => window.demo.tokens), 1);

  for (const [round, transport] of [[1, 'websocket'], [2, 'sse']]) {
    if (transport === 'sse') await server.faults({ refuse_ws: true });
    const issued = Date.now();
    await until(page, 'the token to expire', (t) => Date.now() > t, issued + 4_000, 10_000);
    await server.dropAll();
    await until(page, `a fresh token (round ${round})`, (n) => window.demo.tokens > n, round);
    await until(page, `erin to reconnect on ${transport}`, (t) => {
      const s = window.demo.client.status;
      return s.state === 'connected' && s.transport === t;
    }, transport, 30_000);
    assert.ok((await send(page, 'tokens', `after refresh ${round}`)) > 0);
  }
  await server.faults({ refuse_ws: false });
  assert.deepEqual(await receivedIn(page, 'tokens'), ['after refresh 1', 'after refresh 2']);
  await ctx.close();
});
