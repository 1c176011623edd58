from typing import Any

def apply_mask(data: bytes | bytearray | memoryview, mask: bytes) -> bytes: ...
def parse_header(
    header_type: type[Any],
    buf: bytes | bytearray | memoryview,
    pos: int,
    expect_mask: bool,
    allowed_rsv: int,
) -> Any: ...
