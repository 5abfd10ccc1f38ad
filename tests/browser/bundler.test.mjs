// The npm package through a bundler: Vite builds tests/browser/vite-app, which imports
// `@lifeline/client` by name from a node_modules link to target/npm/lifeline-client, and the built
// page connects and sends through the real server in Chromium. Checks that the package's layout
// (exports, the .wasm found through `new URL(..., import.meta.url)`) survives bundling.

import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { HERE, PACKAGE, checkPrerequisites, launchBrowser, startServer, until } from './harness.mjs';

let server;
let browser;
let dist;

before(async () => {
  checkPrerequisites();
  const app = mkdtempSync(join(tmpdir(), 'lifeline-vite-'));
  cpSync(join(HERE, 'vite-app'), app, { recursive: true });
  mkdirSync(join(app, 'node_modules/@lifeline'), { recursive: true });
  symlinkSync(PACKAGE, join(app, 'node_modules/@lifeline/client'), 'dir');
  dist = join(app, 'dist');
  const { build } = await import('vite');
  await build({ root: app, logLevel: 'warn', build: { outDir: dist, target: 'es2022' } });
  server = await startServer(dist);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('a Vite build importing @lifeline/client connects and sends', async () => {
  const assets = readdirSync(join(dist, 'assets'));
  assert.ok(assets.some((f) => f.endsWith('.wasm')), `Vite emitted the .wasm (assets: ${assets.join(', ')})`);
  assert.ok(existsSync(join(dist, 'index.html')));
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${server.base}/`);
  await until(page, 'the bundled page to send', () => window.result !== undefined);
  const result = await page.evaluate(() => window.result);
  assert.equal(result.ok, true, result.error);
  assert.ok(result.seq > 0);
  assert.deepEqual(errors, []);
  await ctx.close();
});
