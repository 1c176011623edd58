"""TLS inside TLS for the threading client: ``wss://`` through an ``https://`` proxy.

A :class:`ssl.SSLSocket` cannot carry a second TLS session, and the threading
connection needs a real socket (it waits on its file descriptor). So the
tunnel to the server, a TLS connection to the proxy, is relayed to one end
of a socket pair by a thread of its own, and the client speaks TLS to the
server on the other end. Only this rare setup pays for the thread.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import ssl
import threading

__all__ = ["relay"]

_CHUNK = 65536

logger = logging.getLogger("tether.client")


def relay(tunnel: ssl.SSLSocket) -> socket.socket:
    """Return a socket whose bytes travel through ``tunnel``, both ways.

    A daemon thread moves the bytes until either side ends or fails, then
    closes both; the returned socket is the caller's to close.
    """
    inner, outer = socket.socketpair()
    thread = threading.Thread(
        target=_pump, args=(tunnel, outer), name="tether-tls-tunnel", daemon=True
    )
    thread.start()
    return inner


def _pump(tunnel: ssl.SSLSocket, end: socket.socket) -> None:
    tunnel.settimeout(None)
    selector = selectors.DefaultSelector()
    try:
        selector.register(tunnel, selectors.EVENT_READ)
        selector.register(end, selectors.EVENT_READ)
        while True:
            # Bytes TLS already decrypted are not on the file descriptor.
            if tunnel.pending():
                ready: list[object] = [tunnel]
            else:
                ready = [key.fileobj for key, _ in selector.select()]
            for source in ready:
                target = end if source is tunnel else tunnel
                data = tunnel.recv(_CHUNK) if source is tunnel else end.recv(_CHUNK)
                if not data:
                    return
                target.sendall(data)
    except OSError as exc:
        logger.debug("TLS tunnel through the proxy ended: %s", exc)
    finally:
        selector.close()
        for sock in (end, tunnel):
            with contextlib.suppress(OSError):
                sock.close()
