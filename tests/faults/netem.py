"""A network that loses and delays packets, between two network namespaces the test creates.

Linux's ``netem`` queueing discipline is the usual tool, but kernels built
without it are common in containers and CI machines (this one lacks it), so
the link is emulated in user space instead, which needs only TUN devices and
iproute2: two private network namespaces, ``a`` and ``b``, each with one
point-to-point TUN device, ``10.201.0.1`` in ``a`` and ``10.201.0.2`` in
``b``. Nothing else is in them: no route leads out of the machine. A relay
thread reads every IP packet one namespace sends and writes it into the
other after ``delay`` seconds, unless it drops it: at random with
probability ``loss``, or all of them while the link is blackholed. The
kernel's TCP on both sides sees real loss and latency: retransmissions,
congestion windows and timeouts are its own.

Sockets are made inside a namespace by a short-lived thread that enters it
with ``setns(2)`` (a namespace belongs to a thread, and a socket keeps the
namespace it was made in), so the test process holds both ends, and an
event loop or a threading connection uses them like any other socket.

Root (``CAP_NET_ADMIN`` and ``CAP_SYS_ADMIN``), ``ip`` and ``/dev/net/tun``
are needed; :func:`unavailable` tells what is missing, and the tests skip
with that reason where the machine does not allow it.
"""

from __future__ import annotations

import ctypes
import fcntl
import heapq
import itertools
import os
import random
import re
import select
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

__all__ = ["ADDRESS_A", "ADDRESS_B", "Link", "link", "unavailable"]

ADDRESS_A = "10.201.0.1"
"""The address of namespace ``a``."""

ADDRESS_B = "10.201.0.2"
"""The address of namespace ``b``."""

_CLONE_NEWNET = 0x40000000
_TUNSETIFF = 0x400454CA
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000
_DEVICE = "tt0"
_NETNS_DIR = "/run/netns"

_counter = itertools.count()

T = TypeVar("T")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def unavailable() -> str | None:
    """Why namespaces with an emulated link cannot be made here; ``None`` if they can."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "network namespaces need root (CAP_NET_ADMIN and CAP_SYS_ADMIN)"
    if shutil.which("ip") is None:
        return "iproute2's ip is not installed (the Makefile's DEBIAN_PACKAGES installs it)"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun: the kernel has no TUN driver here"
    name = f"tether-probe-{os.getpid()}-{next(_counter)}"
    try:
        _ip("netns", "add", name)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"cannot create a network namespace: {exc}"
    try:
        _ip("-n", name, "tuntap", "add", "dev", _DEVICE, "mode", "tun")
    except subprocess.CalledProcessError as exc:
        return f"cannot create a TUN device in a namespace: {exc.stderr.decode().strip()}"
    finally:
        _ip("netns", "del", name)
    return None


def in_namespace(name: str, function: Callable[[], T]) -> T:
    """Call ``function`` on a thread of its own that entered the namespace ``name``."""
    result: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(os.path.join(_NETNS_DIR, name), os.O_RDONLY)
            try:
                if libc.setns(fd, _CLONE_NEWNET) != 0:
                    errno = ctypes.get_errno()
                    raise OSError(errno, f"setns: {os.strerror(errno)}")
            finally:
                os.close(fd)
            result.append(function())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"netns-{name}")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def _open_tun() -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", _DEVICE.encode(), _IFF_TUN | _IFF_NO_PI))
    return fd


class Link:
    """The emulated link between namespaces ``a`` and ``b``: see the module's docstring."""

    def __init__(self, names: tuple[str, str], delay: float, loss: float, seed: int) -> None:
        self.names = names
        self.delay = delay
        """Seconds each packet takes, each way."""
        self.loss = loss
        """The probability that a packet is dropped."""
        self.blackholed = False
        """While true, every packet is dropped."""
        self.forwarded = 0
        self.dropped = 0
        self._random = random.Random(seed)
        self._tuns = (in_namespace(names[0], _open_tun), in_namespace(names[1], _open_tun))
        self._wake_r, self._wake_w = os.pipe()
        self._stopping = False
        self._thread = threading.Thread(target=self._relay, name="netem-relay", daemon=True)
        self._thread.start()

    def socket_in(self, side: str, family: int = socket.AF_INET) -> socket.socket:
        """A new TCP socket of namespace ``side`` (``"a"`` or ``"b"``)."""
        name = self.names[0 if side == "a" else 1]
        return in_namespace(name, lambda: socket.socket(family, socket.SOCK_STREAM))

    def listener(self) -> socket.socket:
        """A listening socket on a free port of :data:`ADDRESS_B`."""
        sock = self.socket_in("b")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((ADDRESS_B, 0))
        sock.listen(128)
        return sock

    def blackhole(self) -> None:
        """Drop every packet from now on, both ways, as a dead route or a lost NAT entry does."""
        self.blackholed = True

    def _relay(self) -> None:
        a, b = self._tuns
        other = {a: b, b: a}
        # (when to write, order, where, packet): delivered in order of time.
        due: list[tuple[float, int, int, bytes]] = []
        order = itertools.count()
        while not self._stopping:
            timeout = max(due[0][0] - time.monotonic(), 0.0) if due else None
            readable, _, _ = select.select([a, b, self._wake_r], [], [], timeout)
            for fd in readable:
                if fd == self._wake_r:
                    continue
                while True:
                    try:
                        packet = os.read(fd, 65536)
                    except BlockingIOError:
                        break
                    if self.blackholed or self._random.random() < self.loss:
                        self.dropped += 1
                        continue
                    when = time.monotonic() + self.delay
                    heapq.heappush(due, (when, next(order), other[fd], packet))
            now = time.monotonic()
            while due and due[0][0] <= now:
                _, _, fd, packet = heapq.heappop(due)
                if not self.blackholed:
                    self.forwarded += 1
                    try:
                        os.write(fd, packet)
                    except OSError:
                        self.dropped += 1  # The device's queue is full: a drop, as on a wire.

    def close(self) -> None:
        self._stopping = True
        os.write(self._wake_w, b"x")
        self._thread.join(10)
        for fd in (*self._tuns, self._wake_r, self._wake_w):
            os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale() -> None:
    """Remove the namespaces of test processes that died without removing theirs."""
    listed = subprocess.run(
        ["ip", "netns", "list"], check=True, capture_output=True, text=True, timeout=10
    )
    for line in listed.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        found = re.fullmatch(r"tether-(?:probe-)?(\d+)-\d+(?:-[ab])?", name)
        if found and not _alive(int(found.group(1))):
            _ip("netns", "del", name)


@contextmanager
def link(delay: float = 0.0, loss: float = 0.0, seed: int = 6455) -> Iterator[Link]:
    """Make the two namespaces and their link; remove them on exit."""
    remove_stale()
    base = f"tether-{os.getpid()}-{next(_counter)}"
    names = (f"{base}-a", f"{base}-b")
    made: list[str] = []
    try:
        for name, (local, remote) in zip(
            names, ((ADDRESS_A, ADDRESS_B), (ADDRESS_B, ADDRESS_A)), strict=True
        ):
            _ip("netns", "add", name)
            made.append(name)
            _ip("-n", name, "link", "set", "lo", "up")
            _ip("-n", name, "tuntap", "add", "dev", _DEVICE, "mode", "tun")
            _ip("-n", name, "addr", "add", local, "peer", remote, "dev", _DEVICE)
            _ip("-n", name, "link", "set", _DEVICE, "up")
        emulated = Link(names, delay, loss, seed)
        try:
            yield emulated
        finally:
            emulated.close()
    finally:
        for name in made:
            _ip("netns", "del", name)
