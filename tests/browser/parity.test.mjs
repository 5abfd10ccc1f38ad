// Parity: each fault script of tests/parity/ played in Chromium (parity.mjs) must leave the same
// normalized trace as the native SDK left for it (target/parity/<name>.native.json, written by
// `cargo test -p lifeline-tests --test parity`): the same states, transports and cause kinds, the
// same messages delivered in the same order, the same number of tokens. A difference fails with
// both traces printed.

import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { checkPrerequisites, launchBrowser } from './harness.mjs';
import {
  SCRIPTS, nativeTrace, normalize, playInBrowser, readScript,
} from './parity.mjs';

let browser;
before(async () => {
  checkPrerequisites();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

const names = readdirSync(SCRIPTS)
  .filter((f) => f.endsWith('.json') && f !== 'client.json')
  .map((f) => f.slice(0, -'.json'.length))
  .sort();

const show = (t) => [...t.states.map((s) => `  ${s}`), `  messages: ${t.messages.join(', ')}`, `  tokens: ${t.tokens}`].join('\n');

for (const name of names) {
  test(`parity: ${name}`, async () => {
    const native = normalize(nativeTrace(name, readScript(name).text));
    const inBrowser = normalize(await playInBrowser(name, browser));
    assert.deepEqual(inBrowser, native, `${name}: the browser and the native SDK differ.\nnative:\n${show(native)}\nbrowser:\n${show(inBrowser)}`);
  });
}
