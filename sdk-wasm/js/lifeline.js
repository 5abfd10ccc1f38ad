// @lifeline/client — the package's public ES module: the `Client` class and `LifelineError`.
//
// A thin, hand-written wrapper around the wasm-bindgen output (`lifeline_wasm.js`) and the browser
// driver (`driver.js`): it loads the WebAssembly once, turns options into what the core reads,
// dispatches the core's events to listeners, and settles the promises of `send`, `subscribe` and
// `history`. Connection logic (the transport ladder, retries, resume, token refresh) is not here:
// it is in lifeline-core. Types: lifeline.d.ts. The package ships this file bundled with the other
// two (`cargo xtask npm`).

import init, { Core, storageKey } from './lifeline_wasm.js';
import { Driver } from './driver.js';

let loading = null;

/** Loads and instantiates the WebAssembly module once (later calls share the first load). */
export function load(wasm) {
  if (!loading) {
    loading = init(wasm === undefined ? undefined : { module_or_path: wasm });
  }
  return loading;
}

/** An error with a stable `code`; see lifeline.d.ts for the codes. */
export class LifelineError extends Error {
  constructor(code, message, details) {
    super(message);
    this.name = 'LifelineError';
    this.code = code;
    if (details) Object.assign(this, details);
  }
}

function toError(thrown) {
  if (thrown instanceof LifelineError) return thrown;
  if (typeof thrown === 'string') {
    try {
      const e = JSON.parse(thrown);
      return new LifelineError(e.code, e.message);
    } catch {
      return new LifelineError('internal', thrown);
    }
  }
  return new LifelineError('internal', String(thrown && thrown.message ? thrown.message : thrown));
}

// The numeric options in the order the driver reads them (sdk-wasm/src/options.rs, NUMERIC;
// a Rust test checks that the two lists agree).
const NUMERIC = [
  'seed', 'connectTimeoutMs', 'firstFrameTimeoutMs', 'raceAfterMs', 'pingIntervalMs',
  'livenessTimeoutMs', 'pollWaitMs', 'sendTimeoutMs', 'stableAfterMs', 'stepDownAfter',
  'maxAttempts', 'backoff.baseMs', 'backoff.capMs', 'backoff.floorMs', 'probeBackoff.baseMs',
  'probeBackoff.capMs', 'probeBackoff.floorMs', 'firstVisitRaceAfterMs',
];

// Every option `new Client` reads (dotted: nested). Any other name is a typo the app must hear
// about, not a setting silently ignored.
const NAMES = ['url', 'token', 'getToken', 'transports', 'strategy', 'rememberTransport', 'autoConnect', 'wasm', ...NUMERIC];

function checkNames(options, prefix = '') {
  for (const key of Object.keys(options)) {
    const path = prefix + key;
    if (NAMES.includes(path)) continue;
    const value = options[key];
    if (value && typeof value === 'object' && NAMES.some((n) => n.startsWith(path + '.'))) {
      checkNames(value, path + '.');
    } else {
      throw new LifelineError('bad_options', `new Client(...): unknown option \`${path}\``);
    }
  }
}

// The names `options.transports` may use, aliases included: those `TransportKind::parse` in
// lifeline-core accepts (a Rust test checks that the two agree).
const RUNGS = ['websocket', 'ws', 'sse', 'long-poll', 'longpoll', 'poll'];

// NUMERIC's values, then 1 for the hybrid strategy (options.rs, HYBRID).
function numbers(options) {
  return new Float64Array([...NUMERIC.map((path) => {
    const value = path.split('.').reduce((o, k) => (o == null ? undefined : o[k]), options);
    return typeof value === 'number' ? value : NaN;
  }), options.strategy === 'hybrid' ? 1 : NaN]);
}

export class Client {
  #core = null;
  #driver = null;
  #closed = false;
  #listeners = new Map();
  #sends = new Map();
  #histories = new Map();
  #subscribing = new Map();
  #subscribed = new Set();
  #status = { state: 'idle', transport: null, attempt: null, degraded: false, nextRetryAt: null, error: null };

