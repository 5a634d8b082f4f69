// Types of @courier/client (hand-written; the implementation is the plain ES modules
// beside this file, checked against these declarations by `npm test`).

export type State = "disconnected" | "connecting" | "connected";
export type Priority = "high" | "normal" | "low";

/** Where the client keeps the ids it handled, so a reload does not show them twice. */
export interface SeenStore {
  /** Ids seen before (called once, before the first connection). */
  load(): Iterable<string> | Promise<Iterable<string>>;
  /** Remember these ids (called before their ack is sent). */
  add(ids: string[]): void | Promise<void>;
}

export interface CourierOptions {
  /** A fresh token for every (re)connect and refresh; sent as the `bearer` subprotocol.
   * Throw UnauthorizedError (or return "") to stop: the user is signed out. */
  getToken?: () => string | Promise<string>;
  /** A fixed token instead of getToken (no refresh possible). */
  token?: string;
  /** The WebSocket constructor: the browser's by default; `ws` on Node 20. */
  websocket?: unknown;
  /** Connect to `/v1/ws/{user}` (the server checks it is the token's `sub`). */
  user?: string;
  /** Names this device in presence (`?device=`). */
  device?: string;
  /** Cap of the first reconnect delay, ms (doubles per failure). Default 500. */
  minReconnectDelay?: number;
  /** Largest reconnect delay, ms. Default 20000. */
  maxReconnectDelay?: number;
  /** A connection must stay up this long (ms) before the delays start again from the
   * smallest. Default 5000. */
  stableAfter?: number;
  /** ms to wait for the `connected` frame before giving up on a socket. Default 10000. */
  connectTimeout?: number;
  /** ms to wait for a `pong` (capped at the heartbeat interval). Default 10000. */
  pongTimeout?: number;
  /** ms to gather acks into one frame. Default 20. */
  ackDelay?: number;
  /** "auto" (default): ack once every `message` listener returned or resolved.
   * "manual": call message.ack() / client.ack(id). */
  ack?: "auto" | "manual";
  /** How many handled ids to remember in memory. Default 10000. */
  dedupeSize?: number;
  /** Keep handled ids across reloads: sessionStore() or indexedDBStore(). */
  seenStore?: SeenStore | null;
  /** Refresh the token this many ms before its `exp` (at most half its lifetime).
   * Default 30000. */
  refreshMargin?: number;
  /** ms to wait for `refreshed`. Default 10000. */
  refreshTimeout?: number;
  /** Frames (reply, cancel) kept while not connected. Default 1000. */
  outboxSize?: number;
  /** React to online/offline, visibilitychange and pagehide. Default true. */
  networkEvents?: boolean;
  /** Where online/offline/pagehide come from (default `window` in browsers). */
  networkEventTarget?: EventTarget | null;
  /** Where visibilitychange comes from (default `document` in browsers). */
  visibilityTarget?: EventTarget | null;
  /** Uniform in [0, 1): the jitter's randomness (tests). Default Math.random. */
  random?: () => number;
}

/** A `message` frame, as the app's handler gets it. */
export interface Message {
  id: string;
  priority: Priority;
  payload: any;
  /** ISO 8601 (UTC, ms): when the producer enqueued it. */
  createdAt: string;
  /** 1 for the first push; each redelivery adds 1. */
  attempt: number;
  topic?: string;
  collapseKey?: string;
  /** The producer waits for reply(data). */
  replyRequested: boolean;
  /** The frame as received. */
  frame: Record<string, any>;
  /** Ack it (manual mode; in auto mode the client acks after your handler). */
  ack(): void;
  /** Answer a message that had `reply_requested`; counts as its ack. */
  reply(data: unknown): void;
}

/** A task's latest status (the server's JSON: task_id, status, progress, ...). */
export interface TaskState {
  task_id: string;
  status: "pending" | "running" | "progress" | "completed" | "failed" | "cancelled";
  progress?: number | null;
  message?: string | null;
  result?: unknown;
  error?: unknown;
  [field: string]: unknown;
}

export interface StateContext {
  newState: State;
  oldState: State;
}
export interface ConnectingContext {
  /** The close code that caused it (0: none, e.g. connect() or offline). */
  code: number;
  reason: string;
  /** Failures in a row so far. */
  attempt: number;
  /** ms until the next attempt; null while waiting for the browser to be online. */
  delay: number | null;
}
export interface ConnectedContext {
  connectionId: string | null;
  userId: string | null;
  /** seconds */
  heartbeatInterval: number;
  serverTime: string;
}
export interface DisconnectedContext {
  code: number;
  reason: string;
  /** Why it stopped: a RefusedError (4401/4403 twice), an UnauthorizedError, or null
   * after disconnect(). */
  error: Error | null;
}
export interface ErrorContext {
  /** token (getToken failed, retried), refused (stopped), unauthorized (stopped),
   * server (an `error` frame), handler (a listener threw; not acked), refresh,
   * transport, protocol, store, outbox */
  type: string;
  code?: number | string;
  detail?: string;
  error?: unknown;
  /** the `error` frame, for type "server" (its `id`, `topic` or `task_id` say what) */
  frame?: Record<string, any>;
  [field: string]: unknown;
}

