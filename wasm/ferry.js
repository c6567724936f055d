// Ferry's browser client: TCP streams to a Ferry gateway's services, many
// streams over one WebSocket. The protocol runs in client.wasm (Ferry's Go
// client, built for js/wasm), which this module loads with Go's
// wasm_exec.js, both from the folder this module was loaded from.
//
//   import * as ferry from "/ferry/ferry.js";
//   const gw = await ferry.connect();             // this page's origin, /tunnel
//   const sock = await gw.dial("redis");
//   const writer = sock.writable.getWriter();
//   await writer.write(new TextEncoder().encode("PING\r\n"));
//   const { value } = await sock.readable.getReader().read();
//
// Sockets have the shape of the TCP socket APIs that web platforms ship
// (Cloudflare's connect(), Chrome's Direct Sockets): readable, writable,
// opened, closed and close(). ferry.d.ts describes the API.

// The content hashes of the files this module loads, set by
// scripts/build-wasm, so that their URLs change when they do and the
// gateway can let browsers cache them for good.
const versions = { "client.wasm": "", "wasm_exec.js": "" };

function assetURL(name) {
  const v = versions[name];
  return new URL(v ? `${name}?v=${v}` : name, import.meta.url);
}

/**
 * An error from Ferry: a refused handshake, a refused dial, or a tunnel
 * that ended. code and reason are the gateway's (see ferry.d.ts).
 */
export class FerryError extends Error {
  constructor(message, code = 0, reason = "") {
    super(message);
    this.name = "FerryError";
    this.code = code;
    this.reason = reason;
  }
}

let loading = null;

// load starts client.wasm once and resolves with its internal API.
function load() {
  loading ??= start().catch((err) => {
    loading = null; // let a later call try again
    throw err;
  });
  return loading;
}

async function start() {
  await import(assetURL("wasm_exec.js").href);
  const Go = globalThis.Go;
  const go = new Go();
  const resp = await fetch(assetURL("client.wasm"));
  if (!resp.ok) {
    throw new FerryError(`ferry: loading ${resp.url}: HTTP ${resp.status}`);
  }
  const { instance } = (resp.headers.get("Content-Type") || "").startsWith("application/wasm")
    ? await WebAssembly.instantiateStreaming(resp, go.importObject)
    : await WebAssembly.instantiate(await resp.arrayBuffer(), go.importObject);
  let api = null;
  globalThis.__ferryRegister = (a) => {
    api = a;
    return FerryError;
  };
  try {
    // main runs until it has registered the API, before run returns.
    go.run(instance).then(() => {
      console.error("ferry: client.wasm exited");
      loading = null;
    });
  } finally {
    delete globalThis.__ferryRegister;
  }
  if (api === null) {
    throw new FerryError("ferry: client.wasm did not start");
  }
  return api;
}

// call runs one of the API's waiting functions, which takes the resolve
// and reject of a Promise as its last arguments.
function call(api, name, ...args) {
  return new Promise((resolve, reject) => api[name](...args, resolve, reject));
}

// tunnelURL turns the url given to connect into a ws: or wss: URL; the
// default is this page's origin with the path /tunnel.
function tunnelURL(url) {
  const u = new URL(url ?? "/tunnel", globalThis.location?.href);
  if (u.protocol === "http:") u.protocol = "ws:";
  else if (u.protocol === "https:") u.protocol = "wss:";
  if (u.protocol !== "ws:" && u.protocol !== "wss:") {
    throw new TypeError(`ferry: ${u.href} is not a ws:, wss:, http: or https: URL`);
  }
  u.hash = "";
  return u.href;
}

/**
 * Connects to a gateway's tunnel and resolves once the tunnel is up. The
 * gateway connection reconnects by itself when the tunnel dies.
 */
export async function connect(url, options) {
  if (options === undefined && url != null && typeof url === "object" && !(url instanceof URL)) {
    options = url;
    url = undefined;
  }
  options ??= {};
  const href = tunnelURL(url == null ? undefined : String(url));
  const token = options.token ?? "";
  if (typeof token !== "string") throw new TypeError("ferry: options.token must be a string");
  const keepalive = options.keepalive ?? 0;
  if (typeof keepalive !== "number" || !(keepalive >= 0)) {
    throw new TypeError("ferry: options.keepalive must be a number of milliseconds, 0 or more");
  }
  const onstatus = options.onstatus;
  const status = (state, error) => {
    // Later, so that a throwing or re-entrant handler cannot reach Go.
    if (typeof onstatus === "function") queueMicrotask(() => onstatus({ state, error: error ?? null }));
  };
  const api = await load();
  const id = await call(api, "connect", href, token, keepalive, status);
  return new Gateway(api, id, href);
}

/** Counts of what client.wasm holds, for tests and diagnostics. */
export async function stats() {
  const api = await load();
  return api.stats();
}

class Gateway {
  #api;
  #id;
  #closing = null;
  #sockets = new Set();

  constructor(api, id, url) {
    this.#api = api;
    this.#id = id;
    this.url = url;
  }

