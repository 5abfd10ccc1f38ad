// The browser benchmark (`cargo xtask bench browser`; not part of the tests): Chromium and the
// lifeline-server binary on loopback. Prints, for the same exchanges with the same server in the
// same run, @lifeline/client against a raw browser WebSocket speaking the protocol by hand:
//   - send → ack round trip (one tab), p50/p99, and the ratio;
//   - a message to another tab (send in one, `message` in the other), p50/p99, and the ratio;
// then the time from page load to `connected`, and from page load to the first message when the
// WebSocket is black-holed, on a first visit and on a visit where the working rung is remembered.
// Bounded: ROUNDS exchanges of each kind, a few page loads.

import { cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HERE, PACKAGE, checkPrerequisites, launchBrowser, startServer } from './harness.mjs';

const ROUNDS = Number(process.env.ROUNDS ?? 400);
const LOADS = 5;
const CONV = 'bench';

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const fmt = (x) => `${x.toFixed(2)} ms`;
const row = (name, sdk, raw) => {
  const [s50, s99, r50, r99] = [pct(sdk, 50), pct(sdk, 99), pct(raw, 50), pct(raw, 99)];
  console.log(`${name.padEnd(26)} sdk p50 ${fmt(s50)} p99 ${fmt(s99)} | raw p50 ${fmt(r50)} p99 ${fmt(r99)} | ratio p50 ${(s50 / r50).toFixed(2)} p99 ${(s99 / r99).toFixed(2)}`);
};

function pageDir() {
  const dir = mkdtempSync(join(tmpdir(), 'lifeline-bench-'));
  cpSync(join(HERE, 'bench-page'), dir, { recursive: true });
  cpSync(PACKAGE, join(dir, 'pkg'), { recursive: true });
  return dir;
}

async function open(ctx, base) {
  const page = await ctx.newPage();
  await page.goto(`${base}/index.html`);
  await page.waitForFunction(() => typeof window.sdk === 'function', null, { timeout: 10_000 });
  return page;
}

/** Interleaves SDK and raw rounds so that both see the same machine load. */
async function roundTrips(page) {
  const sdk = [];
  const raw = [];
  for (let done = 0; done < ROUNDS; done += 50) {
    sdk.push(...await page.evaluate(() => window.roundTrips('sdk', 50)));
    raw.push(...await page.evaluate(() => window.roundTrips('raw', 50)));
  }
  return { sdk, raw };
}

/** Sends `ROUNDS` messages from `a` to `b`, one at a time, timing each from send to delivery. */
async function toOtherTab(a, b, side) {
  const out = [];
  for (let i = 0; i < ROUNDS; i++) {
    const body = `tab-${side}-${i}`;
    await b.evaluate(([s, x]) => { window.arrival = window.bench[s].received(x); }, [side, body]);
    const sentAt = await a.evaluate(([s, x]) => {
      const t = performance.timeOrigin + performance.now();
      window.bench[s].send(x);
      return t;
    }, [side, body]);
    const at = await b.evaluate(() => window.arrival);
    out.push(at - sentAt);
  }
  return out;
}

async function loadTimes(browser, base, server, { blackhole }) {
  const firstVisit = [];
  const remembered = [];
  const transports = new Set();
  for (let i = 0; i < LOADS; i++) {
    if (blackhole) await server.faults({ blackhole_ws: true });
    const ctx = await browser.newContext();
    for (const into of [firstVisit, remembered]) {
      const page = await open(ctx, base);
      const t = await page.evaluate(async ([u, c]) => {
        const s = await window.sdk(u, c);
        await s.send('hello');
        await s.first;
        return { ...s.timings, transport: s.client.status.transport };
      }, [`loader${i}`, CONV]);
      into.push(blackhole ? t.firstMessageAt : t.connectedAt);
      transports.add(t.transport);
      await page.close();
    }
    await ctx.close();
    if (blackhole) await server.faults({ blackhole_ws: false });
  }
  return { firstVisit, remembered, transports: [...transports].join('/') };
}

checkPrerequisites();
const server = await startServer(pageDir(), ['--rate-per-sec', '100000', '--rate-burst', '100000']);
const browser = await launchBrowser();
try {
  const ctxA = await browser.newContext();
  const ctxB = await browser.newContext();
  const a = await open(ctxA, server.base);
  const b = await open(ctxB, server.base);
  for (const [page, user] of [[a, 'alice'], [b, 'bob']]) {
    await page.evaluate(async ([u, c]) => {
      window.bench.sdk = await window.sdk(u, c);
      window.bench.raw = await window.raw(u, c);
    }, [user, CONV]);
  }
  console.log(`browser benchmark: Chromium, lifeline-server on loopback, ${ROUNDS} exchanges each, SDK and raw WebSocket interleaved`);
  // Warm up both paths (JIT, connection).
  await a.evaluate(() => Promise.all([window.roundTrips('sdk', 50), window.roundTrips('raw', 50)]));
  const rt = await roundTrips(a);
  row('send → ack', rt.sdk, rt.raw);
  // The other tab receives both its own SDK's and its raw socket's copies; each side times its own.
  const tabSdk = await toOtherTab(a, b, 'sdk');
  const tabRaw = await toOtherTab(a, b, 'raw');
  row('message to another tab', tabSdk, tabRaw);
  await ctxA.close();
  await ctxB.close();

  const plain = await loadTimes(browser, server.base, server, { blackhole: false });
  console.log(`page load → connected       p50 ${fmt(pct(plain.firstVisit, 50))} (first visit), ${fmt(pct(plain.remembered, 50))} (second visit), ${LOADS} loads each`);
  const bh = await loadTimes(browser, server.base, server, { blackhole: true });
  console.log(`WebSocket black-holed: page load → first message p50 ${fmt(pct(bh.firstVisit, 50))} (first visit), ${fmt(pct(bh.remembered, 50))} (rung remembered), ${LOADS} loads each, on ${bh.transports}`);
} finally {
  await browser.close();
  await server.stop();
}
