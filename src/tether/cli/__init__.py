"""The ``tether`` command: an interactive WebSocket client, and a demo server.

``tether ws://host/path`` connects and sends the lines typed (or read from
stdin in a pipeline); ``tether serve`` starts the demo server. The library
itself never prints: only this package does.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Sequence

from tether.version import __version__

__all__ = ["main"]

_CLIENT_EPILOG = """\
On a terminal, type messages and press Enter to send them; incoming messages
show above the prompt; Ctrl-D closes the connection with 1000. When stdin is
not a terminal (or with --batch), each line of stdin is sent as a message and
each message received is printed on one line (binary ones in hexadecimal).
With --jsonl, every line is one JSON value instead, so that messages holding
newlines stay apart: a text message is a JSON string, a binary one
{"binary": "<base64>"}.

Run `tether serve` for a demo server with /echo, /chat and a chat page at /.
Exit status: 0 after a 1000 or 1001 close, 1 on failure, 2 on a usage error.
"""


def _client_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tether",
        usage="%(prog)s [options] URI\n       %(prog)s serve [--host HOST] [--port PORT]",
        description="Connect to a WebSocket server and exchange messages.",
        epilog=_CLIENT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("uri", help="a ws:// or wss:// URI")
    parser.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="add a request header (repeatable)",
    )
    parser.add_argument(
        "--subprotocol",
        action="append",
        default=[],
        metavar="NAME",
        help="offer a subprotocol (repeatable, in order of preference)",
    )
    parser.add_argument("--origin", help="the Origin header")
    parser.add_argument(
        "--compression",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="offer permessage-deflate (default: on)",
    )
    parser.add_argument(
        "--insecure", action="store_true", help="skip the TLS certificate and host name checks"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="time allowed to open and to close the connection (default: 10)",
    )
    parser.add_argument(
        "--batch",
        action="store_true",
        help="send stdin's lines and print replies, even on a terminal",
    )
    parser.add_argument(
        "--jsonl",
        action="store_true",
        help=(
            "batch mode with one JSON value per line, in and out: a text message is a "
            'JSON string, a binary one {"binary": "<base64>"}'
        ),
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="in batch mode, how long to wait for replies after stdin ends (default: 1)",
    )
    parser.add_argument("--version", action="version", version=version_line())
    return parser


def version_line() -> str:
    """What ``tether --version`` prints: the version, and whether the C accelerator is active."""
    from tether.protocol.speedups import speedups  # noqa: PLC0415

    if speedups is not None:
        accelerator = "active"
    elif os.environ.get("TETHER_NO_SPEEDUPS", "") not in ("", "0"):
        accelerator = "off (TETHER_NO_SPEEDUPS is set), pure Python"
    else:
        accelerator = "not built, pure Python"
    return f"tether {__version__} (C accelerator: {accelerator})"


def _server_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tether serve",
        description=(
            "Run the demo server: an echo endpoint at /echo, a chat room at /chat, "
            "and a chat page at / for a browser."
        ),
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on (default: 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=8765, help="the port to listen on; 0 picks one (default: 8765)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="run N processes sharing the port (default: 1)",
    )
    parser.add_argument(
        "--redis",
        metavar="URL",
        help="share the chat rooms through Redis, e.g. redis://localhost:6379/0 "
        "(needs tether[redis])",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tether`` command with ``argv`` (by default, the process's); return its status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "serve":
        from tether.cli.server import run_server  # noqa: PLC0415

        served = _server_parser().parse_args(args[1:])
        if served.workers < 1:
            _server_parser().error("--workers must be at least 1")
        if served.redis is not None and importlib.util.find_spec("redis") is None:
            print("tether: --redis needs redis-py: pip install 'tether[redis]'", file=sys.stderr)
            return 1
        return run_server(
            served.host, served.port, sys.stdout, workers=served.workers, redis=served.redis
        )

    from tether.cli.client import ClientOptions, parse_header, run_client  # noqa: PLC0415

    parser = _client_parser()
    namespace = parser.parse_args(args)
    try:
        headers = [parse_header(value) for value in namespace.header]
    except ValueError as exc:
        parser.error(f"-H/--header: {exc}")
    options = ClientOptions(
        uri=namespace.uri,
        headers=headers,
        subprotocols=namespace.subprotocol,
        origin=namespace.origin,
        compression=namespace.compression,
        insecure=namespace.insecure,
        timeout=namespace.timeout,
        batch=namespace.batch or namespace.jsonl,
        wait=namespace.wait,
        jsonl=namespace.jsonl,
    )
    return run_client(options, sys.stdin, sys.stdout, sys.stderr)