  /** See lifeline.d.ts. Connects at once unless `autoConnect: false`. */
  constructor(options) {
    if (!options || typeof options.url !== 'string') {
      throw new LifelineError('bad_options', 'new Client({ url, token | getToken }): `url` is required');
    }
    checkNames(options);
    if (![undefined, 'single', 'hybrid'].includes(options.strategy)) {
      throw new LifelineError('bad_options', 'unknown strategy');
    }
    const getToken = options.getToken;
    if (!options.token && typeof getToken !== 'function') {
      throw new LifelineError('bad_options', 'new Client(...): give `token` or a `getToken` function');
    }
    /** Resolves once the WebAssembly is loaded and the client exists (rejects if it cannot). */
    this.ready = load(options.wasm).then(() => {
      if (this.#closed) return;
      // The URL's storage key, or the JSON of the error that says why it is not a server URL.
      const key = storageKey(options.url);
      if (key[0] === '{') throw toError(key);
      const transports = (options.transports ?? []).join(',');
      for (const name of transports.split(',')) {
        // Empty names (a stray comma) are skipped, as the core does.
        if (name && !RUNGS.includes(name)) {
          throw new LifelineError('bad_options', `unknown transport \`${name}\``);
        }
      }
      const remember = options.rememberTransport !== false;
      let remembered = '';
      try {
        if (remember) remembered = localStorage.getItem(key) ?? '';
      } catch {
        // Storage that is forbidden only means nothing is remembered.
      }
      // Every option was checked above (the token in the constructor): `open` refuses none.
      const core = Core.open(
        options.url,
        options.token || '',
        transports,
        numbers(options),
        typeof getToken === 'function',
        remembered,
        Math.floor(Math.random() * 2 ** 53),
      );
      if (!core) throw new LifelineError('bad_options', 'new Client(...): options refused');
      this.#core = core;
      this.#driver = new Driver(core, {
        getToken: typeof getToken === 'function' ? () => getToken() : undefined,
        storageKey: remember ? key : undefined,
        dispatch: (event) => this.#dispatch(event),
      });
      if (options.autoConnect !== false) this.#turn((c) => c.call(5, '', '', +(navigator.onLine !== false)));
    }).catch((thrown) => {
      const error = toError(thrown);
      this.#emit('error', { code: error.code, message: error.message });
      throw error;
    });
    // The promise is also reported as an `error` event; do not let it count as unhandled.
    this.ready.catch(() => {});
  }

  /** Starts connecting (only needed with `autoConnect: false`). */
  async connect() {
    await this.#ready();
    this.#turn((c) => c.call(5, '', '', +(navigator.onLine !== false)));
  }

  /** The connection state now (as the last `state` event told it). */
  get status() {
    return { ...this.#status };
  }

  /** The highest sequence number delivered so far, or `null`. */
  get cursor() {
    const cursor = this.#core?.call(8, '', '');
    return cursor ? Number(cursor) : null;
  }

  /** Messages sent and not yet acknowledged. */
  get pending() {
    return this.#core ? +this.#core.call(9, '', '') : 0;
  }

  /** Adds a listener; returns a function that removes it. */
  on(type, listener) {
    let set = this.#listeners.get(type);
    if (!set) this.#listeners.set(type, (set = new Set()));
    set.add(listener);
    return () => this.off(type, listener);
  }

  /** Removes a listener. */
  off(type, listener) {
    this.#listeners.get(type)?.delete(listener);
  }

  /** Sends `body` to `conversation`; resolves with `{ id, seq }` once the server stored it. */
  async send(conversation, body) {
    await this.#ready();
    // The id's random bits come from the platform's generator, never from the jitter seed.
    const r = crypto.getRandomValues(new Uint32Array(4));
    const id = this.#turn((c) => c.call(4, conversation, body, undefined, 0, ...r));
    return new Promise((resolve, reject) => this.#sends.set(id, { resolve, reject }));
  }

  /** Joins `conversation`; resolves once the server confirmed it. */
  async subscribe(conversation) {
    await this.#ready();
    // Subscribing again is a no-op for the session, which sends nothing: answer at once.
    if (this.#subscribed.has(conversation)) return;
    const done = new Promise((resolve, reject) => {
      const waiting = this.#subscribing.get(conversation) ?? [];
      waiting.push({ resolve, reject });
      this.#subscribing.set(conversation, waiting);
    });
    try {
      this.#turn((c) => c.call(0, conversation, ''));
    } catch (e) {
      this.#settleSubscribe(conversation, e);
    }
    return done;
  }

  /** Leaves `conversation`. */
  async unsubscribe(conversation) {
    await this.#ready();
    this.#turn((c) => c.call(1, conversation, ''));
    this.#subscribed.delete(conversation);
  }

  /** Tells `conversation` the user is typing. Returns false (and sends nothing) when not connected. */
  typing(conversation) {
    if (!this.#core) return false;
    try {
      this.#turn((c) => c.call(2, conversation, ''));
      return true;
    } catch (e) {
      const error = toError(e);
      if (error.code === 'not_connected') return false;
      throw error;
    }
  }

  /** A page of `conversation`'s history, oldest first: the newest `limit` messages before `before`. */
  async history(conversation, { before, limit = 50 } = {}) {
    await this.#ready();
    const request = Number(this.#turn((c) => c.call(3, conversation, '', before ?? undefined, limit)));
    return new Promise((resolve, reject) => this.#histories.set(request, { resolve, reject }));
  }

  /** Closes at once; unacknowledged sends reject with `closed`. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    const core = this.#core;
    const driver = this.#driver;
    this.#core = null;
    this.#driver = null;
    if (core) {
      driver.turn((c) => c.call(6, '', ''));
      // Freed after the current turn: close() may be called from a listener inside one.
      queueMicrotask(() => core.free());
    }
    this.#rejectAll(new LifelineError('closed', 'the client is closed'));
    this.#status = { ...this.#status, state: 'closed', transport: null };
  }

  /** Refuses new sends, waits up to `timeoutMs` for pending ones to be acknowledged, then closes. */
  async closeGracefully(timeoutMs = 5000) {
    const core = await this.#ready();
    if (core.call(9, '', '') === '0') return this.close();
    await new Promise((resolve) => {
      const off = this.on('state', (s) => {
        if (s.state === 'closed' || s.state === 'failed') {
          off();
          resolve();
        }
      });
      this.#turn((c) => c.call(7, '', '', timeoutMs));
    });
    this.close();
  }

  async #ready() {
    await this.ready;
    if (!this.#core) throw new LifelineError('closed', 'the client is closed');
    return this.#core;
  }

  /**
   * One turn of the driver: `f(core)`, then everything the core asks for. A call the core refuses
   * answers the JSON of a `LifelineError` (a text starting with `{`), thrown from here.
   */
  #turn(f) {
    let answer;
    try {
      answer = this.#driver.turn(f);
    } catch (e) {
      throw toError(e);
    }
    if (typeof answer === 'string' && answer[0] === '{') throw toError(answer);
    return answer;
  }

  #emit(type, detail) {
    const set = this.#listeners.get(type);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(detail);
      } catch (e) {
        // One failing listener must not stop the others, nor the client: rethrow it on its own.
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }

  #dispatch(e) {
    const { type, ...detail } = e;
    switch (type) {
      case 'ack': {
        const p = this.#sends.get(e.id);
        this.#sends.delete(e.id);
        p?.resolve({ id: e.id, seq: e.seq });
        this.#emit('ack', detail);
        return;
      }
      case 'sendFailed': {
        const p = this.#sends.get(e.id);
        this.#sends.delete(e.id);
        const error = new LifelineError(e.code, e.message, { id: e.id, serverCode: e.serverCode });
        if (p) p.reject(error);
        else this.#emit('error', { code: e.code, message: e.message });
        return;
      }
      case 'history': {
        const p = this.#histories.get(e.request);
        this.#histories.delete(e.request);
        if (!p) return;
        if (e.page) p.resolve(e.page);
        else p.reject(new LifelineError(e.error.code, e.error.message, { status: e.error.status }));
        return;
      }
      case 'subscribed':
        this.#subscribed.add(e.conversation);
        this.#settleSubscribe(e.conversation);
        this.#emit('subscribed', detail);
        return;
      case 'error':
        // A refused or revoked subscription (`forbidden`): no longer subscribed.
        if (e.conversation) this.#subscribed.delete(e.conversation);
        if (e.conversation && this.#subscribing.has(e.conversation)) {
          this.#settleSubscribe(e.conversation, new LifelineError(e.code, e.message));
        }
        this.#emit('error', detail);
        return;
      case 'state': {
        const { previous, cause, ...status } = detail;
        this.#status = status;
        this.#emit('state', detail);
        if (detail.state === 'failed' || detail.state === 'closed') {
          this.#rejectAll(new LifelineError('closed', detail.error ?? 'the client is closed'));
        }
        return;
      }
      case 'transportWorked':
        return;
      case 'rtt':
        this.#emit('rtt', { rtt: e.rttUs / 1000 });
        return;
      default:
        this.#emit(type, detail);
    }
  }

  #settleSubscribe(conversation, error) {
    const waiting = this.#subscribing.get(conversation);
    this.#subscribing.delete(conversation);
    for (const w of waiting ?? []) {
      if (error) w.reject(toError(error));
      else w.resolve();
    }
  }

  #rejectAll(error) {
    for (const p of this.#sends.values()) p.reject(error);
    for (const p of this.#histories.values()) p.reject(error);
    this.#sends.clear();
    this.#histories.clear();
    for (const conversation of [...this.#subscribing.keys()]) this.#settleSubscribe(conversation, error);
  }
}
