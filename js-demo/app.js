// The demo's chat: pick a user and a conversation, read and send messages, page back through
// history, see who is present and who is typing. It uses only the public API of @lifeline/client
// (copied into ./pkg by `cargo xtask demo`) and development tokens from /v1/dev/token.
//
// The connection panel and the fault switches are in panel.js. `window.demo` exposes the client and
// what it received, for the browser tests and for poking around in the console.

import { Client } from './pkg/lifeline.js';
import { Panel } from './panel.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const PAGE = 20;
const TYPING_SHOWN_MS = 3000;
const TYPING_EVERY_MS = 1500;

const panel = new Panel({ hybrid: params.get('strategy') === 'hybrid' });
const demo = {
  client: null,
  user: null,
  conversation: null,
  /** Every message event, in the order delivered: `{ seq, conversation, from, id, body }`. */
  received: [],
  /** Every state event, in order: `{ state, transport, attempt }`. */
  states: [],
  /** How many tokens were fetched. */
  tokens: 0,
  /** Every typing event, in order: `{ conversation, user }`. */
  typing: [],
  panel,
};
window.demo = demo;

let client = null;
let olderBefore = null;
let loadingOlder = false;
let lastTypingSent = 0;
const presence = new Map();
const typers = new Map();

async function devToken(user) {
  const ttl = params.get('ttl') ?? '3600';
  const r = await fetch(`/v1/dev/token?user=${encodeURIComponent(user)}&ttl_secs=${ttl}`);
  if (!r.ok) throw new Error(`no token: HTTP ${r.status} (start the server with --dev --dev-tokens)`);
  demo.tokens += 1;
  return (await r.json()).token;
}

function newClient(user) {
  const c = new Client({
    url: location.origin,
    getToken: () => devToken(user),
    // The demo probes for a better transport sooner than the default (4 s…60 s), so that the
    // climb back to WebSocket is quick to watch.
    probeBackoff: { baseMs: 2000, capMs: 8000, floorMs: 1000 },
    backoff: { baseMs: 300, capMs: 5000 },
    // `?strategy=hybrid`: messages on SSE, presence and typing on a WebSocket of their own (the
    // panel then shows a second timeline for that WebSocket).
    ...(params.get('strategy') ? { strategy: params.get('strategy') } : {}),
  });
  c.on('message', onMessage);
  c.on('ack', onAck);
  c.on('presence', onPresence);
  c.on('typing', onTyping);
  c.on('discontinuity', (d) => note(`Missed messages ${d.lastSeen + 1}…${d.resumedAfter}; reload the conversation to fill the gap.`));
  c.on('state', (s) => {
    demo.states.push({ state: s.state, transport: s.transport, attempt: s.attempt });
    const up = s.state === 'connected';
    $('text').disabled = $('send').disabled = s.state === 'closed' || s.state === 'failed';
    $('chat-title').textContent = `#${demo.conversation} as ${demo.user}${up ? '' : ` (${s.state})`}`;
    renderPresence();
  });
  c.ready.catch((e) => note(`Could not start: ${e.message}`));
  return c;
}

async function join(user, conversation) {
  if (client && demo.user !== user) {
    client.close();
    client = null;
  }
  demo.user = user;
  demo.conversation = conversation;
  history.replaceState(null, '', `?${new URLSearchParams({ ...Object.fromEntries(params), user, conv: conversation })}`);
  if (!client) {
    client = newClient(user);
    demo.client = client;
    panel.attach(client);
  }
  $('message-list').replaceChildren();
  $('typing').textContent = '';
  olderBefore = null;
  $('chat-title').textContent = `#${conversation} as ${user}`;
  $('text').disabled = $('send').disabled = false;
  renderPresence();
  try {
    await client.subscribe(conversation);
    await loadOlder(true);
  } catch (e) {
    note(`Could not join #${conversation}: ${e.message}`);
  }
}

// ----- messages ------------------------------------------------------------------------------

function bubble({ seq, id, from, body }, pending) {
  const li = document.createElement('li');
  li.className = `msg${from === demo.user ? ' mine' : ''}${pending ? ' pending' : ''}`;
  if (seq != null) li.dataset.seq = seq;
  li.dataset.id = id;
  const who = document.createElement('div');
  who.className = 'who';
  who.textContent = pending ? `${from} · sending…` : `${from} · #${seq}`;
  const text = document.createElement('div');
  text.className = 'body';
  text.textContent = body;
  li.append(who, text);
  return li;
}

/** Puts a stored message in place (by seq), replacing its pending bubble; ignores duplicates. */
function place(m) {
  const list = $('message-list');
  if (list.querySelector(`[data-seq="${m.seq}"]`)) return;
  list.querySelector(`.pending[data-id="${CSS.escape(m.id)}"]`)?.remove();
  const li = bubble(m, false);
  const after = [...list.querySelectorAll('[data-seq]')].find((el) => Number(el.dataset.seq) > m.seq);
  const firstPending = list.querySelector('.pending');
  list.insertBefore(li, after ?? firstPending ?? null);
}

