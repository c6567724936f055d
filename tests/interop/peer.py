#!/usr/bin/python3
"""An interop peer for Ferry's tunnel package, built on Python `websockets`.

Run with the interpreter that has the library (Debian's python3-websockets
is importable only by /usr/bin/python3):

    /usr/bin/python3 peer.py server
        Echo server on 127.0.0.1, port chosen by the system. The first line
        on stdout is the port. Every message is echoed with its type. A
        request path of /close?code=C&reason=R makes the server echo one
        message and then close with code C and reason R. The server stops
        when stdin reaches end of file (or when it is killed).

    /usr/bin/python3 peer.py client URL [--max N] [--close CODE] [--reason R]
        Round-trips text and binary messages of sizes 0 to 16 MiB (up to
        --max), whole and fragmented, with a ping after each, checks every
        echo byte for byte, then closes with CODE (default 1000) and R.

    /usr/bin/python3 peer.py client URL --wait-close
        Connects and waits for the server to close.

    /usr/bin/python3 peer.py client URL --send-binary N
        Sends one binary message of N bytes, then waits for the server to
        close (used to check the server's message size limit).

In client mode the last line on stdout is `close CODE REASON`: the close
code and reason the server sent. Failures go to stderr with exit status 1.

Compression (permessage-deflate, RFC 7692) is off unless --deflate is given
(to server or client); then these choose its parameters:

    --server-no-context-takeover  --client-no-context-takeover
    --server-max-window-bits N    --client-max-window-bits N

A client offers them (client_max_window_bits without a value when no N is
given); a server imposes them on what the client offered. With --deflate
the round trips cover sizes 0, 1, 255, 256, 4 KiB, 64 KiB, 1 MiB and 16 MiB
(up to --max) and three kinds of message: compressible text, compressible
binary and random binary. The peer then reports what it negotiated, the
client on its first two lines, the server on two lines per connection
prefixed with `conn ID ` (ID is the request's id query parameter, or -):

    extensions: VALUE   the Sec-WebSocket-Extensions response header as sent
                        or received (VALUE empty when there is none)
    deflate: server_no_context_takeover=B client_no_context_takeover=B
        server_max_window_bits=N client_max_window_bits=N
                        the parameters in force inside websockets (a window
                        without a limit is 15), or `deflate: off`

and a client, before its close line, prints `sent compressible=N random=M`:
the payload bytes it sent that should compress and that cannot.
"""

import argparse
import asyncio
import os
import sys
import urllib.parse

import websockets
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)

SIZES = [0, 1, 125, 126, 127, 65535, 65536, 1 << 20, 16 << 20]
DEFLATE_SIZES = [0, 1, 255, 256, 4 << 10, 64 << 10, 1 << 20, 16 << 20]
# The 16 MiB round trips are slow in pure Python; only these combinations of
# (kind, fragmented) run at that size.
BIG = 16 << 20
BIG_CASES = {("binary", False), ("text", True)}
DEFLATE_BIG_CASES = {("text", False), ("binary", True)}
READ_LIMIT = 32 << 20


def ws_options(args, server):
    """Options shared by server and client."""
    opts = dict(
        compression=None,
        max_size=READ_LIMIT,
        ping_interval=None,  # the tests drive pings themselves
        close_timeout=5,
    )
    if args.deflate:
        if server:
            factory = ServerPerMessageDeflateFactory(
                server_no_context_takeover=args.server_no_context_takeover,
                client_no_context_takeover=args.client_no_context_takeover,
                server_max_window_bits=args.server_max_window_bits,
                client_max_window_bits=args.client_max_window_bits,
            )
        else:
            factory = ClientPerMessageDeflateFactory(
                server_no_context_takeover=args.server_no_context_takeover,
                client_no_context_takeover=args.client_no_context_takeover,
                server_max_window_bits=args.server_max_window_bits,
                # Without a value: the server may limit our window.
                client_max_window_bits=args.client_max_window_bits or True,
            )
        opts["extensions"] = [factory]
    return opts


def report(ws, server, prefix=""):
    """Prints the extensions header and the deflate parameters in force."""
    header = ws.response_headers.get("Sec-WebSocket-Extensions", "")
    lines = [f"{prefix}extensions: {header}"]
    ext = next((e for e in ws.extensions if isinstance(e, PerMessageDeflate)), None)
    if ext is None:
        lines.append(f"{prefix}deflate: off")
    else:
        if server:  # remote is the client
            snct, cnct = ext.local_no_context_takeover, ext.remote_no_context_takeover
            smwb, cmwb = ext.local_max_window_bits, ext.remote_max_window_bits
        else:
            snct, cnct = ext.remote_no_context_takeover, ext.local_no_context_takeover
            smwb, cmwb = ext.remote_max_window_bits, ext.local_max_window_bits
        lines.append(
            f"{prefix}deflate: server_no_context_takeover={str(snct).lower()} "
            f"client_no_context_takeover={str(cnct).lower()} "
            f"server_max_window_bits={smwb} client_max_window_bits={cmwb}"
        )
    print("\n".join(lines), flush=True)


