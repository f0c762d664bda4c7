"""Packet building that does not need Scapy: checksums and hand-built headers.

Scapy builds probe templates (``scapy.layers.inet``, imported lazily by callers);
this module holds the byte-level pieces shared by sweep, ping and craft.
"""

from __future__ import annotations

import struct

__all__ = ["inet_checksum"]


def inet_checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum of ``data`` (odd length padded with a zero byte)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF
