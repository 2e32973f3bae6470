#!/usr/bin/env python3
"""An asyncio line echo server for test_real_python.sh.

usage: real_asyncio_server.py PORT
Listens on 127.0.0.1:PORT; echoes every line back; the line "STATS" gets
"lines N connections M" (lines echoed, connections accepted so far).
Prints "ready PORT" once listening; SIGTERM or SIGINT stop it cleanly
(exit 0, printing "stopped: lines N connections M").  Lines are bounded
(64 KiB, asyncio's default limit).
"""
import asyncio
import signal
import sys

stats = {"lines": 0, "connections": 0}


async def handle(reader, writer):
    stats["connections"] += 1
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            if line == b"STATS\n":
                writer.write(f"lines {stats['lines']} connections {stats['connections']}\n".encode())
            else:
                stats["lines"] += 1
                writer.write(line)
            await writer.drain()
    except (ConnectionError, asyncio.LimitOverrunError, ValueError):
        pass
    finally:
        writer.close()


async def main(port):
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print(f"ready {port}", flush=True)
    async with server:
        await stop.wait()
    print(f"stopped: lines {stats['lines']} connections {stats['connections']}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    asyncio.run(main(int(sys.argv[1])))
