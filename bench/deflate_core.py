"""What a compressed round trip costs tether over zlib alone: the floor and the overhead.

The payloads are the 1 KiB JSON-like messages of the bench's ``echo 1 KiB JSON
deflate`` workload (:func:`bench.workloads.text_payloads`), alternating. A
round trip is what both ends do: the client sends a message, the server
receives it and sends it back, the client receives the echo. Cases:

- ``zlib``: zlib alone, with the parameters tether's defaults negotiate
  between a tether client and a tether server (level 6, memLevel 5, a window
  of 12 bits both ways, the default strategy, context takeover on both
  sides): 2 compressions with a sync flush and the 4-octet tail removed, and
  2 decompressions with the tail put back, on ``bytes``. The floor: no
  library can do less and send the same bytes.
- ``engine``: two Sans-I/O engines (:class:`tether.protocol.connection.Connection`,
  client and server) with permessage-deflate as negotiated by default,
  ``send_message`` / ``receive_data`` / ``events`` and the data to send,
  the client's frames masked: everything tether's protocol layer does.
- ``plain``: the same engines without compression (the ``x plain`` baseline).
- ``core`` and ``core-plain``: the same two engines, compressed or not, through
  the one-call paths the asyncio connections take (``message_frame`` to send,
  ``receive_messages`` into a :class:`~tether.messages.MessageQueue` and
  ``take_message`` to receive): what a coroutine or listener connection's
  protocol work costs per round trip.

``--level``, ``--mem-level`` and ``--window-bits`` change the compressor's
settings for every case (aiohttp's defaults: ``--level 1 --mem-level 8
--window-bits 15``); ``--sizes`` prints the compressed size of each message
at these settings.

``python -m bench.deflate_core`` prints CPU microseconds per round trip (all
cases in one run, so their ratios are comparable); ``--callgrind`` counts
instructions, from two callgrind runs of different sizes so that start-up
cancels out (exact on a busy machine). ``engine`` minus ``plain`` minus
``zlib`` is tether's own work around zlib. ``TETHER_NO_SPEEDUPS=1`` measures
the pure-Python engine.
"""

from __future__ import annotations

import argparse
import time
import zlib
from collections.abc import Callable

from bench.callgrind import per_operation
from bench.workloads import text_payloads
from tether.extensions.permessage_deflate import PerMessageDeflate
from tether.messages import MessageQueue, receive_messages, take_message
from tether.protocol.connection import Connection, Role, message_frame
from tether.protocol.events import Message

CASES = ("zlib", "engine", "plain", "core", "core-plain")

# What a tether client and a tether server agree on by default (see
# enable_client_permessage_deflate and enable_server_permessage_deflate);
# the command line may change them.
SETTINGS = {"level": zlib.Z_DEFAULT_COMPRESSION, "mem_level": 5, "window_bits": 12}
TAIL = b"\x00\x00\xff\xff"


def messages() -> tuple[bytes, bytes]:
    """The two alternating messages, UTF-8."""
    first, second = text_payloads(1024, True)
    return first.encode(), second.encode()


def zlib_round_trips() -> Callable[[int], None]:
    """zlib alone, both ends: what a round trip cannot cost less than."""
    payloads = messages()

    bits = SETTINGS["window_bits"]

    def encoder() -> zlib._Compress:
        return zlib.compressobj(SETTINGS["level"], zlib.DEFLATED, -bits, SETTINGS["mem_level"])

    def decoder() -> zlib._Decompress:
        return zlib.decompressobj(-bits)

    client_out, server_out = encoder(), encoder()
    client_in, server_in = decoder(), decoder()

    def run(count: int) -> None:
        for index in range(count):
            data = payloads[index & 1]
            wire = client_out.compress(data) + client_out.flush(zlib.Z_SYNC_FLUSH)
            received = server_in.decompress(wire[:-4] + TAIL)
            wire = server_out.compress(received) + server_out.flush(zlib.Z_SYNC_FLUSH)
            echoed = client_in.decompress(wire[:-4] + TAIL)
            if echoed != data:
                raise RuntimeError("zlib round trip lost data")

    return run


def engines(deflate: bool) -> tuple[Connection, Connection]:
    """A client engine and a server engine, with permessage-deflate as negotiated or without."""

    def extensions() -> list[PerMessageDeflate]:
        if not deflate:
            return []
        return [
            PerMessageDeflate(
                remote_no_context_takeover=False,
                local_no_context_takeover=False,
                remote_max_window_bits=SETTINGS["window_bits"],
                local_max_window_bits=SETTINGS["window_bits"],
                compress_settings={"level": SETTINGS["level"], "memLevel": SETTINGS["mem_level"]},
            )
        ]

    client = Connection(Role.CLIENT, extensions=extensions())
    return client, Connection(Role.SERVER, extensions=extensions())


