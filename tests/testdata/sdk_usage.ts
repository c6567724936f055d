// Uses every part of the SDK generated from gen/testdata/sdk.toml
// (gen/testdata/ts); TestSDKTypes checks it with tsc --strict.
import { connect, services, FerryError } from "./ferry-sdk.js";
import type { Client, LinesChannel, U32BEChannel, FerrySocket, ServiceInfo, Status } from "./ferry-sdk.js";

export async function main(): Promise<void> {
  const api: Client = await connect({ url: "ws://127.0.0.1:8080/tunnel", token: "t", onstatus: (s: Status) => console.log(s.state, s.error?.code) });
  const cache: FerrySocket = await api.redisCache();
  await cache.writable.getWriter().write("PING\r\n");
  const echo: FerrySocket = await api.echo();
  await echo.close();
  const other: FerrySocket = await api.dial("anything");
  await other.closed;
  await (await api.closeService()).close();
  await (await api.thenService()).close();

  const chat: LinesChannel = await api.chat();
  await chat.send("hello");
  for await (const line of chat.messages()) {
    const s: string = line;
    console.log(s.length);
  }
  const next: string | null = await chat.receive();
  console.log(next, chat.maxMessage, chat.service, chat.socket.service);
  await chat.closeWrite();
  await chat.close();

  const codes: LinesChannel = await api.service2fa();
  await codes.closed;

  const frames: U32BEChannel = await api.framesU32();
  await frames.send(new Uint8Array([1, 2, 3]));
  await frames.send(new ArrayBuffer(4));
  for await (const m of frames.messages()) {
    const b: Uint8Array = m;
    console.log(b.byteLength);
  }

  const info: readonly ServiceInfo[] = services;
  console.log(info[0].method, info[0].framing, api.url);
  try {
    await api.close();
  } catch (err) {
    if (err instanceof FerryError) console.log(err.code, err.reason);
  }

  // @ts-expect-error: lines channels send strings
  await chat.send(new Uint8Array(1));
  // @ts-expect-error: u32be channels send bytes
  await frames.send("text");
  // @ts-expect-error: a reserved name gets the suffix, so there is no service method "then"
  api.then();
  // @ts-expect-error: private services are methods too, but names map exactly
  await api.redis_cache();
}
