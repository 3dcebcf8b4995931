"""The wasm binary format, as far as meshguard's tools read it: LEB128 integers and the section
list. Standard library only; the e2e harness reads export names with it, tools/size.py the code
and name sections.
"""

from __future__ import annotations

from typing import Iterator

MAGIC = b"\0asm"


def leb(buf: bytes, pos: int) -> tuple[int, int]:
    """The unsigned LEB128 integer at `pos`, and the position after it."""
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return result, pos


def sections(buf: bytes) -> Iterator[tuple[int, str | None, int, int, int]]:
    """Each section of a module (`buf` starts with MAGIC) as (id, custom section name or None,
    start of its contents, end, total bytes with its header)."""
    pos = 8
    while pos < len(buf):
        sid = buf[pos]
        size, p = leb(buf, pos + 1)
        name = None
        body = p
        if sid == 0:
            nlen, q = leb(buf, p)
            name = buf[q:q + nlen].decode("utf-8", "replace")
            body = q + nlen
        yield sid, name, body, p + size, (p + size) - pos
        pos = p + size
