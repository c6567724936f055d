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
// Compression (permessage-deflate, RFC 7692) is off unless --deflate is
// given (to server or client); then these choose its parameters:
//
//   --server-no-context-takeover  --client-no-context-takeover
//   --server-max-window-bits N    --client-max-window-bits N
//
// A client offers them (client_max_window_bits without a value when no N is
// given); a server imposes them on what the client offered. Every message is
// compressed (threshold 0), fragments too. With --deflate the round trips
// cover sizes 0, 1, 255, 256, 4 KiB, 64 KiB, 1 MiB and 16 MiB (up to --max)
// and three kinds of message: compressible text, compressible binary and
// random binary. The peer then reports what it negotiated, the client on its
// first two lines, the server on two lines per connection prefixed with
// `conn ID ` (ID is the request's id query parameter, or -):
//
//   extensions: VALUE   the Sec-WebSocket-Extensions response header as sent
//                       or received (VALUE empty when there is none)
//   deflate: server_no_context_takeover=B client_no_context_takeover=B
//       server_max_window_bits=N client_max_window_bits=N
//                       the parameters in force inside ws (a window without
//                       a limit is 15), or `deflate: off`
//
// and a client, before its close line, prints `sent compressible=N random=M`:
// the payload bytes it sent that should compress and that cannot.
'use strict';

const crypto = require('node:crypto');
const { parseArgs } = require('node:util');
const { WebSocket, WebSocketServer } = require('ws');
const kExtensions = Symbol('extensions header');

const SIZES = [0, 1, 125, 126, 127, 65535, 65536, 1 << 20, 16 << 20];
const DEFLATE_SIZES = [0, 1, 255, 256, 4 << 10, 64 << 10, 1 << 20, 16 << 20];
// Only these [kind, fragmented] combinations run at 16 MiB, to keep the
// test quick.
const BIG = 16 << 20;
const BIG_CASES = new Set(['binary,false', 'text,true']);
const DEFLATE_BIG_CASES = new Set(['text,false', 'binary,true']);
const READ_LIMIT = 32 << 20;

function wsOptions(opts) {
  let perMessageDeflate = false;
  if (opts.deflate) {
    // Unset options stay undefined: ws treats an explicit false as "refuse".
    perMessageDeflate = { threshold: 0 };
    if (opts.serverNoContextTakeover) perMessageDeflate.serverNoContextTakeover = true;
    if (opts.clientNoContextTakeover) perMessageDeflate.clientNoContextTakeover = true;
    if (opts.serverMaxWindowBits) perMessageDeflate.serverMaxWindowBits = opts.serverMaxWindowBits;
    if (opts.clientMaxWindowBits) perMessageDeflate.clientMaxWindowBits = opts.clientMaxWindowBits;
  }
  return { perMessageDeflate, maxPayload: READ_LIMIT };
}

