// The demo's connection panel: state, transport, round trip, attempt, a countdown to the next
// retry, a timeline of which transport carried the connection, a log, and the controls that flip
// the server's fault switches (/v1/faults, served with `lifeline-server --faults`).
//
// It only observes a Client (through its events) and talks to the fault endpoints; the chat is in
// app.js. Nothing here influences what the SDK decides.

const TIMELINE_WINDOW_MS = 120_000;
const LOG_LIMIT = 150;
const FAULTS_EVERY_MS = 2000;

const $ = (id) => document.getElementById(id);

function clock(ms = Date.now()) {
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}

export class Panel {
  /** Timeline segments, oldest first: `{ kind: 'websocket'|'sse'|'long-poll'|'down', start, end }`. */
  segments = [];
  /**
   * Under the hybrid strategy, the second timeline: the WebSocket of presence and typing
   * (`{ kind: 'websocket'|'down', start, end }`); empty otherwise.
   */
  ephemeralSegments = [];
  #hybrid = false;
  #client = null;
  #offs = [];
  #status = { state: 'idle', transport: null, attempt: null, nextRetryAt: null };
  #startedAt = Date.now();

  constructor({ hybrid = false } = {}) {
    this.#hybrid = hybrid;
    $('ephemeral-lane').hidden = !hybrid;
    if (hybrid) this.#segment('down', this.ephemeralSegments);
    for (const box of document.querySelectorAll('[data-fault]')) {
      box.addEventListener('change', () => this.setFaults({ [box.dataset.fault]: box.checked }));
    }
    $('drop').addEventListener('click', () => this.dropAll());
    $('heal').addEventListener('click', () => this.heal());
    this.#segment('down');
    this.refreshFaults();
    // The switches are server-wide: another tab (or a test) may flip them too.
    setInterval(() => this.refreshFaults(), FAULTS_EVERY_MS);
    setInterval(() => this.#tick(), 250);
  }

  /** Follows `client` (and stops following the previous one). */
  attach(client) {
    for (const off of this.#offs) off();
    this.#client = client;
    this.#offs = [
      client.on('state', (s) => this.#onState(s)),
      client.on('transport', (t) => {
        if (this.#hybrid) {
          // Messages never use a WebSocket under the hybrid strategy: a live one is the link of
          // presence and typing.
          const up = t.links.some((l) => l.transport === 'websocket' && l.live);
          this.#segment(up ? 'websocket' : 'down', this.ephemeralSegments);
        }
        const trying = t.links.filter((l) => !l.live).map((l) => l.transport);
        if (!trying.length) return;
        this.log(t.transport
          ? `probing ${trying.join(', ')} while on ${t.transport}`
          : `opening ${trying.join(' and ')}`);
      }),
      client.on('rtt', ({ rtt }) => {
        $('rtt').textContent = `${rtt < 10 ? rtt.toFixed(1) : Math.round(rtt)} ms`;
      }),
      client.on('error', (e) => this.log(`error ${e.code}: ${e.message}`)),
      client.on('discontinuity', (d) => this.log(`gap: messages ${d.lastSeen + 1}…${d.resumedAfter} skipped by the server`)),
    ];
    this.#onState({ ...client.status, cause: 'new client' });
  }

  /** Adds a line to the log. */
  log(text) {
    const li = document.createElement('li');
    const time = document.createElement('time');
    time.textContent = clock();
    li.append(time, text);
    const log = $('log');
    log.prepend(li);
    while (log.children.length > LOG_LIMIT) log.lastElementChild.remove();
  }

  async setFaults(update) {
    await this.#faultRequest('/v1/faults', update);
    this.log(`faults: ${Object.entries(update).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  }

  async dropAll() {
    await this.#faultRequest('/v1/faults/drop', {});
    this.log('server dropped every connection');
  }

  async heal() {
    const all = {};
    for (const box of document.querySelectorAll('[data-fault]')) all[box.dataset.fault] = false;
    await this.setFaults(all);
  }

  async refreshFaults() {
    try {
      const r = await fetch('/v1/faults');
      if (r.ok) this.#showFaults(await r.json());
      else $('faults-status').textContent = 'Fault switches are off (start the server with --faults).';
    } catch {
      // The server is unreachable; the connection panel says so already.
    }
  }

  async #faultRequest(path, body) {
    try {
      const r = await fetch(path, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      const text = await r.text();
      if (text.startsWith('{') && path === '/v1/faults') this.#showFaults(JSON.parse(text));
      $('faults-status').textContent = '';
    } catch (e) {
      $('faults-status').textContent = `Could not reach the fault switches: ${e.message}`;
    }
  }

  #showFaults(state) {
    for (const box of document.querySelectorAll('[data-fault]')) {
      box.checked = Boolean(state[box.dataset.fault]);
    }
  }

  #onState(s) {
    this.#status = s;
    const badge = $('state');
    badge.textContent = s.state + (s.degraded ? ' (degraded)' : '');
    badge.dataset.state = s.state;
    $('transport').textContent = s.transport ?? '—';
    $('attempt').textContent = s.attempt ?? '—';
    if (s.previous) {
      const via = s.transport ? ` via ${s.transport}` : '';
      this.log(`${s.previous} → ${s.state}${via}: ${s.cause}`);
    }
    this.#segment(s.state === 'connected' ? s.transport : 'down');
  }

  #segment(kind, segments = this.segments) {
    const now = Date.now();
    const last = segments[segments.length - 1];
    if (last && last.kind === kind) return;
    if (last) last.end = now;
    segments.push({ kind, start: now, end: null });
  }

  #tick() {
    const s = this.#status;
    const countdown = $('countdown');
    if (s.state === 'reconnecting' && s.nextRetryAt) {
      countdown.textContent = `${Math.max(0, (s.nextRetryAt - Date.now()) / 1000).toFixed(1)} s`;
    } else if (s.state === 'reconnecting') {
      countdown.textContent = 'paused (offline or waiting for a token)';
    } else {
      countdown.textContent = '—';
    }
    if (this.#client) {
      $('pending').textContent = this.#client.pending;
      $('cursor').textContent = this.#client.cursor ?? '—';
    }
    this.#renderTimeline($('timeline'), this.segments);
    if (this.#hybrid) this.#renderTimeline($('timeline-ephemeral'), this.ephemeralSegments);
  }

  #renderTimeline(bar, segments) {
    const now = Date.now();
    const from = Math.max(this.#startedAt, now - TIMELINE_WINDOW_MS);
    const span = Math.max(1, now - from);
    bar.replaceChildren(...segments
      .filter((seg) => (seg.end ?? now) > from)
      .map((seg) => {
        const start = Math.max(seg.start, from);
        const end = seg.end ?? now;
        const el = document.createElement('span');
        el.className = seg.kind;
        el.style.left = `${((start - from) / span) * 100}%`;
        el.style.width = `${((end - start) / span) * 100}%`;
        el.title = `${seg.kind}: ${clock(seg.start)} – ${seg.end ? clock(seg.end) : 'now'}`;
        return el;
      }));
  }
}