export interface CourierEvents {
  state: (ctx: StateContext) => void;
  connecting: (ctx: ConnectingContext) => void;
  connected: (ctx: ConnectedContext) => void;
  disconnected: (ctx: DisconnectedContext) => void;
  /** Return a promise to ack only once it resolves (auto mode). */
  message: (message: Message) => unknown;
  /** A message seen before (a redelivery): acked again, not shown again. */
  duplicate: (ctx: { id: string; attempt: number }) => void;
  topic: (ctx: { topic: string; data: any }) => void;
  subscribed: (ctx: { topic: string }) => void;
  unsubscribed: (ctx: { topic: string }) => void;
  /** The user's unfinished tasks, right after `connected`. */
  tasks: (ctx: { tasks: TaskState[] }) => void;
  /** A task's status changed (from `tasks`, topic frames or task messages). */
  task: (state: TaskState) => void;
  broadcast: (ctx: { id: string; payload: any; system: boolean }) => void;
  refreshed: (ctx: { exp: number | null }) => void;
  error: (ctx: ErrorContext) => void;
  /** Every server frame, parsed (for debugging). */
  frame: (frame: Record<string, any>) => void;
}

export class Courier {
  /** @param url the server (`https://courier.example.com`) or its `/v1/ws` URL */
  constructor(url: string, options?: CourierOptions);
  readonly url: string;
  readonly options: Readonly<CourierOptions>;
  readonly state: State;
  /** The error that stopped the client, if any (show it to the user). */
  readonly error: Error | null;
  readonly topics: string[];
  connectionId: string | null;
  userId: string | null;
  /** true once the server answered a refresh; false if it does not know the frame. */
  readonly refreshSupported: boolean | null;
  readonly backoff: Backoff;
  readonly seen: SeenIds;

  on<E extends keyof CourierEvents>(event: E, listener: CourierEvents[E]): this;
  once<E extends keyof CourierEvents>(event: E, listener: CourierEvents[E]): this;
  off<E extends keyof CourierEvents>(event?: E, listener?: CourierEvents[E]): this;
  listenerCount(event: keyof CourierEvents): number;

  connect(): this;
  disconnect(): this;
  /** Resolves when connected; rejects when the client stops or after `timeout` ms. */
  ready(timeout?: number): Promise<void>;
  subscribe(topic: string): this;
  unsubscribe(topic: string): this;
  subscribeTask(taskId: string): this;
  unsubscribeTask(taskId: string): this;
  task(taskId: string): TaskState | undefined;
  cancel(taskId: string): void;
  reply(id: string, data: unknown): void;
  ack(ids: string | string[]): void;
}

export function websocketUrl(url: string, options?: { user?: string; device?: string }): string;

/** uniform in [0, min(max, min * 2 ** attempt)] */
export function backoffDelay(
  attempt: number,
  min: number,
  max: number,
  random?: () => number,
): number;

export class Backoff {
  constructor(options: { min: number; max: number; stableAfter: number; random?: () => number });
  min: number;
  max: number;
  stableAfter: number;
  attempts: number;
  upSince: number | null;
  next(): number;
  up(now: number): void;
  down(now: number): void;
  reset(): void;
}

export class SeenIds {
  constructor(limit?: number);
  readonly limit: number;
  readonly size: number;
  has(id: string): boolean;
  add(id: string): void;
}

export function sessionStore(options?: { key?: string; limit?: number; storage?: Storage }): SeenStore;
export function indexedDBStore(options?: {
  name?: string;
  limit?: number;
  indexedDB?: IDBFactory;
}): SeenStore;

export function tokenExp(token: string): number | null;

export class CourierError extends Error {
  constructor(message: string, details?: { code?: number | string; reason?: string; cause?: unknown });
  code: number | string | undefined;
  reason: string | undefined;
}
export class RefusedError extends CourierError {}
export class UnauthorizedError extends CourierError {}
export class TimeoutError extends CourierError {}
export class DisconnectedError extends CourierError {}

export const CloseCodes: Readonly<{
  NORMAL: 1000;
  GOING_AWAY: 1001;
  ABNORMAL: 1006;
  SLOW_READER: 1008;
  TOO_BIG: 1009;
  INTERNAL: 1011;
  SERVER_FULL: 1013;
  UNAUTHORIZED: 4401;
  FORBIDDEN: 4403;
  HEARTBEAT_MISSED: 4408;
  RATE_LIMITED: 4429;
  CLIENT_TIMEOUT: 4000;
}>;
