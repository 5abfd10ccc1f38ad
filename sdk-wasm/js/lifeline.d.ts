// @lifeline/client — type declarations of the public API (lifeline.js).
//
// Only the public surface is declared here; the browser driver (driver.js) and the wasm-bindgen
// glue, bundled into the same module, are implementation details and not part of the API.

/** A rung of the transport ladder, best first. */
export type Transport = 'websocket' | 'sse' | 'long-poll';

/** The connection states. `closed` and `failed` are final. */
export type ConnectionState = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'closed' | 'failed';

/** A backoff policy (full jitter): delay n is random in `[floor, min(cap, base·2^n)]`. */
export interface BackoffOptions {
  baseMs?: number;
  capMs?: number;
  floorMs?: number;
}

/** Options of `new Client(...)`. Give `token`, `getToken`, or both. */
export interface ClientOptions {
  /** The server's base URL, e.g. `https://chat.example` or `http://127.0.0.1:8787`. */
  url: string;
  /** A token to start with. */
  token?: string;
  /**
   * Called whenever a fresh token is needed: at start without `token`, and when the server refuses
   * the current one (expired). One call at a time. A fresh token refused again is fatal.
   */
  getToken?: () => string | Promise<string>;
  /** Allowed transports, best first. Default: all three. */
  transports?: Transport[];
  /**
   * `single` (default): one transport carries everything. `hybrid`: messages on SSE (then long
   * polling), presence and typing on a WebSocket of their own; while that WebSocket is down,
   * presence and typing come over the messages transport (the state says `degraded`).
   */
  strategy?: 'single' | 'hybrid';
  /** Remember the transport that last worked for this URL in `localStorage`. Default: true. */
  rememberTransport?: boolean;
  /** Connect at once. Default: true; otherwise call `connect()`. */
  autoConnect?: boolean;
  /** Where to load the `.wasm` from (a URL, `Response` or `WebAssembly.Module`). Default: next to the module. */
  wasm?: string | URL | Response | WebAssembly.Module;
  /** A transport that has not opened after this long has failed. Default 10000. */
  connectTimeoutMs?: number;
  /** An opened transport that sends no first frame in this long has failed. Default 5000. */
  firstFrameTimeoutMs?: number;
  /** Start the next transport in parallel when the first is this slow. Default 3000. */
  raceAfterMs?: number;
  /** On a first visit (no remembered transport), start the next transport in parallel after this long instead. Default 50. */
  firstVisitRaceAfterMs?: number;
  /** Ping a quiet WebSocket after this long. Default 7000. */
  pingIntervalMs?: number;
  /** A transport silent this long is dead. Default 15000. */
  livenessTimeoutMs?: number;
  /** How long the server may hold a long poll. Default 10000. */
  pollWaitMs?: number;
  /** A message not acknowledged after this long fails with `timeout`. Default 60000. */
  sendTimeoutMs?: number;
  /** Healthy this long, past failures are forgotten. Default 10000. */
  stableAfterMs?: number;
  /** Step down a transport after this many failures in a row. Default 2. */
  stepDownAfter?: number;
  /** Give up (state `failed`) after this many attempts in a row. Default: never. */
  maxAttempts?: number;
  /** Delays between reconnection attempts. Default base 500, cap 15000, floor 100. */
  backoff?: BackoffOptions;
  /** Delays between probes of a better transport while degraded. Default base 4000, cap 60000, floor 1000. */
  probeBackoff?: BackoffOptions;
  /** Seed of the client's jitter. Default: random. Message ids never come from it: they are random UUIDs from `crypto.getRandomValues`. */
  seed?: number;
}

/** The connection state and what the connection panel of an app shows. */
export interface Status {
  state: ConnectionState;
  /** The transport being tried (`connecting`) or carrying the connection (`connected`). */
  transport: Transport | null;
  /** Attempts since the last healthy connection (`connecting`, `reconnecting`). */
  attempt: number | null;
  /** Connected, but on a lower transport than allowed; better ones are probed in the background. */
  degraded: boolean;
  /** When the next attempt starts, in ms since the epoch (`reconnecting`; null while offline or waiting for a token). */
  nextRetryAt: number | null;
  /** Why the last attempt failed (`reconnecting`) or why the client gave up (`failed`). */
  error: string | null;
}

/** The `state` event: a new status, the previous state and why it changed. */
export interface StateEvent extends Status {
  previous: ConnectionState;
  /** A human-readable cause, e.g. `websocket refused with HTTP 403: …`. */
  cause: string;
}

/** A stored message. Delivered once, in `seq` order. */
export interface Message {
  /** The server's sequence number (global, increasing). */
  seq: number;
  conversation: string;
  /** The sender's user id. */
  from: string;
  /** The sender's message id (its idempotency key). */
  id: string;
  body: string;
  /** Server time of storage, ms since the epoch. */
  ts: number;
}

/** A page of history, oldest first. */
export interface HistoryPage {
  messages: Message[];
  /** Pass as `before` to get the next older page; absent when there is none. */
  nextBefore?: number;
}

export interface PresenceEvent {
  conversation: string;
  user: string;
  online: boolean;
}

export interface TypingEvent {
  conversation: string;
  user: string;
}

/** Messages between `lastSeen` and `resumedAfter` are not on the stream; fetch them with `history` if they matter. */
export interface DiscontinuityEvent {
  lastSeen: number;
  resumedAfter: number;
}

