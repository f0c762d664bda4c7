"""pcap and pcapng files: the one place recon reads and writes them (ARCHITECTURE.md).

``PcapWriter`` writes the global header at open and each record with a single
``write()`` on an unbuffered file, so the file is a valid pcap after every
packet, including after Ctrl-C or SIGKILL between packets. A short or failed
write (full disk, quota, I/O error) is cut back to the last whole record.

``read_frames`` replays pcap (µs/ns, either byte order) and pcapng (SHB/IDB/EPB/SPB,
per-interface link types and timestamp resolutions) as a stream of plain reads
(standard input included; never mmap). It yields what decodes and raises
``CaptureError`` at the first damage (truncated record, corrupt block, a record
over 256 KiB, unknown link type), so callers show the good frames first and then
one error.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, BinaryIO, NamedTuple

from recon.decode import LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_LINUX_SLL2, LINKTYPE_RAW, TIME_NS_MAX
from recon.decode import LINKTYPES as SUPPORTED_LINKTYPES
from recon.errors import CaptureError, InputError, ReconEnvironmentError, ReconError

__all__ = [
    "LINKTYPE_ETHERNET",
    "LINKTYPE_IPV4",
    "LINKTYPE_IPV6",
    "LINKTYPE_LINUX_SLL2",
    "LINKTYPE_RAW",
    "SNAPLEN",
    "SUPPORTED_LINKTYPES",
    "Frame",
    "PcapWriter",
    "file_id",
    "is_stream",
    "open_capture",
    "pcap_header",
    "read_frames",
    "same_file",
]

_MAGIC_NS = 0xA1B23C4D  # nanosecond-resolution pcap
_MAGIC_US = 0xA1B2C3D4  # microsecond-resolution pcap
SNAPLEN = 262_144  # the longest record written (tshark's largest standard frame)
_TS_MAX_NS = TIME_NS_MAX  # the latest time a pcap record can hold (year 2106): later times are clamped to it


def pcap_header(linktype: int, magic: int = _MAGIC_NS) -> bytes:
    """The 24-byte pcap global header (version 2.4)."""
    return struct.pack("<IHHiIII", magic, 2, 4, 0, 0, SNAPLEN, linktype)


_WRITE_ERRORS = {  # errno → what it means for the user, for a write that failed after the file was opened
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "the file has reached the largest size allowed here",
    errno.EIO: "the disk reported an I/O error",
}


class PcapWriter:
    """Incremental, crash-safe pcap writer (nanosecond timestamps).

    Each record goes out in one ``write()`` on an unbuffered file, so the file is a valid pcap after
    every packet, also after Ctrl-C or SIGKILL. A short or failed write (a full disk, a quota, an
    I/O error) is cut back to the last whole record and raised as ``ReconEnvironmentError``, so the
    file never ends in the middle of a packet. The path is opened with ``O_NOFOLLOW``: a symbolic
    link planted at the output path is refused, never written through. Writes from several threads (a
    sweep's IPv4 and IPv6 parts run at once) go one whole record at a time.
    """

    def __init__(self, path: str | os.PathLike[str], linktype: int = LINKTYPE_RAW) -> None:
        self.path = Path(path)
        self.linktype = linktype
        self.count = 0
        self._lock = threading.Lock()
        self._size = 0  # bytes of whole records (and the header) in the file
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP and self.path.is_symlink():
                raise InputError(f"will not write pcap {str(path)!r}: it is a symbolic link",
                                 hint="remove the link, or give the path it points to") from None
            raise InputError(f"cannot write pcap {str(path)!r}: {exc.strerror}", hint="choose a writable path") from None
        try:
            self._append(pcap_header(linktype))
        except ReconError:
            self.close()
            raise

    def write(self, data: bytes, timestamp_ns: int | None = None) -> None:
        """Append one packet (``timestamp_ns``: wall-clock ns since the epoch, clamped to what pcap holds)."""
        if timestamp_ns is None:
            timestamp_ns = time.time_ns()
        sec, nsec = divmod(min(max(timestamp_ns, 0), _TS_MAX_NS), 1_000_000_000)
        caplen = min(len(data), SNAPLEN)
        with self._lock:
            self._append(struct.pack("<IIII", sec, nsec, caplen, len(data)) + data[:caplen])
            self.count += 1

    def _append(self, record: bytes) -> None:
        """Write one whole record, or none of it: a short or failed write is cut back and raised."""
        if self._fd < 0:
            raise ReconEnvironmentError(f"cannot write pcap {str(self.path)!r}: it was closed after an earlier error")
        try:
            done = os.write(self._fd, record)
            while done < len(record):  # a short write: the next one says why (or finishes the record)
                more = os.write(self._fd, record[done:])
                if more <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                done += more
        except OSError as exc:
            self._cut_back()
            what = _WRITE_ERRORS.get(exc.errno or 0, exc.strerror or "write failed")
            raise ReconEnvironmentError(
                f"cannot write pcap {str(self.path)!r}: {what} ({exc.strerror}); it holds the {self.count} whole "
                f"packet{'s' if self.count != 1 else ''} written before", hint="free some space or write elsewhere") from None
        self._size += done

    def _cut_back(self) -> None:
        """Truncate the file to its last whole record, then close it (nothing more is written)."""
        try:
            os.ftruncate(self._fd, self._size)
        except OSError:
            pass
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


# --- reading pcap / pcapng -------------------------------------------------------------------

_MAX_RECORD = 262_144  # the largest frame tshark accepts in a standard capture; a larger record is damage
_MAX_BLOCK = 16 << 20  # the largest pcapng block read (interface, name-resolution, custom blocks)
_CHUNK = 1 << 20  # bytes per read(): the reader never maps the file, so a file shrinking under it is a short read


class Frame(NamedTuple):
    """One captured frame: wall-clock time in ns, link type, the captured bytes, the length on the wire."""

    time_ns: int
    linktype: int
    data: bytes
    wirelen: int
    interface: str | None = None


_PCAP_MAGICS = {  # magic bytes → (byte order, ns per timestamp fraction unit, record header size)
    b"\xd4\xc3\xb2\xa1": ("<", 1000, 16),
    b"\xa1\xb2\xc3\xd4": (">", 1000, 16),
    b"\x4d\x3c\xb2\xa1": ("<", 1, 16),
    b"\xa1\xb2\x3c\x4d": (">", 1, 16),
    b"\x34\xcd\xb2\xa1": ("<", 1000, 24),  # Kuznetzov's modified pcap (extra ifindex/protocol/type)
    b"\xa1\xb2\xcd\x34": (">", 1000, 24),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"


def _unknown_linktype(path: str, linktype: int, where: str = "") -> CaptureError:
    known = ", ".join(f"{v} ({k})" for k, v in sorted(SUPPORTED_LINKTYPES.items()) if k not in (12, 14))
    return CaptureError(f"{path}: unknown link type {linktype}{where}", hint=f"recon reads {known}")


def open_capture(path: str | os.PathLike[str]) -> BinaryIO:
    """The capture file opened for reading, unbuffered (``-`` is standard input, left open on close)."""
    name = os.fspath(path)
    try:
        if name == "-":
            return open(sys.stdin.fileno(), "rb", buffering=0, closefd=False)
        return open(name, "rb", buffering=0)
    except OSError as exc:
        raise CaptureError(f"cannot read capture {name!r}: {exc.strerror}", hint="give an existing pcap or pcapng file") from None


def is_stream(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is standard input, a pipe or a device: packets should be shown as they arrive."""
    name = os.fspath(path)
    try:
        return name == "-" or not stat.S_ISREG(os.stat(name).st_mode)
    except OSError:
        return False


def _read(fh: BinaryIO, name: str) -> bytes:
    """One read() of up to ``_CHUNK`` bytes (b"" at the end); a pipe returns what has arrived."""
    try:
        return fh.read(_CHUNK) or b""
    except OSError as exc:
        raise CaptureError(f"cannot read capture {name!r}: {exc.strerror}") from None


def read_frames(path: str | os.PathLike[str], fh: BinaryIO | None = None) -> Iterator[Frame]:
    """Every frame of a pcap or pcapng file, in order, read as a stream (``-`` reads standard input).

    Raises ``CaptureError`` for a missing/unreadable file, a file that is neither format, an unknown
    link type, and at the first truncated or corrupt record (after yielding every good frame before it).
    The file is read with plain reads, never mapped: a file truncated by another process while it is
    read is a truncated capture, not a SIGBUS. ``fh``: an already opened file (see ``open_capture``).
    """
    name = "standard input" if os.fspath(path) == "-" else os.fspath(path)
    if fh is None:
        fh = open_capture(path)
    with fh:
        head = b""
        while len(head) < 4:
            more = _read(fh, name)
            if not more:
                break
            head += more
        magic = head[:4]
        if magic == _PCAPNG_SHB:
            yield from _read_pcapng(fh, head, name)
        elif magic in _PCAP_MAGICS:
            yield from _read_pcap(fh, head, name, *_PCAP_MAGICS[magic])
        elif len(head) < 4:
            raise CaptureError(f"{name}: empty or truncated capture ({len(head)} bytes)", hint="the file holds no pcap header")
        else:
            raise CaptureError(f"{name}: not a pcap or pcapng file (magic {magic.hex()})",
                               hint="give a capture written by tcpdump, tshark or recon")


def _fill(fh: BinaryIO, buf: bytes, off: int, need: int, name: str) -> tuple[bytes, int]:
    """``buf`` from ``off`` with at least ``need`` bytes (fewer only at the end of the file); the new offset is 0."""
    parts = [buf[off:]]
    have = len(parts[0])
    while have < need:
        more = _read(fh, name)
        if not more:
            break
        parts.append(more)
        have += len(more)
    return b"".join(parts), 0


def _read_pcap(fh: BinaryIO, buf: bytes, name: str, order: str, unit_ns: int, rec_size: int) -> Iterator[Frame]:
    buf, off = _fill(fh, buf, 0, 24, name)
    if len(buf) < 24:
        raise CaptureError(f"{name}: truncated pcap header ({len(buf)} of 24 bytes)")
    linktype = struct.unpack_from(order + "I", buf, 20)[0] & 0xFFFF  # upper bits carry FCS information
    if linktype not in SUPPORTED_LINKTYPES:
        raise _unknown_linktype(name, linktype)
    unpack = struct.Struct(order + "IIII").unpack_from
    new = tuple.__new__  # Frame(...) without NamedTuple's Python-level __new__: this loop is hot
    off, index, n = 24, 0, len(buf)
    while True:
        # records wholly in this chunk, inline (a call per record would cost speed)
        while off + rec_size <= n:
            sec, frac, incl, orig = unpack(buf, off)
            if incl > _MAX_RECORD:
                raise CaptureError(f"{name}: corrupt record {index + 1}: captured length {incl} exceeds {_MAX_RECORD}")
            end = off + rec_size + incl
            if end > n:
                break
            index += 1
            ts = sec * 1_000_000_000 + frac * unit_ns
            yield new(Frame, (ts if ts <= _TS_MAX_NS else _TS_MAX_NS, linktype, buf[end - incl:end], orig, None))
            off = end
        # a record header here whose frame is not: read at least that much
        need = rec_size + unpack(buf, off)[2] if off + rec_size <= n else rec_size
        buf, off = _fill(fh, buf, off, max(need, 1), name)
        n = len(buf)
        if n == 0:
            return
        if n < need:
            if n < rec_size:
                raise CaptureError(f"{name}: truncated record header after frame {index} ({n} of {rec_size} bytes)")
            raise CaptureError(f"{name}: truncated frame {index + 1} ({n - rec_size} of {need - rec_size} bytes)")


def _pcapng_interface(buf: bytes, off: int, blen: int, order: str, name: str) -> tuple[int, int, int, str | None]:
    """An Interface Description Block → (link type, timestamp units per second, snaplen, if_name)."""
    if blen < 20:
        raise CaptureError(f"{name}: corrupt interface block ({blen} bytes)")
    linktype, _, snaplen = struct.unpack_from(order + "HHI", buf, off + 8)
    units, if_name = 1_000_000, None
    p, body_end = off + 16, off + blen - 4
    while p + 4 <= body_end:
        code, olen = struct.unpack_from(order + "HH", buf, p)
        if code == 0:
            break
        value = buf[p + 4:min(p + 4 + olen, body_end)]
        if code == 9 and value:
            units = 2 ** (value[0] & 0x7F) if value[0] & 0x80 else 10 ** value[0]
        elif code == 2:
            if_name = value.rstrip(b"\0").decode("utf-8", "replace")
        p += 4 + ((olen + 3) & ~3)
    return linktype, units, snaplen, if_name


def _read_pcapng(fh: BinaryIO, buf: bytes, name: str) -> Iterator[Frame]:
    off, index = 0, 0
    order = "<"
    ifaces: list[tuple[int, int, int, str | None]] = []  # linktype, units per second, snaplen, if_name
    while True:
        if len(buf) - off < 12:
            buf, off = _fill(fh, buf, off, 12, name)
            if not buf:
                return
            if len(buf) < 12:
                raise CaptureError(f"{name}: truncated pcapng block header after frame {index}")
        if buf[off:off + 4] == _PCAPNG_SHB:
            bom = buf[off + 8:off + 12]
            if bom == b"\x4d\x3c\x2b\x1a":
                order = "<"
            elif bom == b"\x1a\x2b\x3c\x4d":
                order = ">"
            else:
                raise CaptureError(f"{name}: corrupt pcapng section header (byte-order magic {bom.hex()})")
            ifaces = []
        btype, blen = struct.unpack_from(order + "II", buf, off)
        if blen < 12 or blen % 4 or blen > _MAX_BLOCK:
            raise CaptureError(f"{name}: corrupt pcapng block after frame {index} (length {blen})")
        if len(buf) - off < blen:
            buf, off = _fill(fh, buf, off, blen, name)
            if len(buf) < blen:
                raise CaptureError(f"{name}: truncated pcapng block after frame {index} ({len(buf)} of {blen} bytes)")
        body_end = off + blen - 4
        if btype == 1:  # Interface Description Block
            ifaces.append(_pcapng_interface(buf, off, blen, order, name))
        elif btype in (6, 2, 3):  # Enhanced, obsolete, Simple Packet Block
            if btype == 3:
                if blen < 16:
                    raise CaptureError(f"{name}: corrupt simple packet block after frame {index}")
                (orig,) = struct.unpack_from(order + "I", buf, off + 8)
                ifid, ts, start = 0, 0, off + 12
                incl = min(orig, body_end - start, ifaces[0][2] if ifaces and ifaces[0][2] else orig)
            else:
                if blen < 32:
                    raise CaptureError(f"{name}: corrupt packet block after frame {index} ({blen} bytes)")
                if btype == 6:
                    ifid, hi, lo, incl, orig = struct.unpack_from(order + "IIIII", buf, off + 8)
                else:
                    ifid, _, hi, lo, incl, orig = struct.unpack_from(order + "HHIIII", buf, off + 8)
                ts, start = (hi << 32) | lo, off + 28
            if start + incl > body_end or incl > _MAX_RECORD:
                raise CaptureError(f"{name}: corrupt packet block {index + 1}: captured length {incl} overruns the block")
            if ifid >= len(ifaces):
                raise CaptureError(f"{name}: packet block {index + 1} names interface {ifid}, which is not described")
            linktype, units, _, if_name = ifaces[ifid]
            if linktype not in SUPPORTED_LINKTYPES:
                raise _unknown_linktype(name, linktype, f" (interface {ifid})")
            index += 1
            yield Frame(min(ts * 1_000_000_000 // units, _TS_MAX_NS), linktype, buf[start:start + incl], orig, if_name)
        off += blen




def file_id(file: IO[Any] | str | os.PathLike[str]) -> tuple[int, int] | None:
    """(device, inode) of an open file or a name (through links): what tells two names of one file apart from two
    files; None when it is not there."""
    try:
        st = os.stat(file) if isinstance(file, (str, os.PathLike)) else os.fstat(file.fileno())
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def same_file(source: IO[Any] | str | os.PathLike[str], path: str | os.PathLike[str]) -> bool:
    """True when ``path`` names the file ``source`` (an open file, or another name) is (``file_id``: through links
    and other names); False when either is not there."""
    there = file_id(path)
    return there is not None and file_id(source) == there