class Failure(Exception):
    pass


def text_payload(n):
    """n bytes of UTF-8 text that mixes 1- and 2-byte runes."""
    pattern = "ferry-τ ".encode()
    b = bytearray((pattern * (n // len(pattern) + 1))[:n])
    while True:
        try:
            return b.decode()
        except UnicodeDecodeError:
            b[-1] = 0x20  # a cut rune at the end becomes a space


def binary_payload(n):
    """n bytes of compressible binary: 16-byte records, each a big-endian
    record number and 12 fixed bytes that are not UTF-8."""
    tail = b"\x00\xffferry\x80\x01\xfe\x7f\x00"
    out = bytearray()
    for i in range(n // 16 + 1):
        out += i.to_bytes(4, "big") + tail
    return bytes(out[:n])


def fragments(data):
    """Three fragments at about a third and two thirds of data."""
    n = len(data)
    a, b = n // 3, 2 * n // 3
    return [data[:a], data[a:b], data[b:]]


async def serve(args):
    async def handler(ws):
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(ws.path).query)
        close_code = int(query.get("code", ["0"])[0])
        close_reason = query.get("reason", [""])[0]
        if args.deflate:
            report(ws, True, f"conn {query.get('id', ['-'])[0]} ")
        try:
            async for msg in ws:
                await ws.send(msg)
                if close_code:
                    await ws.close(close_code, close_reason)
                    return
        except websockets.ConnectionClosed:
            pass

    async with websockets.serve(handler, "127.0.0.1", 0, **ws_options(args, True)) as server:
        port = server.sockets[0].getsockname()[1]
        print(port, flush=True)
        # Run until stdin closes, so an orphaned server does not linger.
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.buffer.read)


async def client(args):
    async with websockets.connect(args.url, **ws_options(args, False)) as ws:
        if args.deflate:
            report(ws, False)
        if args.wait_close:
            await ws.wait_closed()
        elif args.send_binary is not None:
            await ws.send(os.urandom(args.send_binary))
            await ws.wait_closed()
        else:
            sent = await round_trips(ws, args.max, args.deflate)
            if args.deflate:
                print(f"sent compressible={sent['compressible']} random={sent['random']}", flush=True)
            await ws.close(args.close, args.reason)
        print(f"close {ws.close_code} {ws.close_reason}", flush=True)


async def round_trips(ws, max_size, deflate):
    """Round-trips every message, checking each echo; returns the payload
    bytes sent that should compress and that cannot."""
    sizes, kinds, big_cases = SIZES, ("text", "binary"), BIG_CASES
    if deflate:
        sizes, kinds, big_cases = DEFLATE_SIZES, ("text", "binary", "random"), DEFLATE_BIG_CASES
    sent = {"compressible": 0, "random": 0}
    for size in sizes:
        if size > max_size:
            continue
        for kind in kinds:
            for fragmented in (False, True):
                if size == BIG and (kind, fragmented) not in big_cases:
                    continue
                if kind == "text":
                    want = text_payload(size)
                elif kind == "binary" and deflate:
                    want = binary_payload(size)
                else:
                    want = os.urandom(size)
                sent["random" if kind == "random" or not deflate else "compressible"] += size
                await ws.send(fragments(want) if fragmented else want)
                pong = await ws.ping()
                got = await ws.recv()
                await asyncio.wait_for(pong, 10)
                what = f"{kind} message of {size} bytes (fragmented {fragmented})"
                if type(got) is not type(want):
                    raise Failure(f"{what} came back as {type(got).__name__}")
                if got != want:
                    raise Failure(f"{what} came back different ({len(got)} long)")
    return sent


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    deflate = argparse.ArgumentParser(add_help=False)
    deflate.add_argument("--deflate", action="store_true")
    deflate.add_argument("--server-no-context-takeover", action="store_true")
    deflate.add_argument("--client-no-context-takeover", action="store_true")
    deflate.add_argument("--server-max-window-bits", type=int)
    deflate.add_argument("--client-max-window-bits", type=int)
    sub = p.add_subparsers(dest="mode", required=True)
    sub.add_parser("server", parents=[deflate])
    c = sub.add_parser("client", parents=[deflate])
    c.add_argument("url")
    c.add_argument("--max", type=int, default=BIG)
    c.add_argument("--close", type=int, default=1000)
    c.add_argument("--reason", default="")
    c.add_argument("--wait-close", action="store_true")
    c.add_argument("--send-binary", type=int)
    args = p.parse_args()
    try:
        asyncio.run(serve(args) if args.mode == "server" else client(args))
    except (Failure, websockets.WebSocketException, OSError) as e:
        print(f"peer.py {args.mode}: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
