import zlib
from collections.abc import Callable
from typing import Any

def apply_mask(data: bytes | bytearray | memoryview, mask: bytes) -> bytes: ...
def build_frame(first: int, data: bytes | bytearray | memoryview, key: bytes | None) -> bytes: ...

class Deflater:
    def __init__(self, level: int, wbits: int, memLevel: int, strategy: int) -> None: ...
    def compress(self, data: bytes | bytearray | memoryview, /) -> bytes: ...
    def flush(self, mode: int, /) -> bytes: ...

class Inflater:
    def __init__(self, wbits: int) -> None: ...
    @property
    def eof(self) -> bool: ...
    @property
    def unused_data(self) -> bytes: ...
    def decompress(self, data: bytes | bytearray | memoryview, /, max_length: int = 0) -> bytes: ...

def deflate_frame(
    encoder: zlib._Compress | Deflater,
    first: int,
    data: bytes | bytearray | memoryview,
    key: bytes | None,
) -> bytes: ...
def fill_payload(
    target: bytes | bytearray,
    at: int,
    data: bytes | bytearray | memoryview,
    key: bytes | None,
) -> None: ...
def inflate_frame(
    decoder: zlib._Decompress | Inflater,
    data: bytes | bytearray | memoryview,
    key: bytes | None,
    tail: bool,
    max_length: int,
) -> bytes: ...
def encode_whole(
    whole: Any, first: int, data: bytes | bytearray | memoryview, key: bytes | None
) -> bytes: ...
def forget_keys() -> None: ...
def register_deflate(cls: type[Any]) -> None: ...
def make_message(data: str | bytes) -> Any: ...
def masking_key() -> bytes: ...
def message_frame(engine: Any, data: object, text: bool | None) -> bytes | None: ...
def new_frame(
    frame_type: type[Any],
    opcode: int,
    data: bytes,
    fin: bool,
    rsv1: bool,
    rsv2: bool,
    rsv3: bool,
) -> Any: ...
def new_payload(size: int) -> bytes: ...
def parse_header(
    header_type: type[Any],
    buf: bytes | bytearray | memoryview,
    pos: int,
    expect_mask: bool,
    allowed_rsv: int,
) -> Any: ...
def deliver_messages(
    engine: Any,
    data: bytes | bytearray | memoryview,
    on_message: Callable[[Any, str | bytes], object],
    connection: Any,
    limit: int | None = None,
) -> int | tuple[int, Exception]: ...
def read_messages(
    buf: bytes | bytearray | memoryview,
    pos: int,
    expect_mask: bool,
    max_size: int | None,
    limit: int | None,
    events: list[Any],
    whole: Any,
) -> int: ...
def receive_messages(
    engine: Any,
    data: bytes | bytearray | memoryview,
    queue: Any,
    waiter: Any,
) -> int: ...
def take_message(queue: Any) -> str | bytes | None: ...
def wake_now(reader: Any, loop: Any) -> bool: ...

DIRECT_WAKE_READ: int

def write_message(connection: Any, data: object, text: bool | None) -> bool | None: ...
def anext_method(cls: type[Any]) -> Any: ...
def data_received_method(cls: type[Any]) -> Any: ...
def send_method(cls: type[Any], send: Callable[..., Any]) -> Any: ...
def write_shared(
    connections: Any,
    make_frame: Callable[[], bytes],
    open_state: Any,
    protocol_types: tuple[type[Any], ...],
    transport_types: tuple[type[Any], ...],
    plain_type: type[Any] | None,
) -> tuple[int, list[Any], bytes | None]: ...
def read_request_head(
    buf: bytes | bytearray | memoryview,
    max_line: int,
    max_headers: int,
    max_size: int,
    common: tuple[str, ...],
) -> tuple[str, list[tuple[str, str]], int] | None: ...
def read_response_head(
    buf: bytes | bytearray | memoryview,
    max_line: int,
    max_headers: int,
    max_size: int,
    common: tuple[str, ...],
    proxy: bool,
) -> tuple[int, str, list[tuple[str, str]], int] | None: ...
def pack_fields(fields: list[tuple[str, str]]) -> bytes | None: ...
