// @lifeline/client — the browser driver of lifeline-core's session (the `Core` of lifeline_wasm.js).
//
// After every call into the core, `turn` takes what the core asks for (see sdk-wasm/src/runner.rs:
// `[[action…], [event…], delayMs, final]`), performs each action literally with the browser's own
// objects — `WebSocket`, `EventSource` (closed on its first error, so the browser never reconnects
// behind the core's back), `fetch` with an `AbortController`, one `setTimeout` — and reports what
// happened back to the core as it happened. Page signals (`online`/`offline`, `visibilitychange`,
// `resume`, `pageshow`) become core inputs too.
//
// What must not live here: any decision. No retry, no timeout, no choice of transport: those are
// the core's. This file only does what it is told and says what it saw.

// The action kinds (sdk-wasm/src/actions.rs).
const OPEN = 0;
const SEND = 1;
const CLOSE = 2;
const HTTP = 3;
const ABORT = 4;
const TOKEN = 5;

// What the driver reports: `core.report(kind, id, a, b, text)` (sdk-wasm/src/inputs.rs).
const IN_OPENED = 0;
const IN_TEXT = 1;
const IN_BINARY = 2;
const IN_CLOSED = 3;
const IN_FAILED = 4;
const IN_RESPONSE = 5;
const IN_UNANSWERED = 6;
const IN_TOKEN = 7;
const IN_TOKEN_ERROR = 8;
const IN_NETWORK = 9;
const IN_VISIBILITY = 10;
const IN_RESUMED = 11;
const IN_TIMER = 12;

/** The most rounds of "perform actions, report what failed on the spot" in one turn. */
const MAX_ROUNDS = 64;

/** A thrown value as text. */
function describe(e) {
  return typeof e === 'string' ? e : (e && e.message) || 'unknown error';
}

/** `Retry-After` in seconds, when it is a plain number of seconds. */
function retryAfter(header) {
  return header != null && /^\s*\d+\s*$/.test(header) ? Number(header) : undefined;
}

/** Detaches every handler of a socket and closes it: nothing more is reported about it. */
function shut(socket) {
  socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
  if (socket instanceof WebSocket) socket.close(1000);
  else socket.close();
}

export class Driver {
  #core;
  #getToken;
  #storageKey;
  #dispatch;
  #sockets = new Map();
  #requests = new Map();
  #timer;
  #unlisten = [];
  #done = false;

