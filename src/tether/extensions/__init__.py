"""WebSocket extensions: the base classes and permessage-deflate."""

from tether.extensions.base import (
    ClientExtensionFactory,
    Extension,
    ExtensionParameter,
    ServerExtensionFactory,
)

__all__ = ["ClientExtensionFactory", "Extension", "ExtensionParameter", "ServerExtensionFactory"]
