"""Where the memory of an idle threading server connection goes.

``python -m bench.thread_memory [--count N] [--trace]`` runs each case in a
child process of its own and prints, per thread or per connection, the
growth of the child's resident memory from before to after starting ``N``
more of them (2,000 by default), split by kind of mapping read from
``/proc/self/smaps`` (Linux only):

* ``stacks``: the thread stacks' mappings (their size is the thread stack
  size); only the pages a thread touched count, so this is the C stack a
  blocked thread used, with glibc's thread descriptor and TLS at its top;
* ``heap``: the main ``malloc`` arena (``[heap]``);
* ``other``: every other anonymous mapping: CPython's object arenas, each
  thread's frame stack chunk (mapped by CPython), and glibc's per-thread
  ``malloc`` arenas.

The cases:

* ``thread``: a bare :class:`threading.Thread` blocked on an :class:`~threading.Event`;
* ``thread-poll``: the same, blocked in :meth:`select.poll.poll` on a socket;
* ``lean``: a :class:`tether.sync.threads.LeanThread`, as a handler's thread
  of :func:`tether.sync.serve` is, blocked in a one-byte ``MSG_PEEK`` read
  of a socket, as an idle handler is;
* ``start``: a thread of :func:`_thread.start_new_thread` blocked on a lock
  it calls directly: no Python frame runs in it, so this is the floor of any
  thread of the interpreter (its C stack, CPython's thread state, glibc's
  per-thread cache);
* ``poll``: the same thread blocked in :meth:`select.poll.poll` on a socket,
  from a Python function: the floor of a thread that runs Python code;
* ``server``: :func:`tether.sync.serve` with the handler ``for _ in ws:
  pass``, default options but compression off (and keepalive pings an hour
  apart, so that none is due during the run), and ``N`` connections opened
  by raw sockets from the parent process (so the clients' memory is not
  counted); ``server-deflate`` is the same with permessage-deflate, and
  ``server-tls`` over TLS (a certificate of :mod:`trustme`).

``--stack-size`` sets :func:`threading.stack_size` in the children: it
changes nothing, as only the pages a thread touched are resident.

``--trace`` runs the server cases again under :mod:`tracemalloc` (started
after the warm-up) and prints the Python allocations per connection and the
lines that made the most of them. The figures are exact for the process at
hand and repeat between runs within a few hundred bytes; the load of the
machine does not change them.
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WARM = 50
LINES = 40


def smaps(stack_size: int) -> dict[str, int]:
    """Resident bytes of this process by kind: ``stacks``, ``heap``, ``other``."""
    kinds: collections.Counter[str] = collections.Counter()
    kind = "files"
    with open("/proc/self/smaps") as file:
        for line in file:
            fields = line.split()
            if fields[0] == "Rss:":
                kinds[kind] += int(fields[1]) * 1024
            elif not fields[0].endswith(":") and "-" in fields[0]:
                start, end = (int(bound, 16) for bound in fields[0].split("-"))
                name = fields[5] if len(fields) > 5 else ""
                if name == "[heap]":
                    kind = "heap"
                elif name:
                    kind = "files"
                elif end - start in (stack_size, stack_size - 4096):
                    kind = "stacks"
                else:
                    kind = "other"
    return dict(kinds)


def difference(before: dict[str, int], after: dict[str, int], count: int) -> dict[str, float]:
    """Bytes per item by kind, and their ``total``."""
    kinds = {kind: (after.get(kind, 0) - before.get(kind, 0)) / count for kind in after}
    kinds["total"] = sum(kinds.values())
    return kinds


def stack_size() -> int:
    """The stack size of new threads: :func:`threading.stack_size`'s, or the system's default."""
    import resource  # noqa: PLC0415

    return threading.stack_size() or resource.getrlimit(resource.RLIMIT_STACK)[0]


# Children: one case each, printing one JSON line.


def child_threads(case: str, count: int) -> None:
    import _thread  # noqa: PLC0415
    import select  # noqa: PLC0415

    from tether.sync.threads import LeanThread  # noqa: PLC0415

    event = threading.Event()
    lock = _thread.allocate_lock()
    lock.acquire()
    pairs = []

    def block_poll(sock: socket.socket) -> None:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        poller.poll()

    class Peek(LeanThread):
        def __init__(self, sock: socket.socket) -> None:
            super().__init__()
            self.sock = sock

        def run(self) -> None:
            self.sock.recv(1, socket.MSG_PEEK)

    def start() -> None:
        if case == "thread":
            threading.Thread(target=event.wait, daemon=True).start()
        elif case == "start":
            _thread.start_new_thread(lock.acquire, ())
        else:
            pair = socket.socketpair()
            pairs.append(pair)
            if case == "thread-poll":
                threading.Thread(target=block_poll, args=(pair[0],), daemon=True).start()
            elif case == "lean":
                Peek(pair[0]).start()
            else:
                _thread.start_new_thread(block_poll, (pair[0],))

    size = stack_size()
    for _ in range(WARM):
        start()
    time.sleep(0.5)
    before = smaps(size)
    for _ in range(count):
        start()
    time.sleep(1.0)
    print(json.dumps(difference(before, smaps(size), count)), flush=True)
    os._exit(0)


def child_server(deflate: bool, trace: bool, tls: bool = False) -> None:
    """Serve until told; on ``mark`` and ``measure`` lines from the parent, measure."""
    import ssl  # noqa: PLC0415
    import tracemalloc  # noqa: PLC0415

    import tether.sync  # noqa: PLC0415

    context = None
    if tls:
        import trustme  # noqa: PLC0415

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        trustme.CA().issue_cert("localhost").configure_cert(context)

    def handler(ws: tether.sync.ServerConnection) -> None:
        for _ in ws:
            pass

    server = tether.sync.serve(
        handler,
        "127.0.0.1",
        0,
        backlog=4096,
        compression="deflate" if deflate else None,
        ssl=context,
        # Keepalive on, as by default, but no ping within the run: the raw
        # clients would not answer it, and their connections would close.
        ping_interval=3600,
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.socket.getsockname()[1], flush=True)
    size = stack_size()
    before: dict[str, int] = {}
    snapshot = None
    for line in sys.stdin:
        command, count = line.split()
        time.sleep(1.0)  # Let the last handshakes end and the readers hand over.
        if command == "mark":
            if trace:
                tracemalloc.start()
                snapshot = tracemalloc.take_snapshot()
            before = smaps(size)
            print("{}", flush=True)
            continue
        result: dict[str, Any] = difference(before, smaps(size), int(count))
        if snapshot is not None:
            stats = tracemalloc.take_snapshot().compare_to(snapshot, "lineno")
            result["traced"] = sum(stat.size_diff for stat in stats) / int(count)
            result["lines"] = [
                [stat.size_diff / int(count), stat.count_diff / int(count), str(stat.traceback)]
                for stat in stats[:LINES]
            ]
        print(json.dumps(result), flush=True)
        break
    os._exit(0)


# The parent.


def open_raw(port: int, tls: bool = False) -> socket.socket:
    """Open a WebSocket connection with a raw socket and read the handshake's response."""
    key = base64.b64encode(os.urandom(16)).decode()
    sock = socket.create_connection(("127.0.0.1", port))
    if tls:
        import ssl  # noqa: PLC0415

        context = ssl.create_default_context()
        # The certificate is the child's own, made for this run.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        sock = context.wrap_socket(sock, server_hostname="localhost")
    sock.sendall(
        f"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n".encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError("the server closed during the handshake")
        response += chunk
    if not response.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"refused: {response[:40]!r}")
    return sock