  /**
   * `dispatch` receives every event object; `storageKey`, when given, is where the transport that
   * last worked is remembered.
   */
  constructor(core, { getToken, storageKey, dispatch }) {
    this.#core = core;
    this.#getToken = getToken;
    this.#storageKey = storageKey;
    this.#dispatch = dispatch;
    const listen = (target, type, handler) => {
      if (!target || !target.addEventListener) return;
      target.addEventListener(type, handler);
      this.#unlisten.push(() => target.removeEventListener(type, handler));
    };
    const page = typeof document === 'undefined' ? undefined : document;
    listen(globalThis, 'online', () => this.#report(IN_NETWORK, 0, 1));
    listen(globalThis, 'offline', () => this.#report(IN_NETWORK, 0, 0));
    listen(globalThis, 'pageshow', () => this.#report(IN_RESUMED));
    listen(page, 'resume', () => this.#report(IN_RESUMED));
    listen(page, 'visibilitychange', () =>
      this.#report(IN_VISIBILITY, 0, page.visibilityState === 'visible' ? 1 : 0),
    );
  }

  /** Calls `f(core)`, then carries out everything the core asks for; returns what `f` returned. */
  turn(f) {
    try {
      return f(this.#core);
    } finally {
      this.#settle();
    }
  }

  /** Reports one thing the browser saw (see the `IN_*` kinds) and takes the turn that follows. */
  #report(kind, id = 0, a, b, text) {
    if (!this.#done) this.turn((core) => core.report(kind, id, a, b, text));
  }

  #settle() {
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const [actions, events, delay, final] = JSON.parse(this.#core.drain(Date.now()));
      let reported = false;
      for (const action of actions) reported = this.#perform(action) || reported;
      this.#arm(delay);
      if (final) this.#shutDown();
      for (const event of events) {
        if (event.type === 'transportWorked' && this.#storageKey) {
          try {
            localStorage.setItem(this.#storageKey, event.transport);
          } catch {
            // Storage that is full or forbidden only means nothing is remembered.
          }
        }
        this.#dispatch(event);
      }
      if (!reported) return;
    }
  }

  /** Performs one action; returns true when it failed on the spot and that was reported. */
  #perform(action) {
    const core = this.#core;
    const [kind, id] = action;
    try {
      switch (kind) {
        case OPEN:
          this.#sockets.set(id, action[2] === 'ws' ? this.#webSocket(id, action[3]) : this.#eventSource(id, action[3]));
          return false;
        case SEND: {
          const socket = this.#sockets.get(id);
          if (socket instanceof WebSocket) socket.send(action[2]);
          else if (socket) throw new Error('an event stream cannot send');
          return false;
        }
        case CLOSE: {
          const socket = this.#sockets.get(id);
          this.#sockets.delete(id);
          if (socket) shut(socket);
          return false;
        }
        case HTTP:
          this.#http(id, action[2], action[3], action[4], action[5]);
          return false;
        case ABORT:
          this.#requests.get(id)?.abort();
          this.#requests.delete(id);
          return false;
        case TOKEN:
          this.#fetchToken();
          return false;
      }
    } catch (e) {
      if (kind === HTTP) this.#requests.delete(id);
      core.report(kind === HTTP ? IN_UNANSWERED : IN_FAILED, id, undefined, undefined, describe(e));
      return true;
    }
    return false;
  }

  #webSocket(id, url) {
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.#report(IN_OPENED, id);
    };
    ws.onmessage = (e) =>
      typeof e.data === 'string'
        ? this.#report(IN_TEXT, id, undefined, undefined, e.data)
        : this.#report(IN_BINARY, id, e.data.byteLength);
    ws.onclose = (e) =>
      opened
        ? this.#report(IN_CLOSED, id, e.code, undefined, e.reason)
        : this.#report(IN_FAILED, id, undefined, undefined, `the WebSocket closed before opening (code ${e.code})`);
    return ws;
  }

  #eventSource(id, url) {
    const es = new EventSource(url);
    let opened = false;
    es.onopen = () => {
      opened = true;
      this.#report(IN_OPENED, id);
    };
    es.onmessage = (e) => this.#report(IN_TEXT, id, undefined, undefined, e.data);
    es.onerror = () => {
      // Stop the browser's own reconnection first; the core decides what happens next.
      shut(es);
      // An `EventSource` hides the status of a refusal: the core asks for it if it needs it.
      if (opened) this.#report(IN_CLOSED, id, undefined, undefined, 'the event stream ended or broke');
      else this.#report(IN_FAILED, id, undefined, undefined, 'the event stream could not be opened');
    };
    return es;
  }

  #http(id, method, url, bearer, body) {
    const abort = new AbortController();
    this.#requests.set(id, abort);
    const headers = {};
    if (bearer != null) headers.Authorization = `Bearer ${bearer}`;
    if (body != null) headers['Content-Type'] = 'application/json';
    // Only what the core still waits for is reported (an abandoned request was removed).
    const answer = (...report) => {
      if (this.#requests.delete(id)) this.#report(...report);
    };
    fetch(url, { method, headers, body: body ?? undefined, signal: abort.signal })
      .then(async (r) => [r.status, retryAfter(r.headers.get('Retry-After')), await r.text()])
      .then(
        ([status, retry, text]) => answer(IN_RESPONSE, id, status, retry, text),
        (e) => answer(IN_UNANSWERED, id, undefined, undefined, describe(e)),
      );
  }

  /** Asks the application's `getToken` (in a microtask, never inside a turn) and reports the answer. */
  #fetchToken() {
    const getToken = this.#getToken;
    Promise.resolve()
      .then(() => {
        if (!getToken) throw new Error('no getToken function was given');
        return getToken();
      })
      .then(
        (token) => (typeof token === 'string' && token ? [IN_TOKEN, token] : [IN_TOKEN_ERROR, 'getToken did not give a string']),
        (e) => [IN_TOKEN_ERROR, describe(e)],
      )
      .then(([kind, text]) => this.#report(kind, 0, undefined, undefined, text));
  }

  #arm(delay) {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (delay >= 0 && !this.#done) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#report(IN_TIMER);
      }, delay);
    }
  }

  /** Lets go of everything: the session has ended. */
  #shutDown() {
    this.#done = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const unlisten of this.#unlisten) unlisten();
    this.#unlisten = [];
    for (const socket of this.#sockets.values()) shut(socket);
    this.#sockets.clear();
    for (const abort of this.#requests.values()) abort.abort();
    this.#requests.clear();
  }
}