function atBottom() {
  const box = $('messages');
  return box.scrollHeight - box.scrollTop - box.clientHeight < 60;
}

function scrollToBottom() {
  const box = $('messages');
  box.scrollTop = box.scrollHeight;
}

function onMessage(m) {
  demo.received.push({ seq: m.seq, conversation: m.conversation, from: m.from, id: m.id, body: m.body });
  typers.delete(`${m.conversation}/${m.from}`);
  if (m.conversation !== demo.conversation) return;
  const stick = atBottom();
  place(m);
  renderTyping();
  if (stick || m.from === demo.user) scrollToBottom();
}

function onAck({ id, seq }) {
  const li = $('message-list').querySelector(`.pending[data-id="${CSS.escape(id)}"]`);
  if (li) li.querySelector('.who').textContent = `${demo.user} · stored as #${seq}`;
}

async function loadOlder(first = false) {
  if (loadingOlder || (!first && olderBefore == null)) return;
  loadingOlder = true;
  const conversation = demo.conversation;
  const box = $('messages');
  try {
    const page = await client.history(conversation, { before: olderBefore ?? undefined, limit: PAGE });
    if (conversation !== demo.conversation) return;
    const height = box.scrollHeight;
    for (const m of page.messages) place(m);
    olderBefore = page.nextBefore ?? null;
    $('older').hidden = olderBefore == null;
    if (first) scrollToBottom();
    else box.scrollTop += box.scrollHeight - height;
  } catch (e) {
    note(`History failed: ${e.message}`);
  } finally {
    loadingOlder = false;
  }
}

function note(text) {
  const li = document.createElement('li');
  li.className = 'gap';
  li.textContent = text;
  $('message-list').append(li);
  panel.log(text);
}

async function send(body) {
  const conversation = demo.conversation;
  let ack;
  try {
    ack = client.send(conversation, body);
  } catch (e) {
    note(e.message);
    return;
  }
  // The bubble appears at once; the id is known when the client accepted the message.
  const temp = bubble({ id: `local-${Date.now()}`, from: demo.user, body }, true);
  $('message-list').append(temp);
  scrollToBottom();
  try {
    const { id, seq } = await ack;
    temp.dataset.id = id;
    if (!$('message-list').querySelector(`[data-seq="${seq}"]`)) {
      temp.classList.remove('pending');
      temp.dataset.seq = seq;
      temp.querySelector('.who').textContent = `${demo.user} · #${seq}`;
    } else {
      temp.remove();
    }
  } catch (e) {
    temp.classList.remove('pending');
    temp.classList.add('failed');
    temp.querySelector('.who').textContent = `${demo.user} · not sent: ${e.code}`;
  }
}

// ----- presence and typing -------------------------------------------------------------------

function onPresence({ conversation, user, online }) {
  let set = presence.get(conversation);
  if (!set) presence.set(conversation, (set = new Set()));
  if (online) set.add(user);
  else set.delete(user);
  renderPresence();
}

function renderPresence() {
  const here = new Set(presence.get(demo.conversation) ?? []);
  if (client?.status.state === 'connected' && demo.user) here.add(demo.user);
  $('presence').replaceChildren(...[...here].sort().map((u) => {
    const span = document.createElement('span');
    span.textContent = u === demo.user ? `${u} (you)` : u;
    return span;
  }));
}

function onTyping({ conversation, user }) {
  demo.typing.push({ conversation, user });
  const key = `${conversation}/${user}`;
  clearTimeout(typers.get(key));
  typers.set(key, setTimeout(() => {
    typers.delete(key);
    renderTyping();
  }, TYPING_SHOWN_MS));
  renderTyping();
}

function renderTyping() {
  const prefix = `${demo.conversation}/`;
  const names = [...typers.keys()].filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
  $('typing').textContent = names.length === 0 ? ''
    : `${names.join(', ')} ${names.length === 1 ? 'is' : 'are'} typing…`;
}

// ----- wiring --------------------------------------------------------------------------------

$('login').addEventListener('submit', (e) => {
  e.preventDefault();
  join($('user').value.trim(), $('conv').value.trim());
});

$('composer').addEventListener('submit', (e) => {
  e.preventDefault();
  const body = $('text').value;
  if (!body.trim() || !client) return;
  $('text').value = '';
  send(body);
});

$('text').addEventListener('input', () => {
  const now = Date.now();
  if (client && demo.conversation && now - lastTypingSent > TYPING_EVERY_MS) {
    lastTypingSent = now;
    client.typing(demo.conversation);
  }
});

$('older').addEventListener('click', () => loadOlder());
$('messages').addEventListener('scroll', () => {
  if ($('messages').scrollTop < 40) loadOlder();
});

if (params.get('user')) $('user').value = params.get('user');
if (params.get('conv')) $('conv').value = params.get('conv');
if (params.get('user')) join($('user').value, $('conv').value);
