#!/usr/bin/env node
// An interop peer for Ferry's tunnel package, built on node `ws`
// (installed here by `npm ci`).
//
//   node peer.js server
//       Echo server on 127.0.0.1, port chosen by the system. The first line
//       on stdout is the port. Every message is echoed with its type. A
//       request path of /close?code=C&reason=R makes the server echo one
//       message and then close with code C and reason R. The server stops
//       when stdin reaches end of file (or when it is killed).
//
//   node peer.js client URL [--max N] [--close CODE] [--reason R]
//       Round-trips text and binary messages of sizes 0 to 16 MiB (up to
//       --max), whole and fragmented, with a ping after each, checks every
//       echo byte for byte, then closes with CODE (default 1000) and R.
//       Text fragments are cut at byte offsets, inside runes too.
//
//   node peer.js client URL --wait-close
//       Connects and waits for the server to close.
//
//   node peer.js client URL --send-binary N
//       Sends one binary message of N bytes, then waits for the close.
//
//   node peer.js client URL --send-invalid-utf8
//       Sends a text message that is not UTF-8, then waits for the close.
//
// In client mode the last line on stdout is `close CODE REASON`: the close
// code and reason the server sent. Failures go to stderr with exit status 1.
//
// Compression (permessage-deflate) is off; the options are built in one
// place (wsOptions) so a --deflate flag can turn it on later.
'use strict';

const crypto = require('node:crypto');
const { parseArgs } = require('node:util');
const { WebSocket, WebSocketServer } = require('ws');

const SIZES = [0, 1, 125, 126, 127, 65535, 65536, 1 << 20, 16 << 20];
// Only these [text, fragmented] combinations run at 16 MiB, to keep the
// test quick.
const BIG = 16 << 20;
const BIG_CASES = new Set(['false,false', 'true,true']);
const READ_LIMIT = 32 << 20;

function wsOptions(opts) {
  return {
    perMessageDeflate: false, // no permessage-deflate yet
    maxPayload: READ_LIMIT,
  };
}

function fail(msg) {
  process.stderr.write(`peer.js: ${msg}\n`);
  process.exit(1);
}

// n bytes of UTF-8 text that mixes 1- and 2-byte runes.
function textPayload(n) {
  const pattern = Buffer.from('ferry-τ ');
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i += pattern.length) pattern.copy(b, i);
  // A 2-byte rune cut at the end becomes a space.
  if (n > 0 && b[n - 1] >= 0xc0) b[n - 1] = 0x20;
  return b;
}

function serve(opts) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, ...wsOptions(opts) });
  wss.on('listening', () => {
    process.stdout.write(`${wss.address().port}\n`);
  });
  wss.on('error', (err) => fail(`server: ${err.message}`));
  wss.on('connection', (ws, req) => {
    const q = new URL(req.url, 'http://peer').searchParams;
    const closeCode = Number(q.get('code') || 0);
    const closeReason = q.get('reason') || '';
    ws.on('error', () => {}); // a failed connection is closed by ws itself
    ws.on('message', (data, isBinary) => {
      ws.send(data, { binary: isBinary });
      if (closeCode) ws.close(closeCode, closeReason);
    });
  });
  // Run until stdin closes, so an orphaned server does not linger.
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}

// messages turns a WebSocket's events into an awaitable queue.
function messages(ws) {
  const queue = [];
  let waiting = null;
  let closed = null;
  const push = (item) => {
    if (waiting) {
      const w = waiting;
      waiting = null;
      w(item);
    } else {
      queue.push(item);
    }
  };
  ws.on('message', (data, isBinary) => push({ data, isBinary }));
  ws.on('close', (code, reason) => {
    closed = { code, reason: reason.toString() };
    push({ closed });
  });
  return {
    next() {
      if (queue.length > 0) return Promise.resolve(queue.shift());
      if (closed) return Promise.resolve({ closed });
      return new Promise((resolve) => { waiting = resolve; });
    },
    closed: () => new Promise((resolve) => {
      if (closed) resolve(closed);
      else ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    }),
  };
}

