// Types of ferry.js, Ferry's browser client. Written by hand; the tests
// check it with `tsc --strict` against a program that uses every part.

/**
 * An error from Ferry. `code` and `reason` are the gateway's when it gave
 * them:
 *
 * - a refused or ended tunnel: the WebSocket close code and reason, such as
 *   4401 (missing, bad or expired credential: "token expired" when a
 *   signed token expires during the session), 4403 (forbidden), 4429 (too
 *   many sessions, or the gateway's buffer budget is spent), 1001 (the
 *   gateway is shutting down or draining: also when it only said it takes
 *   no new streams, a yamux GoAway, while the tunnel's open sockets carry
 *   on; the page moves to a new tunnel at once), 1011 "keepalive timeout" (the gateway
 *   stopped hearing the page), or 1006 when the
 *   browser saw the WebSocket fail and gives no reason (the gateway is
 *   unreachable, or refused the handshake with an HTTP error);
 * - a refused dial: the open status, 1 unknown service, 2 forbidden,
 *   3 connection refused, 4 timeout, 5 limit reached, 6 unreachable,
 *   7 bad request, 8 unavailable (shutting down), 9 busy (the gateway's
 *   buffer budget is spent: back off and retry, never open another
 *   tunnel for it), 10 not exposed (a service that clients expose with
 *   `ferry expose` has no exposer connected right now; a page can dial
 *   exposed services but not expose one: it cannot accept connections)
 *   (docs/PROTOCOL.md), and the gateway's message;
 * - anything else: code 0 and reason "".
 */
export declare class FerryError extends Error {
  constructor(message: string, code?: number, reason?: string);
  readonly name: "FerryError";
  readonly code: number;
  readonly reason: string;
}

/** The state of a gateway connection. */
export type State = "connected" | "reconnecting" | "closed";

/** A change of a gateway connection's state. */
export interface Status {
  readonly state: State;
  /**
   * For "reconnecting": why the tunnel ended (its close code and reason,
   * when the gateway sent them) or why the last attempt failed. For
   * "closed": null after close(), or the refusal that ended reconnection
   * (4401: the credential was refused, e.g. revoked or expired; 4403);
   * dials then fail with it. Otherwise null.
   */
  readonly error: FerryError | null;
}

export interface ConnectOptions {
  /**
   * The credential: a static token or a JWT. The browser cannot set
   * headers on a WebSocket, so it travels as the subprotocol
   * `ferry.token.<token>` next to `ferry.v1`.
   */
  token?: string;
  /**
   * Told of every state change, from a microtask: "connected" (also for
   * the first tunnel), "reconnecting" (with the error) and "closed".
   */
  onstatus?: (status: Status) => void;
  /**
   * Milliseconds of silence from the gateway after which the page pings it
   * (a yamux ping: a page cannot send WebSocket pings); when it then stays
   * silent as long again, the tunnel is dead and ends with a
   * "reconnecting" status whose error has code 1011 and reason
   * "keepalive timeout: ...". Default 25000; any message counts as life.
   */
  keepalive?: number;
}

/** How a dial may end early. */
export interface DialOptions {
  /**
   * Aborts the dial: it rejects with `signal.reason` (as fetch does) and
   * leaves nothing behind, no stream on the gateway and nothing held in
   * client.wasm.
   */
  signal?: AbortSignal;
  /**
   * Milliseconds the dial may take in all, waiting for a tunnel while
   * reconnecting and for the gateway's answer (default 30000; Infinity
   * for no limit). Past it the dial rejects with a FerryError that says
   * so and, when the tunnel is down, why: the code and reason of the last
   * "reconnecting" status.
   */
  timeout?: number;
}

/** What `opened` resolves with. */
export interface SocketInfo {
  readonly service: string;
}

/** What a socket's writable accepts; strings are sent as UTF-8. */
export type Chunk = ArrayBufferView | ArrayBuffer | string;

/**
 * One stream to a service: a TCP connection made by the gateway.
 *
 * Closing `writable` half-closes: the service reads end of file and may
 * still answer. `readable` ends when the service has closed its side (a
 * backend failure also looks like an end: docs/PROTOCOL.md). Once both
 * have ended, or after close(), `closed` resolves; it rejects with a
 * FerryError when the stream fails, as when the tunnel dies.
 */
export interface FerrySocket {
  readonly service: string;
  /** A byte stream: getReader({ mode: "byob" }) works too. */
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Chunk>;
  /** Resolved: gateway.dial resolves only once the service is connected. */
  readonly opened: Promise<SocketInfo>;
  readonly closed: Promise<void>;
  /**
   * Closes both directions; returns `closed`. What was written still
   * reaches the service; what it still sends is dropped, and if it is
   * still sending 5 s later the stream is reset, which ends the gateway's
   * connection to it (docs/PROTOCOL.md §4).
   */
  close(): Promise<void>;
}

/** A connection to one gateway, kept up across failures. */
export interface Gateway {
  /** The tunnel's ws: or wss: URL. */
  readonly url: string;
  /**
   * Opens a stream to service and resolves once the gateway has connected
   * to it; rejects with a FerryError carrying the open status and the
   * gateway's message when it refuses. While the tunnel is reconnecting,
   * it waits for the next one, up to its timeout. After close() it
   * rejects.
   */
  dial(service: string, options?: DialOptions): Promise<FerrySocket>;
  /** Closes the tunnel and every socket on it. */
  close(): Promise<void>;
}

/**
 * Connects to a gateway and resolves once the tunnel is up; rejects with a
 * FerryError when the first attempt fails (a refused credential is code
 * 4401, 4403 or 4429 with the gateway's reason). `url` is the tunnel's
 * ws:, wss:, http: or https: URL, absolute or relative to the page;
 * the default is the page's own origin with the path /tunnel.
 */
export declare function connect(url?: string | URL, options?: ConnectOptions): Promise<Gateway>;
export declare function connect(options: ConnectOptions): Promise<Gateway>;

/** Counts of what client.wasm holds, for tests and diagnostics. */
export interface Stats {
  readonly gateways: number;
  readonly sockets: number;
  /** Dials in progress. */
  readonly dials: number;
  /** WebSockets whose event handlers are not yet released. */
  readonly webSockets: number;
}

export declare function stats(): Promise<Stats>;