export interface ErrorEvent {
  code: ErrorCode | ServerErrorCode;
  message: string;
  conversation?: string;
}

/**
 * Which transport carries the connection now, and every transport opening or open (a probe, a
 * race). Under `strategy: 'hybrid'` messages never use a WebSocket: a `websocket` entry is the
 * link of presence and typing (live once the server said hello on it).
 */
export interface TransportEvent {
  transport: Transport | null;
  links: { transport: Transport; live: boolean }[];
}

/** A measured round trip (WebSocket ping/pong), in ms. */
export interface RttEvent {
  rtt: number;
}

/** The acknowledgement of a sent message. */
export interface Ack {
  id: string;
  seq: number;
}

export interface SubscribedEvent {
  conversation: string;
}

/** Every event, by name. */
export interface ClientEvents {
  state: StateEvent;
  message: Message;
  presence: PresenceEvent;
  typing: TypingEvent;
  discontinuity: DiscontinuityEvent;
  error: ErrorEvent;
  transport: TransportEvent;
  rtt: RttEvent;
  ack: Ack;
  subscribed: SubscribedEvent;
}

/** Codes the server puts in errors. */
export type ServerErrorCode =
  | 'unauthorized' | 'token_expired' | 'forbidden' | 'rate_limited' | 'bad_frame' | 'too_large'
  | 'id_reused' | 'going_away' | 'unsupported_version' | 'skipped' | 'internal' | 'unknown';

/** Codes of `LifelineError`. */
export type ErrorCode =
  /** Bad constructor options. */
  | 'bad_options'
  /** Too many unacknowledged messages are waiting. */
  | 'outbox_full'
  /** The body is larger than 16 KiB. */
  | 'too_large'
  /** The conversation id is not 1–64 ASCII letters, digits, `-_.:`. */
  | 'invalid_conversation'
  /** The client is closed or failed. */
  | 'closed'
  /** Not connected (`typing`). */
  | 'not_connected'
  /** No acknowledgement within `sendTimeoutMs`; the server may or may not have stored the message. */
  | 'timeout'
  /** The server refused the message for good; see `serverCode`. */
  | 'rejected'
  /** A history request failed on the network. */
  | 'network'
  /** A history response was not a page. */
  | 'bad_response'
  /** A history request got an HTTP error without a code. */
  | 'http_error'
  /** The WebAssembly could not be loaded. */
  | 'load_failed'
  | 'internal'
  | ServerErrorCode;

/** The error `send`, `subscribe`, `history` and friends reject with. */
export class LifelineError extends Error {
  readonly name: 'LifelineError';
  readonly code: ErrorCode;
  /** The message id (`send` failures). */
  readonly id?: string;
  /** The server's code when `code` is `rejected`. */
  readonly serverCode?: ServerErrorCode;
  /** The HTTP status (`history` failures). */
  readonly status?: number;
}

/**
 * A connection to a Lifeline server that stays up: it falls back from WebSocket to Server-Sent
 * Events to long polling and climbs back, resumes from where it stopped, and delivers every
 * message exactly once and in order.
 *
 * ```js
 * const client = new Client({ url: 'http://127.0.0.1:8787', getToken: fetchMyToken });
 * client.on('message', (m) => console.log(m.from, m.body));
 * await client.subscribe('general');
 * await client.send('general', 'hello');
 * ```
 */
export class Client {
  constructor(options: ClientOptions);
  /** Resolves once the WebAssembly is loaded and the client started; rejects (code `bad_options` or `load_failed`) if it cannot. */
  readonly ready: Promise<void>;
  /** The connection state now. */
  readonly status: Status;
  /** The highest sequence number delivered so far. */
  readonly cursor: number | null;
  /** Messages sent and not yet acknowledged. */
  readonly pending: number;
  /** Starts connecting (only needed with `autoConnect: false`). */
  connect(): Promise<void>;
  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof ClientEvents>(type: K, listener: (event: ClientEvents[K]) => void): () => void;
  /** Removes a listener. */
  off<K extends keyof ClientEvents>(type: K, listener: (event: ClientEvents[K]) => void): void;
  /**
   * Sends a message. Resolves when the server stored it (its `ack`); queued while disconnected and
   * retransmitted after reconnects, never stored twice. Rejects with a `LifelineError`
   * (`too_large`, `outbox_full`, `invalid_conversation`, `closed`, `timeout`, `rejected`).
   */
  send(conversation: string, body: string): Promise<Ack>;
  /** Joins a conversation (durable membership); resolves when the server confirmed it. */
  subscribe(conversation: string): Promise<void>;
  /** Leaves a conversation. */
  unsubscribe(conversation: string): Promise<void>;
  /** Tells the conversation the user is typing. Returns false (nothing sent) when not connected. */
  typing(conversation: string): boolean;
  /** The newest `limit` (1–100, default 50) messages before `before`, oldest first. */
  history(conversation: string, options?: { before?: number; limit?: number }): Promise<HistoryPage>;
  /** Closes at once; unacknowledged sends reject with `closed`. */
  close(): void;
  /** Refuses new sends, waits up to `timeoutMs` (default 5000) for pending ones, then closes. */
  closeGracefully(timeoutMs?: number): Promise<void>;
}

/** Loads the WebAssembly ahead of time (optional: the first `Client` does it). */
export function load(wasm?: string | URL | Response | WebAssembly.Module): Promise<unknown>;
