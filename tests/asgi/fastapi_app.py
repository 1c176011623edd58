"""The FastAPI application the ASGI tests serve with uvicorn, with the endpoints of apps.py."""

from __future__ import annotations

from fastapi import FastAPI

from tests.asgi.apps import WEBSOCKETS, Recorder, seen


def _fastapi() -> FastAPI:
    api = FastAPI()
    api.add_api_route("/seen/{name}", seen)
    for path, endpoint in WEBSOCKETS.items():
        api.add_api_websocket_route(path, endpoint)
    return api


fastapi_app = Recorder(_fastapi())
"""The FastAPI application: ``tests.asgi.fastapi_app:fastapi_app``."""
