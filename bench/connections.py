"""Hold N established loopback TCP connections open, for the kamailio scale benchmark.

    python bench/connections.py --count 10000 [--port 0]

The parent process listens on 127.0.0.1 and accepts; a forked child connects. Each process holds
one end of every connection (N descriptors each), so N connections are 2*N rows in
/proc/net/tcp, and neither process needs more than N + a few descriptors (the open-file limit is
per process). When every connection is established the parent prints one line
``ready COUNT PORT CHILD_PID`` and waits until it gets SIGTERM/SIGINT or its stdin closes; it then
stops the child by its pid. Only 127.0.0.1 is used and nothing is sent over the connections.
"""

from __future__ import annotations

import argparse
import os
import resource
import select
import signal
import socket
import struct
import sys
import time

HEADROOM = 64  # descriptors beyond one per connection: stdio, the listener, Python's own
# Close with a reset rather than FIN: no TIME_WAIT rows are left behind to skew the next run.
RESET_ON_CLOSE = struct.pack("ii", 1, 0)


def raise_nofile(needed: int) -> None:
    """Raise the soft open-file limit to the hard one; fail clearly if that is not enough."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        sys.exit(f"connections: need {needed} open files, the hard limit is {hard}")
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def connect_all(port: int, count: int) -> list[socket.socket]:
    held = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
        held.append(sock)
    return held


def accept_all(listener: socket.socket, count: int, deadline: float) -> list[socket.socket]:
    held: list[socket.socket] = []
    listener.settimeout(1.0)
    while len(held) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(held)} of {count} connections after the deadline")
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
        held.append(conn)
    return held


def wait_for_stop() -> None:
    """Until SIGTERM/SIGINT, or until stdin reaches end of file (the harness went away)."""
    stop: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        stop.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stdin_open = True
    while not stop:
        if stdin_open:
            try:
                ready, _, _ = select.select([sys.stdin], [], [], 0.5)
            except InterruptedError:
                continue
            if ready and not os.read(sys.stdin.fileno(), 4096):
                stdin_open = False
                break
        else:
            time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, required=True, help="connections to hold")
    parser.add_argument("--port", type=int, default=0, help="listening port (default: any free)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to set up")
    args = parser.parse_args(argv)
    if args.count < 0:
        parser.error("--count must be >= 0")
    raise_nofile(args.count + HEADROOM)

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(4096)
    port = listener.getsockname()[1]

    child = os.fork()
    if child == 0:  # the connecting side
        listener.close()
        try:
            held = connect_all(port, args.count)
            wait_for_stop()
            del held
        finally:
            os._exit(0)

    try:
        held = accept_all(listener, args.count, time.monotonic() + args.timeout)
        listener.close()
        print(f"ready {len(held)} {port} {child}", flush=True)
        wait_for_stop()
    finally:
        try:
            os.kill(child, signal.SIGTERM)
            os.waitpid(child, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
