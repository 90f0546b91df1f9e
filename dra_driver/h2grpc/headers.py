"""Header blocks (HPACK, RFC 7541): the request's are decoded with ``hpack`` (it keeps the connection's
dynamic table); the few this server sends are written as literals that never touch a dynamic table."""

from __future__ import annotations

import hpack

from dra_driver.h2grpc.status import Status, encode_message

MAX_HEADER_LIST_BYTES = 16 * 1024  # what this server accepts in one request's headers (and advertises)


def _integer(value: int, prefix_bits: int) -> bytes:
    """An HPACK integer (§5.1) whose first byte's high bits are zero."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((value,))
    out, value = bytearray((limit,)), value - limit
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def literal(name: bytes, value: bytes) -> bytes:
    """A literal header field without indexing, with a new name and no Huffman coding (§6.2.2)."""
    return b"\x00" + _integer(len(name), 7) + name + _integer(len(value), 7) + value


STATUS_200 = b"\x88"  # :status 200, index 8 of the static table
RESPONSE = STATUS_200 + literal(b"content-type", b"application/grpc")
OK_TRAILERS = literal(b"grpc-status", b"0")


def trailers(status: Status, message: str = "") -> bytes:
    block = literal(b"grpc-status", str(int(status)).encode())
    return block + literal(b"grpc-message", encode_message(message)) if message else block


def http_error(code: int) -> bytes:
    """A plain HTTP answer (no gRPC) to a request that is not gRPC at all."""
    return literal(b":status", str(code).encode())


def decoder() -> hpack.Decoder:
    decoder = hpack.Decoder()
    decoder.max_header_list_size = MAX_HEADER_LIST_BYTES
    return decoder


def decode(decoder: hpack.Decoder, block: bytes) -> dict[bytes, bytes]:
    """The header block's fields (the last of a repeated name wins); raises hpack.HPACKError."""
    return dict(decoder.decode(block, raw=True))
