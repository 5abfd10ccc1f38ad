// Two people chat through the demo in two browser contexts: messages both ways, presence, typing,
// and scrolling back through history page by page. Also the package's typed errors.
//
// Only chat behaviour is tested here; transport trouble is in ladder.test.mjs and lifecycle.test.mjs.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  openDemo, receivedIn, say, until, withDemoServerAndBrowser,
} from './harness.mjs';

let server;
let browser;

withDemoServerAndBrowser((s, b) => {
  server = s;
  browser = b;
});

test('two contexts chat, see each other present and typing', async () => {
  const alice = await openDemo(await browser.newContext(), server.base, 'alice', 'general');
  const bob = await openDemo(await browser.newContext(), server.base, 'bob', 'general');

  await until(alice, 'alice to see bob present', () => document.querySelector('#presence').textContent.includes('bob'));
  await until(bob, 'bob to see alice present', () => document.querySelector('#presence').textContent.includes('alice'));

  await say(alice, 'hi bob');
  await until(bob, 'bob to get the message', () => document.querySelector('#message-list').textContent.includes('hi bob'));

  await bob.type('#text', 'hel');
  await until(alice, 'alice to see bob typing', () => document.querySelector('#typing').textContent.includes('bob is typing'));
  await bob.fill('#text', 'hello alice');
  await bob.press('#text', 'Enter');
  await until(alice, 'alice to get the reply', () => document.querySelector('#message-list').textContent.includes('hello alice'));
  // Bob's own reply comes back to him on his stream at about the same time as to alice: wait for
  // it rather than race it (seen missing on a loaded machine).
  await until(bob, 'bob to get his own reply back', () => window.demo.received.some((m) => m.body === 'hello alice'));

  for (const page of [alice, bob]) {
    assert.deepEqual(await receivedIn(page, 'general'), ['hi bob', 'hello alice']);
    assert.deepEqual(page.errors, []);
  }
  // Acknowledged bubbles carry their sequence number; none is left pending.
  await until(alice, 'alice\'s bubble to be acknowledged', () => document.querySelectorAll('#message-list .pending').length === 0);

  // Switching to another conversation and back (subscribing again) works.
  await alice.fill('#conv', 'elsewhere');
  await alice.click('#join');
  await until(alice, 'alice to join #elsewhere', () => document.querySelector('#chat-title').textContent.startsWith('#elsewhere')
    && document.querySelector('#presence').textContent.includes('(you)'));
  await alice.fill('#conv', 'general');
  await alice.click('#join');
  await until(alice, 'alice to be back in #general with its history', () => document.querySelector('#message-list').textContent.includes('hello alice'));

  await bob.context().close();
  await until(alice, 'alice to see bob leave', () => !document.querySelector('#presence').textContent.includes('bob'));
  await alice.context().close();
});

test('history scrolls back page by page, without gaps or duplicates', async () => {
  const ctx = await browser.newContext();
  const writer = await openDemo(ctx, server.base, 'carol', 'archive');
  const total = 45;
  const sent = await writer.evaluate(async (n) => {
    const acks = [];
    for (let i = 1; i <= n; i++) acks.push(window.demo.client.send('archive', `old ${i}`));
    return (await Promise.all(acks)).map((a) => a.seq);
  }, total);
  assert.equal(sent.length, total);
  await writer.close();

  const reader = await openDemo(ctx, server.base, 'carol', 'archive');
  const shown = () => reader.evaluate(() => document.querySelectorAll('#message-list [data-seq]').length);
  await until(reader, 'the newest page', () => document.querySelectorAll('#message-list [data-seq]').length === 20);
  await reader.click('#older');
  // A page lands above the view; if the view is still near the top, the next one follows by itself.
  await until(reader, 'the second page', () => document.querySelectorAll('#message-list [data-seq]').length >= 40);
  for (let i = 0; i < 5 && (await shown()) < total; i++) {
    await reader.evaluate(() => {
      document.querySelector('#messages').scrollTop = 0;
      document.querySelector('#messages').dispatchEvent(new Event('scroll'));
    });
    await until(reader, 'another page', (n) => document.querySelectorAll('#message-list [data-seq]').length > n
      || document.querySelector('#older').hidden, await shown());
  }
  assert.equal(await shown(), total);
  const bodies = await reader.evaluate(() => [...document.querySelectorAll('#message-list [data-seq] .body')].map((b) => b.textContent));
  assert.deepEqual(bodies, Array.from({ length: total }, (_, i) => `old ${i + 1}`));
  await until(reader, 'the load-older button to hide', () => document.querySelector('#older').hidden);
  await ctx.close();
});

test('the package rejects with typed errors', async () => {
  const ctx = await browser.newContext();
  const page = await openDemo(ctx, server.base, 'dave', 'general');
  const codes = await page.evaluate(async () => {
    const c = window.demo.client;
    const code = (p) => p.then(() => 'resolved', (e) => `${e.name}:${e.code}`);
    return {
      tooLarge: await code(c.send('general', 'x'.repeat(20_000))),
      badConversation: await code(c.send('not a valid id!', 'hi')),
      forbiddenHistory: await code(c.history('someone-elses', { limit: 5 })),
    };
  });
  assert.deepEqual(codes, {
    tooLarge: 'LifelineError:too_large',
    badConversation: 'LifelineError:invalid_conversation',
    forbiddenHistory: 'LifelineError:forbidden',
  });
  await ctx.close();
});

test('two clients of one user with the same seed send under different random ids', async () => {
  const ctx = await browser.newContext();
  const page = await openDemo(ctx, server.base, 'erin', 'general');
  const acks = await page.evaluate(async () => {
    const { Client } = await import('./pkg/lifeline.js');
    const token = async () => (await (await fetch('/v1/dev/token?user=erin&ttl_secs=600')).json()).token;
    const twins = [0, 1].map(() => new Client({ url: location.origin, getToken: token, seed: 7 }));
    const acks = [];
    for (const [i, c] of twins.entries()) acks.push(await c.send('general', `twin ${i}`));
    for (const c of twins) c.close();
    return acks;
  });
  const uuidV4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
  for (const ack of acks) assert.match(ack.id, uuidV4);
  assert.notEqual(acks[0].id, acks[1].id);
  assert.notEqual(acks[0].seq, acks[1].seq);
  // Both are stored and delivered (before, the second was acked with the first one's seq).
  await until(page, 'both twins\' messages', () => window.demo.received.filter((m) => m.body.startsWith('twin ')).length >= 2);
  const got = await page.evaluate(() => window.demo.received.filter((m) => m.body.startsWith('twin ')));
  assert.deepEqual(got.map((m) => [m.body, m.seq, m.id]), [['twin 0', acks[0].seq, acks[0].id], ['twin 1', acks[1].seq, acks[1].id]]);
  await ctx.close();
});