// report prints the extensions header and the deflate parameters in force
// (ws keeps them in the private _extensions; there is no public accessor).
function report(ws, header, prefix) {
  const pmd = ws._extensions['permessage-deflate'];
  let deflate = 'off';
  if (pmd) {
    const p = pmd.params;
    const bits = (v) => (typeof v === 'number' ? v : 15);
    deflate = `server_no_context_takeover=${!!p.server_no_context_takeover} `
      + `client_no_context_takeover=${!!p.client_no_context_takeover} `
      + `server_max_window_bits=${bits(p.server_max_window_bits)} `
      + `client_max_window_bits=${bits(p.client_max_window_bits)}`;
  }
  process.stdout.write(`${prefix}extensions: ${header || ''}\n${prefix}deflate: ${deflate}\n`);
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

// n bytes of compressible binary: 16-byte records, each a big-endian record
// number and 12 fixed bytes that are not UTF-8.
function binaryPayload(n) {
  const tail = Buffer.from([0x00, 0xff, 0x66, 0x65, 0x72, 0x72, 0x79, 0x80, 0x01, 0xfe, 0x7f, 0x00]);
  const b = Buffer.alloc(Math.ceil(n / 16) * 16);
  for (let i = 0; i * 16 < n; i++) {
    b.writeUInt32BE(i, i * 16);
    tail.copy(b, i * 16 + 4);
  }
  return b.subarray(0, n);
}

function serve(opts) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, ...wsOptions(opts) });
  wss.on('listening', () => {
    process.stdout.write(`${wss.address().port}\n`);
  });
  wss.on('error', (err) => fail(`server: ${err.message}`));
  wss.on('headers', (headers, req) => {
    const ext = headers.find((h) => h.toLowerCase().startsWith('sec-websocket-extensions:'));
    req[kExtensions] = ext ? ext.slice(ext.indexOf(':') + 1).trim() : '';
  });
  wss.on('connection', (ws, req) => {
    const q = new URL(req.url, 'http://peer').searchParams;
    if (opts.deflate) report(ws, req[kExtensions], `conn ${q.get('id') || '-'} `);
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

// roundTrips round-trips every message, checking each echo, and returns the
// payload bytes sent that should compress and that cannot.
async function roundTrips(ws, msgs, max, deflate) {
  let sizes = SIZES;
  let kinds = ['text', 'binary'];
  let bigCases = BIG_CASES;
  if (deflate) {
    sizes = DEFLATE_SIZES;
    kinds = ['text', 'binary', 'random'];
    bigCases = DEFLATE_BIG_CASES;
  }
  const sent = { compressible: 0, random: 0 };
  for (const size of sizes) {
    if (size > max) continue;
    for (const kind of kinds) {
      for (const fragmented of [false, true]) {
        if (size === BIG && !bigCases.has(`${kind},${fragmented}`)) continue;
        let want;
        if (kind === 'text') want = textPayload(size);
        else if (kind === 'binary' && deflate) want = binaryPayload(size);
        else want = crypto.randomBytes(size);
        sent[kind === 'random' || !deflate ? 'random' : 'compressible'] += size;
        const binary = kind !== 'text';
        // compress is ws's default when the extension is on; it is spelt
        // out so that fragments are compressed too.
        const compress = deflate;
        if (fragmented) {
          const a = Math.floor(size / 3);
          const b = Math.floor((2 * size) / 3);
          await sendP(ws, want.subarray(0, a), { binary, compress, fin: false });
          await sendP(ws, want.subarray(a, b), { binary, compress, fin: false });
          await sendP(ws, want.subarray(b), { binary, compress, fin: true });
        } else {
          await sendP(ws, want, { binary, compress });
        }
        const what = `${kind} message of ${size} bytes (fragmented ${fragmented})`;
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
  return sent;
}

async function client(opts) {
  const ws = new WebSocket(opts.url, wsOptions(opts));
  const msgs = messages(ws);
  let extensions = '';
  ws.once('upgrade', (res) => {
    extensions = res.headers['sec-websocket-extensions'] || '';
  });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  if (opts.deflate) report(ws, extensions, '');
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
    const sent = await roundTrips(ws, msgs, opts.max, opts.deflate);
    if (opts.deflate) process.stdout.write(`sent compressible=${sent.compressible} random=${sent.random}\n`);
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
      deflate: { type: 'boolean', default: false },
      'server-no-context-takeover': { type: 'boolean', default: false },
      'client-no-context-takeover': { type: 'boolean', default: false },
      'server-max-window-bits': { type: 'string' },
      'client-max-window-bits': { type: 'string' },
    },
  });
  const deflate = {
    deflate: values.deflate,
    serverNoContextTakeover: values['server-no-context-takeover'],
    clientNoContextTakeover: values['client-no-context-takeover'],
    serverMaxWindowBits: values['server-max-window-bits'] && Number(values['server-max-window-bits']),
    clientMaxWindowBits: values['client-max-window-bits'] && Number(values['client-max-window-bits']),
  };
  const [mode, url] = positionals;
  if (mode === 'server') {
    serve(deflate);
    return;
  }
  if (mode !== 'client' || !url) fail('usage: peer.js server | peer.js client URL [options]');
  client({
    ...deflate,
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
