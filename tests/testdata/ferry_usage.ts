// Uses every part of ferry.d.ts the way a page would, so that
// `tsc --strict` (tests/wasm_types_test.go) checks the hand-written types.
// The @ts-expect-error lines must stay errors: the types are not `any`.
import * as ferry from "./ferry.js";
import { connect, FerryError, stats, type DialOptions, type Gateway, type FerrySocket, type Status } from "./ferry.js";

async function main(): Promise<string> {
  const seen: Status[] = [];
  const gw: Gateway = await connect({ token: "abc", onstatus: (s) => seen.push(s) });
  await ferry.connect("wss://gw.example.com/tunnel");
  await ferry.connect(new URL("/tunnel", "https://gw.example.com"), { onstatus: (s: Status) => s.error?.code });
  await ferry.connect();
  const url: string = gw.url;

  const sock: FerrySocket = await gw.dial("redis");
  const info = await sock.opened;
  const service: string = info.service + sock.service;
  const writer = sock.writable.getWriter();
  await writer.write(new TextEncoder().encode("PING\r\n"));
  await writer.write("PING\r\n");
  await writer.write(new ArrayBuffer(8));
  await writer.write(new DataView(new ArrayBuffer(8)));
  await writer.close();
  const reader = sock.readable.getReader();
  const { value, done } = await reader.read();
  const first: number | undefined = value?.[0];
  reader.releaseLock();
  const byob = sock.readable.getReader({ mode: "byob" });
  const { value: view } = await byob.read(new Uint8Array(16));
  const n: number = view?.byteLength ?? 0;
  await sock.close();
  await sock.closed;

  for (const s of seen) {
    const state: "connected" | "reconnecting" | "closed" = s.state;
    if (s.error !== null) {
      const code: number = s.error.code;
      const reason: string = s.error.reason;
      console.log(state, code, reason, s.error.message);
    }
  }
  const abort = new AbortController();
  const opts: DialOptions = { signal: abort.signal, timeout: 5000 };
  const pending = gw.dial("ssh", opts);
  abort.abort();
  await pending.catch((e: unknown) => e);
  await connect("ws://127.0.0.1:8080/tunnel", { keepalive: 10000 });
  try {
    await gw.dial("postgres", { timeout: Infinity });
  } catch (e) {
    if (e instanceof FerryError && e.code === 2) console.log(e.reason, e.name);
  }
  const st = await stats();
  const counts: number = st.gateways + st.sockets + st.dials + st.webSockets;
  await gw.close();

  // @ts-expect-error: a service is a string
  await gw.dial(42);
  // @ts-expect-error: a token is a string
  await connect({ token: 7 });
  // @ts-expect-error: a timeout is a number of milliseconds
  await gw.dial("redis", { timeout: "5s" });
  // @ts-expect-error: sockets take bytes or strings
  await sock.writable.getWriter().write(3);
  // @ts-expect-error: there is no such state
  const bad: Status = { state: "open", error: null };

  return `${url} ${service} ${done} ${first} ${n} ${counts} ${bad}`;
}

void main();
