// The smallest app on @lifeline/client, imported by package name and bundled by Vite (see
// bundler.test.mjs): connect with a development token, join, send, and show the ack. The result
// goes to `window.result` for the test.

import { Client } from '@lifeline/client';

const out = document.getElementById('out');
const client = new Client({
  url: location.origin,
  getToken: async () => (await (await fetch('/v1/dev/token?user=vite')).json()).token,
});
client.on('state', (s) => {
  out.textContent = `${s.state} ${s.transport ?? ''}`;
});
try {
  await client.subscribe('bundled');
  const ack = await client.send('bundled', 'hello from a bundle');
  window.result = { ok: true, seq: ack.seq };
  out.textContent = `sent as #${ack.seq}`;
} catch (e) {
  window.result = { ok: false, error: `${e.code}: ${e.message}` };
}
