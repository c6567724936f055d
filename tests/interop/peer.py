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

Compression (permessage-deflate) is off; the options are built in one place
(ws_options) so a --deflate flag can turn it on later.
"""

import argparse
import asyncio
import os
import sys
import urllib.parse

import websockets

SIZES = [0, 1, 125, 126, 127, 65535, 65536, 1 << 20, 16 << 20]
# The 16 MiB round trips are slow in pure Python; only these combinations of
# (text, fragmented) run at that size.
BIG = 16 << 20
BIG_CASES = {(False, False), (True, True)}
READ_LIMIT = 32 << 20


def ws_options(args):
    """Options shared by server and client."""
    return dict(
        compression=None,  # no permessage-deflate yet
        max_size=READ_LIMIT,
        ping_interval=None,  # the tests drive pings themselves
        close_timeout=5,
    )


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
        try:
            async for msg in ws:
                await ws.send(msg)
                if close_code:
                    await ws.close(close_code, close_reason)
                    return
        except websockets.ConnectionClosed:
            pass

    async with websockets.serve(handler, "127.0.0.1", 0, **ws_options(args)) as server:
        port = server.sockets[0].getsockname()[1]
        print(port, flush=True)
        # Run until stdin closes, so an orphaned server does not linger.
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.buffer.read)


async def client(args):
    async with websockets.connect(args.url, **ws_options(args)) as ws:
        if args.wait_close:
            await ws.wait_closed()
        elif args.send_binary is not None:
            await ws.send(os.urandom(args.send_binary))
            await ws.wait_closed()
        else:
            await round_trips(ws, args.max)
            await ws.close(args.close, args.reason)
        print(f"close {ws.close_code} {ws.close_reason}", flush=True)


async def round_trips(ws, max_size):
    for size in SIZES:
        if size > max_size:
            continue
        for text in (True, False):
            for fragmented in (False, True):
                if size == BIG and (text, fragmented) not in BIG_CASES:
                    continue
                want = text_payload(size) if text else os.urandom(size)
                await ws.send(fragments(want) if fragmented else want)
                pong = await ws.ping()
                got = await ws.recv()
                await asyncio.wait_for(pong, 10)
                kind = "text" if text else "binary"
                if type(got) is not type(want):
                    raise Failure(
                        f"{kind} message of {size} bytes (fragmented {fragmented}) "
                        f"came back as {type(got).__name__}"
                    )
                if got != want:
                    raise Failure(
                        f"{kind} message of {size} bytes (fragmented {fragmented}) "
                        f"came back different ({len(got)} long)"
                    )


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="mode", required=True)
    sub.add_parser("server")
    c = sub.add_parser("client")
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