function sendP(ws, data, options) {
  return new Promise((resolve, reject) => {
    ws.send(data, options, (err) => (err ? reject(err) : resolve()));
  });
}

function pingP(ws) {
  const id = crypto.randomBytes(8);
  return new Promise((resolve, reject) => {
    const done = (err) => {
      clearTimeout(timer);
      ws.off('pong', onPong);
      ws.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const timer = setTimeout(() => done(new Error('no pong within 10s')), 10000);
    const onPong = (data) => {
      if (data.equals(id)) done();
    };
    const onClose = (code) => done(new Error(`closed (${code}) before the pong`));
    ws.on('pong', onPong);
    ws.on('close', onClose);
    ws.ping(id, undefined, (err) => err && done(err));
  });
}

async function roundTrips(ws, msgs, max) {
  for (const size of SIZES) {
    if (size > max) continue;
    for (const text of [true, false]) {
      for (const fragmented of [false, true]) {
        if (size === BIG && !BIG_CASES.has(`${text},${fragmented}`)) continue;
        const want = text ? textPayload(size) : crypto.randomBytes(size);
        const binary = !text;
        if (fragmented) {
          const a = Math.floor(size / 3);
          const b = Math.floor((2 * size) / 3);
          await sendP(ws, want.subarray(0, a), { binary, fin: false });
          await sendP(ws, want.subarray(a, b), { binary, fin: false });
          await sendP(ws, want.subarray(b), { binary, fin: true });
        } else {
          await sendP(ws, want, { binary });
        }
        const what = `${text ? 'text' : 'binary'} message of ${size} bytes (fragmented ${fragmented})`;
        const pong = pingP(ws).catch((err) => err);
        const got = await msgs.next();
        if (got.closed) throw new Error(`${what}: connection closed: ${got.closed.code} ${got.closed.reason}`);
        const pingErr = await pong;
        if (pingErr) throw new Error(`ping after ${what}: ${pingErr.message}`);
        if (got.isBinary !== binary) throw new Error(`${what} came back as ${got.isBinary ? 'binary' : 'text'}`);
        if (!Buffer.from(got.data).equals(want)) {
          throw new Error(`${what} came back different (${got.data.length} long)`);
        }
      }
    }
  }
}

async function client(opts) {
  const ws = new WebSocket(opts.url, wsOptions(opts));
  const msgs = messages(ws);
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  ws.on('error', (err) => process.stderr.write(`peer.js: ${err.message}\n`));
  let closed;
  if (opts.waitClose) {
    closed = await msgs.closed();
  } else if (opts.sendBinary !== undefined) {
    await sendP(ws, crypto.randomBytes(opts.sendBinary), { binary: true });
    closed = await msgs.closed();
  } else if (opts.sendInvalidUTF8) {
    await sendP(ws, Buffer.from([0x66, 0xff, 0xfe]), { binary: false });
    closed = await msgs.closed();
  } else {
    await roundTrips(ws, msgs, opts.max);
    ws.close(opts.close, opts.reason);
    closed = await msgs.closed();
  }
  process.stdout.write(`close ${closed.code} ${closed.reason}\n`);
}

function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      max: { type: 'string', default: String(BIG) },
      close: { type: 'string', default: '1000' },
      reason: { type: 'string', default: '' },
      'wait-close': { type: 'boolean', default: false },
      'send-binary': { type: 'string' },
      'send-invalid-utf8': { type: 'boolean', default: false },
    },
  });
  const [mode, url] = positionals;
  if (mode === 'server') {
    serve({});
    return;
  }
  if (mode !== 'client' || !url) fail('usage: peer.js server | peer.js client URL [options]');
  client({
    url,
    max: Number(values.max),
    close: Number(values.close),
    reason: values.reason,
    waitClose: values['wait-close'],
    sendBinary: values['send-binary'] === undefined ? undefined : Number(values['send-binary']),
    sendInvalidUTF8: values['send-invalid-utf8'],
  }).catch((err) => fail(`client: ${err.message}`));
}

main();
