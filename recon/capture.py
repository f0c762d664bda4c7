"""Packet capture files: the one place that reads and writes pcap.

``PcapWriter`` writes the global header at open and each record with a single
``write()`` on an unbuffered file, so the file is a valid pcap after every
packet, including after Ctrl-C or SIGKILL between packets.
"""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path
from types import TracebackType

from recon.errors import InputError

__all__ = ["PcapWriter", "LINKTYPE_ETHERNET", "LINKTYPE_RAW", "LINKTYPE_IPV4", "LINKTYPE_IPV6"]

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101  # raw IPv4 or IPv6, version nibble decides
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229

_MAGIC_NS = 0xA1B23C4D  # nanosecond-resolution pcap
_SNAPLEN = 262_144


class PcapWriter:
    """Incremental, crash-safe pcap writer (nanosecond timestamps)."""

    def __init__(self, path: str | os.PathLike[str], linktype: int = LINKTYPE_RAW) -> None:
        self.path = Path(path)
        self.linktype = linktype
        self.count = 0
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except OSError as exc:
            raise InputError(f"cannot write pcap {str(path)!r}: {exc.strerror}", hint="choose a writable path") from None
        os.write(self._fd, struct.pack("<IHHiIII", _MAGIC_NS, 2, 4, 0, 0, _SNAPLEN, linktype))

    def write(self, data: bytes, timestamp_ns: int | None = None) -> None:
        """Append one packet (``timestamp_ns``: wall-clock ns since the epoch)."""
        if timestamp_ns is None:
            timestamp_ns = time.time_ns()
        sec, nsec = divmod(timestamp_ns, 1_000_000_000)
        caplen = min(len(data), _SNAPLEN)
        os.write(self._fd, struct.pack("<IIII", sec, nsec, caplen, len(data)) + data[:caplen])
        self.count += 1

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "PcapWriter":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
