// The browser half of the parity suite, and the one normalizer both halves' traces go through.
//
// `playInBrowser(name, browser)` plays tests/parity/<name>.json (format in tests/parity/README.md)
// against @lifeline/client in Chromium and a real lifeline-server binary configured as the native
// half configures its in-process server, and returns the raw trace (the same shape as
// target/parity/<name>.native.json, written by `cargo test -p lifeline-tests --test parity`).
// `normalize` keeps what must be equal in both worlds: the sequence of states with their transport
// and the kind of their cause (not times, attempt numbers or texts), the bodies delivered in
// order, and the number of tokens fetched.

import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PACKAGE, ROOT, HERE, startServer, until } from './harness.mjs';

export const CONVERSATION = 'parity';
export const SCRIPTS = join(ROOT, 'tests/parity');
export const TRACES = join(ROOT, 'target/parity');
const DEFAULT_WAIT_MS = 20_000;

/** The words of the causes a `wait` step may name (a subset of `causeKind`'s). */
const CAUSE_WORDS = {
  'open-failed': ' refused with HTTP \\d+| failed to open',
  'transport-lost': ' lost: ',
  'heartbeat-timeout': 'went silent past its deadline',
  'going-away': '^the server is going away',
};

/** The kind of a cause, from the core's own words for it (the same text in both worlds). */
export function causeKind(text) {
  const kinds = [
    [/^the app asked to connect/, 'app-connect'],
    [/^the app closed/, 'app-close'],
    [/^the server said hello/, 'opened'],
    [/^moved up from/, 'upgraded'],
    [/^retry due/, 'retry-due'],
    // One kind with or without an HTTP status: a browser's WebSocket never sees the status of a
    // refused upgrade, a native client does.
    [/ refused with HTTP \d+| failed to open/, 'open-failed'],
    [/ lost: /, 'transport-lost'],
    [/opened but the server never spoke/, 'first-frame-timeout'],
    [/did not open in time/, 'connect-timeout'],
    [/went silent past its deadline/, 'heartbeat-timeout'],
    [/^the server is going away/, 'going-away'],
    [/^credentials rejected/, 'auth-rejected'],
    [/^no token/, 'token-unavailable'],
    [/^the server asked to wait/, 'server-busy'],
    [/another protocol version/, 'unsupported-version'],
    [/retry limit/, 'retry-limit'],
    [/network is offline/, 'offline'],
    [/network is back online/, 'online'],
    [/^resumed after/, 'resumed'],
  ];
  for (const [re, kind] of kinds) if (re.test(text ?? '')) return kind;
  return `unknown (${text})`;
}

/**
 * What must be equal in both worlds. Within each stretch that ends in a connection, an entry seen
 * before in the stretch is left out: how many times a refused rung is retried depends on timers
 * and jitter, not on the SDK.
 */
export function normalize(raw) {
  const states = [];
  let seen = new Set();
  for (const s of raw.states) {
    const entry = `${s.state}${s.transport ? ` ${s.transport}` : ''} <- ${causeKind(s.cause)}`;
    if (seen.has(entry)) continue;
    seen.add(entry);
    states.push(entry);
    if (s.state === 'connected') seen = new Set();
  }
  return { states, messages: raw.messages, tokens: raw.tokens };
}

/** The raw trace the native half wrote for `name`; fails with the command that writes it. */
export function nativeTrace(name, scriptText) {
  const file = join(TRACES, `${name}.native.json`);
  let trace;
  try {
    trace = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`no native trace for ${name} (${e.message}): run \`cargo test -p lifeline-tests --test parity\` first (cargo xtask test does)`);
  }
  if (trace.script !== scriptText) {
    throw new Error(`${file} was written for another version of tests/parity/${name}.json: run \`cargo test -p lifeline-tests --test parity\` again`);
  }
  return trace;
}

export function readScript(name) {
  const text = readFileSync(join(SCRIPTS, `${name}.json`), 'utf8');
  return { text, script: JSON.parse(text) };
}

/** A folder the server serves: the parity page with the package in pkg/. */
function pageDir() {
  const dir = mkdtempSync(join(tmpdir(), 'lifeline-parity-'));
  cpSync(join(HERE, 'parity-page'), dir, { recursive: true });
  cpSync(PACKAGE, join(dir, 'pkg'), { recursive: true });
  return dir;
}

/** The server flags matching the native half's in-process configuration (tests/src/parity.rs). */
function serverArgs(script) {
  const s = script.server ?? {};
  return ['--heartbeat-ms', String(s.heartbeat_ms ?? 500),
    '--going-away-retry-ms', String(s.going_away_retry_ms ?? 300),
    '--rate-per-sec', String(s.rate_per_sec ?? 10_000),
    '--rate-burst', String(s.rate_burst ?? 10_000)];
}

async function openParticipant(browser, base, user, options, ttl) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  await page.goto(`${base}/index.html`);
  await page.waitForFunction(() => typeof window.startParity === 'function', null, { timeout: 10_000 });
  await page.evaluate(([o, u, c, t]) => window.startParity(o, u, c, t), [options, user, CONVERSATION, ttl]);
  return { ctx, page };
}

