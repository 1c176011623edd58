"""tether as the WebSocket implementation of uvicorn, for ASGI applications.

Run any ASGI application (FastAPI, Starlette, ...) with its WebSockets
served by tether's engine::

    uvicorn app:app --ws tether.asgi:WebSocketProtocol

or ``uvicorn.run(app, ws="tether.asgi:WebSocketProtocol")``. uvicorn comes
with the ``asgi`` extra (``pip install 'tether[asgi]'``); importing
``import tether`` alone never imports it.
"""

from __future__ import annotations

from tether.asgi.protocol import WebSocketProtocol

__all__ = ["WebSocketProtocol"]