  async dial(service, options) {
    if (typeof service !== "string" || service === "") {
      throw new TypeError("ferry: dial needs a service name");
    }
    const { signal, timeout = 30000 } = options ?? {};
    if (typeof timeout !== "number" || !(timeout > 0)) {
      throw new TypeError("ferry: the dial timeout must be a number of milliseconds above 0 (Infinity for none)");
    }
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new TypeError("ferry: the dial signal must be an AbortSignal");
    }
    signal?.throwIfAborted();
    if (this.#closing) throw new FerryError("ferry: the gateway connection is closed");
    const api = this.#api;
    let did = 0;
    const onAbort = () => api.cancelDial(did);
    let sid;
    try {
      sid = await new Promise((resolve, reject) => {
        did = api.dial(this.#id, service, timeout, resolve, reject);
        signal?.addEventListener("abort", onAbort, { once: true });
      });
    } catch (err) {
      // An aborted dial rejects with the signal's reason, as fetch does.
      if (signal?.aborted) throw signal.reason;
      throw err;
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
    if (this.#closing || signal?.aborted) {
      // Closed or aborted as the socket arrived: it is not the page's.
      api.closeSocket(sid);
      if (signal?.aborted) throw signal.reason;
      throw new FerryError("ferry: the gateway connection is closed");
    }
    const sock = new Socket(api, sid, service, () => this.#sockets.delete(sock));
    this.#sockets.add(sock);
    return sock;
  }

  close() {
    if (!this.#closing) {
      const err = new FerryError("ferry: the gateway connection is closed");
      for (const sock of this.#sockets) sock._end(err);
      this.#closing = call(this.#api, "closeGateway", this.#id);
    }
    return this.#closing;
  }
}

// toBytes turns what a page writes into a Uint8Array.
function toBytes(chunk) {
  if (chunk instanceof Uint8Array) return chunk;
  if (ArrayBuffer.isView(chunk)) return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk);
  if (typeof chunk === "string") return new TextEncoder().encode(chunk);
  throw new TypeError("ferry: write a Uint8Array, another ArrayBufferView, an ArrayBuffer or a string");
}

class Socket {
  #api;
  #id;
  #onRelease;
  #rc; // the readable's controller
  #wc; // the writable's controller
  #readDone = false;
  #writeDone = false;
  #released = false;
  #resolveClosed;
  #rejectClosed;

  constructor(api, id, service, onRelease) {
    this.#api = api;
    this.#id = id;
    this.#onRelease = onRelease;
    this.service = service;
    this.opened = Promise.resolve({ service });
    this.closed = new Promise((resolve, reject) => {
      this.#resolveClosed = resolve;
      this.#rejectClosed = reject;
    });
    this.closed.catch(() => {}); // not unhandled when nobody looks
    // A byte stream: reads may bring their own buffer. Nothing is read
    // from the tunnel before the page asks (highWaterMark 0), so a page
    // that stops reading stops the service.
    this.readable = new ReadableStream({
      type: "bytes",
      start: (c) => {
        this.#rc = c;
      },
      pull: (c) =>
        call(api, "read", id).then(
          (chunk) => {
            if (this.#readDone) return;
            if (chunk === null) {
              this.#readDone = true;
              c.close();
              c.byobRequest?.respond(0);
              this.#maybeRelease();
            } else {
              c.enqueue(chunk);
            }
          },
          (err) => this._end(err),
        ),
      cancel: () => {
        this.#readDone = true;
        this.#maybeRelease();
      },
    });
    this.writable = new WritableStream({
      start: (c) => {
        this.#wc = c;
      },
      write: (chunk) =>
        call(api, "write", id, toBytes(chunk)).catch((err) => {
          this._end(err);
          throw err;
        }),
      close: () =>
        call(api, "closeWrite", id).then(
          () => {
            this.#writeDone = true;
            this.#maybeRelease();
          },
          (err) => {
            this._end(err);
            throw err;
          },
        ),
      abort: () => {
        this.#writeDone = true;
        this._end(null);
      },
    });
  }

  /** Closes both directions; resolves when done, like closed. */
  close() {
    this._end(null);
    return this.closed;
  }

  #maybeRelease() {
    if (this.#readDone && this.#writeDone) this.#release(null);
  }

  // _end closes both directions, with err (or normally for null).
  _end(err) {
    if (this.#released) return;
    if (!this.#readDone) {
      this.#readDone = true;
      if (err) {
        this.#rc.error(err);
      } else {
        try {
          this.#rc.close();
          this.#rc.byobRequest?.respond(0);
        } catch {
          // already closing
        }
      }
    }
    if (!this.#writeDone) {
      this.#writeDone = true;
      this.#wc.error(err ?? new FerryError("ferry: the socket is closed"));
    }
    this.#release(err);
  }

  #release(err) {
    if (this.#released) return;
    this.#released = true;
    this.#api.closeSocket(this.#id);
    this.#onRelease();
    if (err) this.#rejectClosed(err);
    else this.#resolveClosed();
  }
}