/** Plays tests/parity/<name>.json in Chromium; returns the raw trace and writes it next to the native one. */
export async function playInBrowser(name, browser) {
  const { text, script } = readScript(name);
  // A scenario may override some options (`client`).
  const options = { ...JSON.parse(readFileSync(join(SCRIPTS, 'client.json'), 'utf8')), ...script.client };
  const dir = pageDir();
  const dataDir = mkdtempSync(join(tmpdir(), 'lifeline-parity-data-'));
  const args = serverArgs(script);
  let server = await startServer(dir, args, { dataDir });
  const ttl = script.token_ttl_secs ?? 3600;
  const bob = await openParticipant(browser, server.base, 'bob', options, 3600);
  for (const step of script.before_connect ?? []) await server.faults(step.set);
  const ana = await openParticipant(browser, server.base, 'ana', options, ttl);
  const cdp = await ana.ctx.newCDPSession(ana.page);
  const page = ana.page;
  try {
    let mark = 0;
    for (const [i, step] of script.steps.entries()) {
      const what = `${name}.json: step ${i}: ${JSON.stringify(step)}`;
      const count = step.count ?? 1;
      const prefix = step.prefix ?? 'm';
      if (step.do !== 'wait') mark = await page.evaluate(() => window.parity.trace.states.length);
      switch (step.do) {
        case 'faults': await server.faults(step.set); break;
        case 'drop': await server.dropAll(); break;
        case 'send':
          await page.evaluate(([c, p, n]) => {
            for (let k = 1; k <= n; k++) window.parity.sends.push(window.parity.client.send(c, `${p}-${k}`));
          }, [CONVERSATION, prefix, count]);
          break;
        case 'send_other':
          await bob.page.evaluate(async ([c, p, n]) => {
            for (let k = 1; k <= n; k++) await window.parity.client.send(c, `${p}-${k}`);
          }, [CONVERSATION, prefix, count]);
          break;
        case 'wait': await wait(page, step, mark, what); break;
        // A duration the scenario is about (a token's life, a freeze), not a race being papered over.
        case 'pause_ms': await new Promise((ok) => { setTimeout(ok, step.ms); }); break;
        case 'offline': await ana.ctx.setOffline(true); break;
        case 'online': await ana.ctx.setOffline(false); break;
        case 'freeze': await cdp.send('Page.setWebLifecycleState', { state: 'frozen' }); break;
        case 'thaw': await cdp.send('Page.setWebLifecycleState', { state: 'active' }); break;
        case 'hide': await page.evaluate(() => window.setHidden(true)); break;
        case 'show': await page.evaluate(() => window.setHidden(false)); break;
        case 'stop_server': await server.stop(); break;
        case 'start_server': server = await startServer(dir, args, { port: server.port, dataDir }); break;
        default: throw new Error(`${what}: unknown action`);
      }
    }
    await page.evaluate(() => Promise.all(window.parity.sends));
    await bob.page.evaluate(() => window.parity.client.closeGracefully());
    await page.evaluate(() => window.parity.client.closeGracefully());
    const trace = await page.evaluate(() => window.parity.trace);
    if (page.errors.length) throw new Error(`errors in the page: ${page.errors.join('; ')}`);
    const raw = { side: 'browser', script: text, ...trace };
    mkdirSync(TRACES, { recursive: true });
    writeFileSync(join(TRACES, `${name}.browser.json`), JSON.stringify(raw, null, 2));
    return raw;
  } finally {
    await ana.ctx.close();
    await bob.ctx.close();
    await server.stop();
  }
}

async function wait(page, step, mark, what) {
  const timeout = step.within_ms ?? DEFAULT_WAIT_MS;
  const states = (p) => p.evaluate(() => window.parity.trace.states);
  const ok = {
    connected: ([m, t]) => window.parity.trace.states.slice(m).some((s) => s.state === 'connected' && s.transport === t),
    is_connected: ([, t]) => {
      const s = window.parity.trace.states.at(-1);
      return s?.state === 'connected' && s.transport === t;
    },
    state: ([m, t]) => window.parity.trace.states.slice(m).some((s) => s.state === t),
    cause: ([m, re]) => window.parity.trace.states.slice(m).some((s) => new RegExp(re).test(s.cause)),
    messages: ([, n]) => window.parity.trace.messages.length >= n,
    tokens: ([, n]) => window.parity.trace.tokens >= n,
  };
  const key = Object.keys(ok).find((k) => k in step);
  // A cause kind is matched in the page by the words the core uses for it.
  const arg = key === 'cause' ? CAUSE_WORDS[step.cause] : step[key];
  if (key === 'cause' && !arg) throw new Error(`${what}: no words known for cause kind ${step.cause}`);
  if (!key) throw new Error(`${what}: a wait needs connected, is_connected, cause, state, messages or tokens`);
  try {
    await until(page, what, ok[key], [mark, arg], timeout);
  } catch (e) {
    const log = (await states(page).catch(() => [])).map((s) => `${s.state} ${s.transport ?? ''} <- ${s.cause}`);
    throw new Error(`${e.message.split('; the page')[0]}; states:\n  ${log.join('\n  ')}`);
  }
}
