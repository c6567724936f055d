// The page side of tests/wasm_browser_test.go and the browser benchmark:
// evaluated in a page that the gateway serves (so its origin is the
// gateway's), it defines globalThis.suite, whose functions the Go test
// calls one at a time with Runtime.evaluate. Each returns a JSON value.
"use strict";

globalThis.suite = (() => {
  let ferry = null;
  const gateways = {}; // by name
  const statuses = {}; // by gateway name: every onstatus, in order
  const waiters = []; // functions to run when a status arrives
  let paused = null; // the socket of floodStart

  const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
  const sha256 = async (bytes) => hex(await crypto.subtle.digest("SHA-256", bytes));
  const errorInfo = (e) => ({
    name: e?.name ?? "", message: String(e?.message ?? e), code: e?.code ?? 0, reason: e?.reason ?? "",
    isFerryError: ferry !== null && e instanceof ferry.FerryError,
  });

  function randomBytes(size) {
    const b = new Uint8Array(size);
    for (let i = 0; i < size; i += 65536) crypto.getRandomValues(b.subarray(i, Math.min(size, i + 65536)));
    return b;
  }

  // readAll reads a socket to its end into one buffer of at most max
  // bytes, with a BYOB reader (byob) or the default reader.
  async function readAll(sock, max, byob) {
    let buffer = new ArrayBuffer(max);
    let off = 0;
    if (byob) {
      const reader = sock.readable.getReader({ mode: "byob" });
      for (;;) {
        if (off === max) {
          const { done } = await reader.read(new Uint8Array(1));
          if (!done) throw new Error(`more than ${max} bytes came back`);
          break;
        }
        const { value, done } = await reader.read(new Uint8Array(buffer, off, max - off));
        if (done) {
          if (value) buffer = value.buffer;
          break;
        }
        buffer = value.buffer;
        off += value.byteLength;
      }
      reader.releaseLock();
    } else {
      const reader = sock.readable.getReader();
      const out = new Uint8Array(buffer);
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        if (off + value.byteLength > max) throw new Error(`more than ${max} bytes came back`);
        out.set(value, off);
        off += value.byteLength;
      }
    }
    return new Uint8Array(buffer, 0, off);
  }

  async function writeAll(sock, data, chunk) {
    const writer = sock.writable.getWriter();
    for (let i = 0; i < data.length; i += chunk) await writer.write(data.subarray(i, Math.min(data.length, i + chunk)));
    await writer.close();
  }

  return {
    // load imports ferry.js, from this origin unless told another URL.
    async load(from = "/ferry/ferry.js") {
      ferry = await import(from);
      return Object.keys(ferry).sort();
    },

    // connect connects gateway `name`; a refusal is returned, not thrown.
    async connect(name, options = {}) {
      statuses[name] = [];
      try {
        gateways[name] = await ferry.connect(options.url, {
          token: options.token,
          keepalive: options.keepalive,
          onstatus: (s) => {
            statuses[name].push({ state: s.state, error: s.error && errorInfo(s.error) });
            for (const w of waiters.splice(0)) w();
          },
        });
        return { ok: true, url: gateways[name].url };
      } catch (e) {
        return { ok: false, error: errorInfo(e) };
      }
    },

    // waitStatus waits until gateway `name` has reported a status of state
    // after the first `after` ones, and returns it with its index.
    async waitStatus(name, state, after = 0) {
      for (;;) {
        const i = statuses[name].findIndex((s, i) => i >= after && s.state === state);
        if (i >= 0) return { index: i, status: statuses[name][i], all: statuses[name] };
        await new Promise((r) => waiters.push(r));
      }
    },

    statuses: (name) => statuses[name],

    // demoEcho waits until the demo page (the gateway's /) has had its
    // hello echoed, and returns its log and tunnel state, and when the
    // first echoed byte came (ms since navigation started).
    demoEcho() {
      return new Promise((resolve) => {
        const mark = () => performance.getEntriesByName("ferry:first-echo")[0];
        const done = () =>
          resolve({ log: document.getElementById("log").innerText, state: document.getElementById("state").textContent, firstEcho: mark().startTime });
        if (mark()) return done();
        new PerformanceObserver((list, obs) => {
          if (!mark()) return;
          obs.disconnect();
          done();
        }).observe({ entryTypes: ["mark"] });
      });
    },

    // dialError dials a service that should be refused and returns how.
    async dialError(name, service) {
      try {
        const sock = await gateways[name].dial(service);
        sock.close();
        return { ok: true };
      } catch (e) {
        return { ok: false, error: errorInfo(e) };
      }
    },

    // dialEnd dials a service with options (timeout) and, when abortAfter
    // is set, aborts it that many ms later (0: at once, in the same
    // task), and returns how the dial ended and how long it took.
    async dialEnd(name, service, { timeout, abortAfter } = {}) {
      const ctl = new AbortController();
      const start = performance.now();
      const p = gateways[name].dial(service, { timeout, signal: abortAfter === undefined ? undefined : ctl.signal });
      if (abortAfter === 0) ctl.abort();
      else if (abortAfter !== undefined) setTimeout(() => ctl.abort(), abortAfter);
      try {
        const sock = await p;
        await sock.close();
        return { ok: true, ms: performance.now() - start };
      } catch (e) {
        return { ok: false, ms: performance.now() - start, error: errorInfo(e), aborted: e === ctl.signal.reason };
      }
    },

    // echo sends text through a new stream to an echo service and returns
    // what came back, reading with the default reader.
    async echo(name, service, text) {
      const sock = await gateways[name].dial(service);
      const info = await sock.opened;
      const data = new TextEncoder().encode(text);
      await writeAll(sock, data, 1 << 16);
      const back = await readAll(sock, data.length + 1024, false);
      await sock.closed;
      return { text: new TextDecoder().decode(back), opened: info };
    },

    // bulk sends size random bytes through each of `streams` streams in
    // parallel, reads the echo with BYOB readers, and returns the SHA-256
    // of what was sent and of what came back, per stream.
    async bulk(name, service, streams, size) {
      const gw = gateways[name];
      const start = performance.now();
      const results = await Promise.all(
        Array.from({ length: streams }, async () => {
          const data = randomBytes(size);
          const sock = await gw.dial(service);
          const [back] = await Promise.all([readAll(sock, size, true), writeAll(sock, data, 64 << 10)]);
          await sock.closed;
          return { sent: await sha256(data), received: await sha256(back), bytes: back.length };
        }),
      );
      const ms = performance.now() - start;
      return { results, ms, mbps: (2 * streams * size) / 1e6 / (ms / 1000) };
    },

    // floodStart opens a stream to a service that sends without end, and
    // reads nothing.
    async floodStart(name, service) {
      paused = await gateways[name].dial(service);
      return true;
    },

    // floodDrain reads the paused stream to its end and returns how many
    // bytes came and whether each was its offset modulo 251.
    async floodDrain() {
      const reader = paused.readable.getReader();
      let n = 0;
      let bad = -1;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (let i = 0; i < value.length; i++) {
          if (bad < 0 && value[i] !== (n + i) % 251) bad = n + i;
        }
        n += value.length;
      }
      await paused.close();
      return { bytes: n, firstBad: bad };
    },

    // redis runs PING, SET and GET through a stream to a redis service.
    async redis(name, service, key, value) {
      const sock = await gateways[name].dial(service);
      const writer = sock.writable.getWriter();
      const reader = sock.readable.getReader();
      const enc = new TextEncoder();
      const dec = new TextDecoder();
      let pending = new Uint8Array(0);
      const cmd = (...args) => `*${args.length}\r\n` + args.map((a) => `$${enc.encode(a).length}\r\n${a}\r\n`).join("");
      const line = () => {
        for (let i = 0; i + 1 < pending.length; i++) if (pending[i] === 13 && pending[i + 1] === 10) return i;
        return -1;
      };
      // reply reads one RESP reply: +simple, -error, :integer or $bulk.
      const reply = async () => {
        for (;;) {
          const nl = line();
          if (nl >= 0) {
            const head = dec.decode(pending.subarray(0, nl));
            if (head[0] !== "$") {
              pending = pending.slice(nl + 2);
              return head;
            }
            const len = Number(head.slice(1));
            if (len < 0) {
              pending = pending.slice(nl + 2);
              return null;
            }
            if (pending.length >= nl + 2 + len + 2) {
              const body = dec.decode(pending.subarray(nl + 2, nl + 2 + len));
              pending = pending.slice(nl + 2 + len + 2);
              return body;
            }
          }
          const { value, done } = await reader.read();
          if (done) throw new Error("redis closed the stream");
          const joined = new Uint8Array(pending.length + value.length);
          joined.set(pending);
          joined.set(value, pending.length);
          pending = joined;
        }
      };
      const out = {};
      await writer.write(enc.encode(cmd("PING")));
      out.ping = await reply();
      await writer.write(cmd("SET", key, value)); // a string chunk, sent as UTF-8
      out.set = await reply();
      await writer.write(enc.encode(cmd("GET", key)));
      out.get = await reply();
      await writer.close();
      const { done } = await reader.read();
      out.endAfterQuit = done;
      await sock.closed;
      return out;
    },

    // sink sends size bytes through one stream to a service that reads
    // them and answers with one byte once it has them all, and returns
    // the rate.
    async sink(name, service, size) {
      const sock = await gateways[name].dial(service);
      const data = randomBytes(1 << 20);
      const writer = sock.writable.getWriter();
      const reader = sock.readable.getReader();
      const start = performance.now();
      for (let sent = 0; sent < size; sent += data.length) await writer.write(data);
      const { value } = await reader.read();
      const ms = performance.now() - start;
      await writer.close();
      await sock.close();
      return { ms, mbps: size / 1e6 / (ms / 1000), ack: value?.length ?? 0 };
    },

    // rawSink does what sink does through a plain WebSocket to url, which
    // reads and answers with one message once it has size bytes: the
    // browser's own ceiling.
    async rawSink(url, size) {
      const ws = new WebSocket(url);
      ws.binaryType = "arraybuffer";
      await new Promise((resolve, reject) => {
        ws.onopen = resolve;
        ws.onerror = () => reject(new Error("WebSocket to " + url + " failed"));
      });
      const ack = new Promise((resolve) => (ws.onmessage = resolve));
      const data = randomBytes(1 << 20);
      const start = performance.now();
      for (let sent = 0; sent < size; sent += data.length) {
        ws.send(data);
        // Keep the browser's send queue bounded, as a stream's window does.
        while (ws.bufferedAmount > 8 << 20) await new Promise((r) => setTimeout(r, 0));
      }
      await ack;
      const ms = performance.now() - start;
      ws.close();
      return { ms, mbps: size / 1e6 / (ms / 1000) };
    },

    async close(name) {
      await gateways[name].close();
      delete gateways[name];
      return true;
    },

    stats: () => ferry.stats(),
  };
})();
"loaded";