def run_server(count: int, deflate: bool, trace: bool, tls: bool = False) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.thread_memory", "child-server"]
    command += [str(int(deflate)), str(int(trace)), str(int(tls))]
    # A PYTHONPATH given comes after this checkout's root: one may run the
    # server of another checkout's src (``PYTHONPATH=old/src``) to compare.
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=path)
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    ) as child:
        assert child.stdin is not None
        assert child.stdout is not None
        try:
            port = int(child.stdout.readline())
            socks = [open_raw(port, tls) for _ in range(WARM)]
            child.stdin.write(f"mark {count}\n")
            child.stdin.flush()
            child.stdout.readline()
            socks += [open_raw(port, tls) for _ in range(count)]
            child.stdin.write(f"measure {count}\n")
            child.stdin.flush()
            result: dict[str, Any] = json.loads(child.stdout.readline())
            for sock in socks:
                sock.close()
            return result
        finally:
            child.kill()


def run_threads(case: str, count: int, stack_size: int = 0) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.thread_memory", "child-threads", case, str(count)]
    command.append(str(stack_size))
    output = subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)
    result: dict[str, Any] = json.loads(output.stdout)
    return result


def show(label: str, result: dict[str, Any]) -> None:
    kinds = "  ".join(
        f"{kind} {result.get(kind, 0) / 1024:5.2f}" for kind in ("stacks", "heap", "other")
    )
    print(f"{label:<16} {result['total'] / 1024:6.2f} KiB   {kinds}", flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "child-threads":
        if int(sys.argv[4]):
            threading.stack_size(int(sys.argv[4]))
        child_threads(sys.argv[2], int(sys.argv[3]))
    if len(sys.argv) > 1 and sys.argv[1] == "child-server":
        child_server(sys.argv[2] == "1", sys.argv[3] == "1", sys.argv[4] == "1")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--trace", action="store_true", help="Python allocations too")
    parser.add_argument(
        "--cases", default="start,poll,thread,thread-poll,lean,server,server-deflate"
    )
    parser.add_argument("--stack-size", type=int, default=0, help="threading.stack_size")
    args = parser.parse_args()
    print(f"RSS growth per thread or connection, over {args.count:,} more (KiB)")
    for case in args.cases.split(","):
        if case.startswith("server"):
            deflate, tls = case == "server-deflate", case == "server-tls"
            show(case, run_server(args.count, deflate, trace=False, tls=tls))
        else:
            show(case, run_threads(case, args.count, args.stack_size))
    if args.trace:
        for deflate in (False, True):
            result = run_server(min(args.count, 500), deflate, trace=True)
            label = "with deflate" if deflate else "without compression"
            print(f"\nPython allocations per connection, {label}: {result['traced']:,.0f} B")
            for size, number, where in result["lines"]:
                print(f"{size:8,.0f} B {number:5.1f}  {where}")


if __name__ == "__main__":
    main()
