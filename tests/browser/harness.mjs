// Shared set-up of the browser tests: checks the prerequisites (failing, never skipping, with the
// command that installs what is missing), starts the real lifeline-server binary on a free loopback
// port with --dev --dev-tokens --faults and a copy of the demo, launches Debian's Chromium through
// playwright-core with a fresh profile, and offers small helpers (wait for a condition, flip fault
// switches, open the demo as a user).
//
// No test logic lives here, and nothing sleeps to paper over a race: every wait is for a condition,
// with a timeout.

import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before } from 'node:test';

export const HERE = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(HERE, '../..');
export const PACKAGE = join(ROOT, 'target/npm/lifeline-client');
export const ARTIFACTS = join(ROOT, 'tests/artifacts');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const SERVER = process.env.LIFELINE_SERVER_BIN ?? join(ROOT, 'target/debug/lifeline-server');

/** Fails with the command to run when something the tests need is missing. */
export function checkPrerequisites() {
  const missing = [];
  if (!existsSync(CHROMIUM)) {
    missing.push(`Chromium (${CHROMIUM}): run \`apt-get install chromium chromium-driver\` or \`cargo xtask setup\``);
  }
  if (!existsSync(join(HERE, 'node_modules/playwright-core'))) {
    missing.push('node_modules: run `npm ci` in tests/browser or `cargo xtask setup`');
  }
  if (!existsSync(SERVER)) {
    missing.push(`the server binary (${SERVER}): run \`cargo build -p lifeline-server\``);
  }
  if (!existsSync(join(PACKAGE, 'lifeline.js'))) {
    missing.push(`the npm package (${PACKAGE}): run \`cargo xtask npm\``);
  }
  if (missing.length) throw new Error(`browser tests cannot run:\n  - ${missing.join('\n  - ')}`);
}

async function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.on('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** A demo folder with the package in pkg/, as `cargo xtask demo` lays it out. */
export function demoDir(pkg = PACKAGE) {
  const dir = mkdtempSync(join(tmpdir(), 'lifeline-demo-'));
  for (const f of readdirSync(join(ROOT, 'js-demo'))) {
    if (f !== 'pkg') cpSync(join(ROOT, 'js-demo', f), join(dir, f), { recursive: true });
  }
  cpSync(pkg, join(dir, 'pkg'), { recursive: true });
  return dir;
}

/**
 * Starts lifeline-server (in memory, development mode with dev tokens and fault switches) serving `staticDir` at `/`.
 * Resolves once /healthz answers. `port` (default: a free one) and `dataDir` (default: in memory)
 * let a test start it again where it was, with the same storage.
 */
export async function startServer(staticDir, extraArgs = [], { port: fixedPort, dataDir } = {}) {
  const port = fixedPort ?? await freePort();
  const base = `http://127.0.0.1:${port}`;
  const storage = dataDir ? ['--data-dir', dataDir] : ['--memory'];
  const args = ['--listen', `127.0.0.1:${port}`, ...storage, '--dev', '--dev-tokens', '--faults',
    '--demo-dir', staticDir, ...extraArgs];
  const child = spawn(SERVER, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, RUST_LOG: 'warn' } });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  const exited = new Promise((ok) => child.once('exit', ok));
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`lifeline-server exited: ${stderr}`);
    try {
      const r = await fetch(`${base}/healthz`);
      if (r.ok) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      child.kill();
      throw new Error(`lifeline-server did not answer /healthz within 15 s: ${stderr}`);
    }
    await new Promise((ok) => setTimeout(ok, 50));
  }
  return {
    base,
    port,
    async faults(update) {
      const r = await fetch(`${base}/v1/faults`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(update),
      });
      if (!r.ok) throw new Error(`POST /v1/faults: HTTP ${r.status}`);
      return r.json();
    },
    async dropAll() {
      const r = await fetch(`${base}/v1/faults/drop`, { method: 'POST' });
      if (!r.ok) throw new Error(`POST /v1/faults/drop: HTTP ${r.status}`);
    },
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}

// Registers the hooks every demo test file shares: check the prerequisites, start the server with
// the demo and launch Chromium before the tests; close both after. `use(server, browser)` receives
// them once they are up.
export function withDemoServerAndBrowser(use) {
  let server;
  let browser;
  before(async () => {
    checkPrerequisites();
    server = await startServer(demoDir());
    browser = await launchBrowser();
    use(server, browser);
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });
}

/** Launches headless Chromium; playwright gives every launch a fresh temporary profile. */
export async function launchBrowser() {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** Waits until `fn(arg)` is truthy in the page; fails with `what` after `timeout` ms. */
export async function until(page, what, fn, arg, timeout = 20_000) {
  try {
    return await page.waitForFunction(fn, arg, { timeout, polling: 100 });
  } catch (e) {
    const state = await page.evaluate(() => JSON.stringify({
      status: window.demo?.client?.status,
      shown: [...document.querySelectorAll('#message-list li')].map((l) => l.dataset.seq ?? l.textContent).join(' '),
      log: [...document.querySelectorAll('#log li')].slice(0, 8).map((l) => l.textContent),
    }, null, 1)).catch(() => '?');
    throw new Error(`timed out after ${timeout} ms waiting for ${what}; the page: ${state}`);
  }
}

/** Opens the demo as `user` in `conversation` and waits for a live connection. */
export async function openDemo(ctx, base, user, conversation, query = {}) {
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.errors = errors;
  const q = new URLSearchParams({ user, conv: conversation, ...query });
  await page.goto(`${base}/?${q}`);
  await until(page, `${user} to connect`, () => window.demo?.client?.status.state === 'connected');
  await until(page, `${user} to join ${conversation}`, (c) => [...document.querySelectorAll('#presence span')]
    .some((s) => s.textContent.includes('(you)')) && window.demo.conversation === c, conversation);
  return page;
}

/** Types and sends `body` through the demo's composer. */
export async function say(page, body) {
  await page.fill('#text', body);
  await page.press('#text', 'Enter');
}

/** The bodies `page` received in `conversation`, in delivery order, after checking exactly-once order. */
export async function receivedIn(page, conversation) {
  const got = await page.evaluate((c) => window.demo.received.filter((m) => m.conversation === c), conversation);
  for (let i = 1; i < got.length; i++) {
    if (!(got[i].seq > got[i - 1].seq)) {
      throw new Error(`delivered out of order or twice: seq ${got[i - 1].seq} then ${got[i].seq}`);
    }
  }
  return got.map((m) => m.body);
}

/** Where screenshots go (gitignored). */
export function artifact(name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  return join(ARTIFACTS, name);
}
