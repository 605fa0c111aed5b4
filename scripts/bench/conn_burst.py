#!/usr/bin/env python3
"""Connection bursts against a running server, with its resident memory before, during and
after: what a herd of phones opening and closing connections costs and whether the memory
comes back (docs/operations.md § Connection limits; results in docs/measurements.md
§ Connections and memory).

  conn_burst.py --pid PID --port PORT [--tls] [--count 12000] [--concurrency 500]
                [--path /health] [--mode request|idle|half-hello] [--hold-s 2]

mode request: each connection makes one request and closes (TLS: handshake first);
mode idle: connections are opened (TLS: handshake done) and held silent for --hold-s;
mode half-hello: TLS connections send half a ClientHello and are held for --hold-s.
Prints one JSON line: rss_kib before, at the peak of the burst, and 2 s and 10 s after.
"""
import argparse
import asyncio
import json
import socket
import ssl
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def half_client_hello():
    """The first half of a real ClientHello record, taken from OpenSSL over a socket pair."""
    a, b = socket.socketpair()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    tls = ctx.wrap_socket(a, do_handshake_on_connect=False, server_hostname="localhost")
    tls.setblocking(False)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = b.recv(65536)
    a.close()
    b.close()
    return hello[: len(hello) // 2]


async def one(args, ctx, hello, opened, held):
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", args.port,
                                    ssl=ctx if args.tls and args.mode != "half-hello" else None,
                                    server_hostname="localhost" if args.tls and
                                    args.mode != "half-hello" else None),
            timeout=30)
    except Exception:
        return False
    try:
        if args.mode == "request":
            writer.write(f"GET {args.path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                         .encode())
            await asyncio.wait_for(reader.read(), timeout=30)
        else:
            if args.mode == "half-hello":
                writer.write(hello)
                await writer.drain()
            opened.append(1)
            await held.wait()
    except Exception:
        return False
    finally:
        writer.close()
    return True


async def burst(args):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    hello = half_client_hello()
    gate = asyncio.Semaphore(args.concurrency)
    held = asyncio.Event()
    opened = []
    peak = [rss_kib(args.pid)]

    async def gated():
        async with gate:
            ok = await one(args, ctx, hello, opened, held)
            peak[0] = max(peak[0], rss_kib(args.pid))
            return ok

    tasks = [asyncio.create_task(gated()) for _ in range(args.count)]
    if args.mode != "request":
        # All of them open (or as many as the server takes), then held, then let go.
        deadline = time.monotonic() + 60
        while len(opened) < min(args.count, args.concurrency) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(args.hold_s)
        peak[0] = max(peak[0], rss_kib(args.pid))
        held.set()
    results = await asyncio.gather(*tasks)
    return sum(1 for r in results if r), peak[0], len(opened)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tls", action="store_true")
    p.add_argument("--count", type=int, default=12000)
    p.add_argument("--concurrency", type=int, default=500)
    p.add_argument("--path", default="/health")
    p.add_argument("--mode", choices=["request", "idle", "half-hello"], default="request")
    p.add_argument("--hold-s", type=float, default=2)
    args = p.parse_args()
    before = rss_kib(args.pid)
    started = time.monotonic()
    ok, peak, opened = asyncio.run(burst(args))
    took = time.monotonic() - started
    time.sleep(2)
    after2 = rss_kib(args.pid)
    time.sleep(8)
    after10 = rss_kib(args.pid)
    print(json.dumps({"mode": args.mode, "tls": args.tls, "count": args.count,
                      "concurrency": args.concurrency, "ok": ok, "held": opened,
                      "seconds": round(took, 1), "rss_kib_before": before,
                      "rss_kib_peak": peak, "rss_kib_after_2s": after2,
                      "rss_kib_after_10s": after10,
                      "peak_kib_per_held": round((peak - before) / opened, 2) if opened else None}))


if __name__ == "__main__":
    main()