def engine_round_trips(deflate: bool) -> Callable[[int], None]:
    """Two engines, client and server, echoing text messages."""
    texts = tuple(message.decode() for message in messages())
    client, server = engines(deflate)

    def run(count: int) -> None:
        for index in range(count):
            text = texts[index & 1]
            client.send_message(text)
            for data in client.data_to_send():
                server.receive_data(data)
            (message,) = server.events()
            if not isinstance(message, Message):
                raise RuntimeError(f"the server got {message!r}")
            server.send_message(message.data)
            for data in server.data_to_send():
                client.receive_data(data)
            (echo,) = client.events()
            if not isinstance(echo, Message) or echo.data != text:
                raise RuntimeError("engine round trip lost data")

    return run


def core_round_trips(deflate: bool) -> Callable[[int], None]:
    """Two engines echoing text messages through the asyncio connections' one-call paths."""
    texts = tuple(message.decode() for message in messages())
    client, server = engines(deflate)
    client_queue, server_queue = MessageQueue(16), MessageQueue(16)

    def run(count: int) -> None:
        for index in range(count):
            text = texts[index & 1]
            frame = message_frame(client, text, None)
            if frame is None or receive_messages(server, frame, server_queue, None) != len(frame):
                raise RuntimeError("the server's one-call path declined")
            message = take_message(server_queue)
            frame = message_frame(server, message, None)
            if frame is None or receive_messages(client, frame, client_queue, None) != len(frame):
                raise RuntimeError("the client's one-call path declined")
            if take_message(client_queue) != text:
                raise RuntimeError("core round trip lost data")

    return run


def print_sizes() -> None:
    """The compressed size of each message, alone and after the other (context takeover)."""
    bits = SETTINGS["window_bits"]
    encoder = zlib.compressobj(SETTINGS["level"], zlib.DEFLATED, -bits, SETTINGS["mem_level"])
    for index, message in enumerate(messages() * 2):
        size = len(encoder.compress(message) + encoder.flush(zlib.Z_SYNC_FLUSH)) - 4
        print(f"message {index}: {len(message)} -> {size} bytes")


def round_trips(case: str) -> Callable[[int], None]:
    """The function that runs ``count`` round trips of ``case``."""
    if case == "zlib":
        return zlib_round_trips()
    if case.startswith("core"):
        return core_round_trips(case == "core")
    return engine_round_trips(case == "engine")


def cpu_seconds(case: str, count: int) -> float:
    """CPU seconds per round trip of ``case``, after a warm-up."""
    run = round_trips(case)
    run(100)
    start = time.process_time()
    run(count)
    return (time.process_time() - start) / count


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--callgrind", action="store_true", help="count instructions")
    parser.add_argument("--case", choices=CASES, help="one case")
    parser.add_argument("--count", type=int, help="round trips (default 20000)")
    parser.add_argument("--level", type=int, default=SETTINGS["level"])
    parser.add_argument("--mem-level", type=int, default=SETTINGS["mem_level"])
    parser.add_argument("--window-bits", type=int, default=SETTINGS["window_bits"])
    parser.add_argument("--sizes", action="store_true", help="compressed sizes")
    args = parser.parse_args()
    SETTINGS.update(level=args.level, mem_level=args.mem_level, window_bits=args.window_bits)
    settings = [f"--level={args.level}", f"--mem-level={args.mem_level}"]
    settings.append(f"--window-bits={args.window_bits}")
    if args.sizes:
        print_sizes()
        return
    if args.count is not None and args.case is not None and not args.callgrind:
        # One run, as callgrind starts it: no output needed.
        round_trips(args.case)(args.count)
        return
    results = {}
    for case in [args.case] if args.case else list(CASES):
        if args.callgrind:
            value = per_operation("bench.deflate_core", ["--case", case, *settings], (2_000, 6_000))
            print(f"{case:<10} {value:>10,.0f} instructions per round trip", flush=True)
        else:
            value = cpu_seconds(case, args.count or 20_000) * 1e6
            print(f"{case:<10} {value:>10.2f} CPU us per round trip", flush=True)
        results[case] = value
    if len(results) == len(CASES):
        overhead = results["engine"] - results["plain"] - results["zlib"]
        print(f"engine - plain - zlib: {overhead:,.2f} (tether's own work around zlib)")
        print(f"engine / plain: x{results['engine'] / results['plain']:.2f}")
        overhead = results["core"] - results["core-plain"] - results["zlib"]
        print(f"core - core-plain - zlib: {overhead:,.2f} (on the one-call paths)")
        print(f"core / core-plain: x{results['core'] / results['core-plain']:.2f}")


if __name__ == "__main__":
    main()
