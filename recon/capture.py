"""Packet capture: the one place that reads and writes pcap, and captures live.

``PcapWriter`` writes the global header at open and each record with a single
``write()`` on an unbuffered file, so the file is a valid pcap after every
packet, including after Ctrl-C or SIGKILL between packets.

``read_frames`` replays pcap (µs/ns, either byte order) and pcapng (SHB/IDB/EPB/SPB,
per-interface link types and timestamp resolutions). It yields what decodes and
raises ``CaptureError`` at the first damage (truncated record, corrupt block,
unknown link type), so callers show the good frames first and then one error.

``LiveCapture`` reads an ``AF_PACKET`` socket with a classic BPF program compiled by
``tcpdump -ddd`` and attached in the kernel (``SO_ATTACH_FILTER``) before the
socket is bound, so no unfiltered packet is ever queued.
"""

from __future__ import annotations

import ctypes
import math
import errno
import os
import shutil
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, NamedTuple

from recon.decode import LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_LINUX_SLL2, LINKTYPE_RAW, TIME_NS_MAX
from recon.decode import LINKTYPES as SUPPORTED_LINKTYPES
from recon.errors import CaptureError, InputError, InvalidOption, PrivilegeError, ReconEnvironmentError, ReconError
from recon.models import DecodedPacket, IPHeader

__all__ = ["PcapWriter", "open_capture", "is_stream", "MAX_TIMEOUT", "LINKTYPE_ETHERNET", "LINKTYPE_RAW", "LINKTYPE_IPV4", "LINKTYPE_IPV6", "LINKTYPE_LINUX_SLL2",
           "Frame", "read_frames", "compile_bpf", "LiveCapture", "SUPPORTED_LINKTYPES", "sniff", "parse_proto",
           "bpf_match"]

_MAGIC_NS = 0xA1B23C4D  # nanosecond-resolution pcap
_MAGIC_US = 0xA1B2C3D4  # microsecond-resolution pcap
_SNAPLEN = 262_144
_TS_MAX_NS = TIME_NS_MAX  # the latest time a pcap record can hold (year 2106): later times are clamped to it


def _pcap_header(linktype: int, magic: int = _MAGIC_NS) -> bytes:
    """The 24-byte pcap global header (version 2.4)."""
    return struct.pack("<IHHiIII", magic, 2, 4, 0, 0, _SNAPLEN, linktype)


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
    link planted at the output path is refused, never written through.
    """

    def __init__(self, path: str | os.PathLike[str], linktype: int = LINKTYPE_RAW) -> None:
        self.path = Path(path)
        self.linktype = linktype
        self.count = 0
        self._size = 0  # bytes of whole records (and the header) in the file
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP and self.path.is_symlink():
                raise InputError(f"will not write pcap {str(path)!r}: it is a symbolic link",
                                 hint="remove the link, or give the path it points to") from None
            raise InputError(f"cannot write pcap {str(path)!r}: {exc.strerror}", hint="choose a writable path") from None
        try:
            self._append(_pcap_header(linktype))
        except ReconError:
            self.close()
            raise

    def write(self, data: bytes, timestamp_ns: int | None = None) -> None:
        """Append one packet (``timestamp_ns``: wall-clock ns since the epoch, clamped to what pcap holds)."""
        if timestamp_ns is None:
            timestamp_ns = time.time_ns()
        sec, nsec = divmod(min(max(timestamp_ns, 0), _TS_MAX_NS), 1_000_000_000)
        caplen = min(len(data), _SNAPLEN)
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

    def __enter__(self) -> "PcapWriter":
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
        if off + rec_size <= n:  # a record header is here but its frame is not: read at least that much
            need = rec_size + unpack(buf, off)[2]
        else:
            need = rec_size
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


# --- live capture -------------------------------------------------------------------------

ETH_P_ALL = 0x0003
_SO_ATTACH_FILTER = 26
_SO_TIMESTAMPNS = 35  # also SCM_TIMESTAMPNS
_ARPHRD_LINKTYPES = {1: LINKTYPE_ETHERNET, 772: LINKTYPE_ETHERNET, 65534: LINKTYPE_RAW}  # ether, loopback, none (tun)
_SLL2 = struct.Struct("!HHIHBB8s")


def compile_bpf(expr: str, linktype: int) -> list[tuple[int, int, int, int]]:
    """Compile a tcpdump filter expression to classic BPF for ``linktype`` (``tcpdump -ddd``).

    tcpdump compiles against a header-only capture file of that link type, so no interface (and no
    privilege) is needed. Without tcpdump, Scapy's ``compile_filter`` (libpcap through ctypes) is tried.
    """
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        try:
            from scapy.arch.common import compile_filter

            prog = compile_filter(expr, linktype=linktype)
            insns = ctypes.cast(prog.bf_insns, ctypes.POINTER(ctypes.c_ubyte * (8 * prog.bf_len))).contents
            raw = bytes(insns)
            return [struct.unpack_from("HBBI", raw, 8 * i) for i in range(prog.bf_len)]  # type: ignore[misc]
        except Exception as exc:  # Scapy raises Scapy_Exception for both a bad filter and a missing libpcap
            raise InvalidOption("-f", expr, f"cannot compile the BPF filter (install tcpdump): {exc}") from None
    with tempfile.NamedTemporaryFile(suffix=".pcap") as tmp:
        tmp.write(_pcap_header(linktype, _MAGIC_US))
        tmp.flush()
        # after "--", an expression that starts with "-" is an expression, never tcpdump's options
        proc = subprocess.run([tcpdump, "-ddd", "-r", tmp.name, "--", expr], capture_output=True, text=True)
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["syntax error"])[-1].removeprefix("tcpdump: ")
        raise InvalidOption("-f", expr, f"not a valid BPF filter expression ({reason})")
    lines = proc.stdout.split("\n")
    count = int(lines[0])
    return [tuple(int(x) for x in line.split()) for line in lines[1:count + 1]]  # type: ignore[misc]


def bpf_match(program: list[tuple[int, int, int, int]], data: bytes, wirelen: int | None = None) -> bool:
    """Run a classic BPF program over one frame, as the kernel does (``tcpdump -r FILE EXPR`` semantics):
    True when it returns a non-zero length. A load beyond the captured bytes rejects the frame."""
    a = x = 0
    mem = [0] * 16
    n = len(data)
    pc = 0
    count = len(program)
    while pc < count:
        code, jt, jf, k = program[pc]
        pc += 1
        cls = code & 0x07
        if cls in (0x00, 0x01):  # LD, LDX
            mode, size = code & 0xE0, code & 0x18
            if mode == 0x00:  # IMM
                val = k
            elif mode == 0x80:  # LEN (LD and LDX)
                val = n if wirelen is None else wirelen
            elif mode == 0x60:  # MEM
                val = mem[k & 15]
            elif mode == 0xA0 and cls == 0x01:  # LDX MSH: 4 * (P[k] & 0xf)
                if k >= n:
                    return False
                val = (data[k] & 0x0F) << 2
            else:  # ABS (0x20) or IND (0x40)
                off = k + (x if mode == 0x40 else 0)
                width = 4 if size == 0x00 else 2 if size == 0x08 else 1
                if off < 0 or off + width > n:
                    return False
                val = int.from_bytes(data[off:off + width], "big")
            if cls == 0x00:
                a = val
            else:
                x = val
        elif cls == 0x02:  # ST
            mem[k & 15] = a
        elif cls == 0x03:  # STX
            mem[k & 15] = x
        elif cls == 0x04:  # ALU
            op = code & 0xF0
            src = x if code & 0x08 else k
            if op == 0x00:
                a = (a + src) & 0xFFFFFFFF
            elif op == 0x10:
                a = (a - src) & 0xFFFFFFFF
            elif op == 0x20:
                a = (a * src) & 0xFFFFFFFF
            elif op == 0x30:
                if src == 0:
                    return False
                a //= src
            elif op == 0x40:
                a |= src
            elif op == 0x50:
                a &= src
            elif op == 0x60:
                a = (a << src) & 0xFFFFFFFF if src < 32 else 0
            elif op == 0x70:
                a = a >> src if src < 32 else 0
            elif op == 0x80:
                a = (-a) & 0xFFFFFFFF
            elif op == 0x90:
                if src == 0:
                    return False
                a %= src
            elif op == 0xA0:
                a ^= src
        elif cls == 0x05:  # JMP
            op = code & 0xF0
            src = x if code & 0x08 else k
            if op == 0x00:
                pc += k
                continue
            if op == 0x10:
                taken = a == src
            elif op == 0x20:
                taken = a > src
            elif op == 0x30:
                taken = a >= src
            else:  # 0x40 JSET
                taken = bool(a & src)
            pc += jt if taken else jf
        elif cls == 0x06:  # RET
            return bool(a if code & 0x18 == 0x10 else k)
        else:  # MISC: TAX / TXA
            if code & 0xF8 == 0x00:
                x = a
            else:
                a = x
    return False


def _attach_filter(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    raw = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *insn) for insn in program))
    fprog = struct.pack("HL", len(program), ctypes.addressof(raw))
    sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)


def _hardware_type(iface: str) -> int:
    """The interface's ARPHRD type (SIOCGIFHWADDR in this thread's namespace; -1 if unknown)."""
    import fcntl

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            res = fcntl.ioctl(probe.fileno(), 0x8927, struct.pack("16s16s", iface.encode()[:15], b""))
    except OSError:
        return -1
    return struct.unpack_from("H", res, 16)[0]


class LiveCapture:
    """An ``AF_PACKET`` capture: one interface (``SOCK_RAW``, its own link type) or all of them
    (``SOCK_DGRAM``, written as Linux SLL2 like ``tcpdump -i any``), filtered in the kernel."""

    def __init__(self, iface: str | None = None, bpf: str | None = None, *, rcvbuf: int = 32 << 20) -> None:
        self.iface = iface
        kind = socket.SOCK_DGRAM
        self.linktype = LINKTYPE_LINUX_SLL2
        if iface is not None:
            try:
                socket.if_nametoindex(iface)
            except OSError:
                names = ", ".join(n for _, n in socket.if_nameindex())
                raise InvalidOption("-i", iface, f"no such interface here (interfaces: {names})") from None
            hatype = _hardware_type(iface)
            if hatype in _ARPHRD_LINKTYPES:
                kind, self.linktype = socket.SOCK_RAW, _ARPHRD_LINKTYPES[hatype]
        # the filter sees what the socket reads: with SOCK_DGRAM that starts at the network header
        filter_linktype = LINKTYPE_RAW if kind == socket.SOCK_DGRAM else self.linktype
        program = compile_bpf(bpf, filter_linktype) if bpf else None
        # One interface: protocol 0 queues nothing until bind(), after the filter is attached. All
        # interfaces: Python cannot bind to ifindex 0, so the socket listens from creation and the few
        # frames queued before the filter was attached are drained (as libpcap does).
        try:
            sock = socket.socket(socket.AF_PACKET, kind, 0 if iface else socket.htons(ETH_P_ALL))
        except PermissionError:
            raise PrivilegeError("recon sniff (live capture)") from None
        except OSError as exc:
            raise ReconEnvironmentError(f"cannot open a packet socket: {exc.strerror}", hint="live capture needs Linux AF_PACKET") from None
        try:
            if program:
                _attach_filter(sock, program)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            except OSError:
                pass
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)  # the kernel's receive time, as tcpdump shows
            if iface:
                sock.bind((iface, ETH_P_ALL))
            elif program:
                sock.setblocking(False)
                try:
                    while True:
                        sock.recv(1)
                except BlockingIOError:
                    pass
                sock.setblocking(True)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self._ifindex: dict[str, int] = {}

    def frames(self, timeout: float | None = None) -> Iterator[Frame]:
        """Frames as they arrive, until ``timeout`` seconds have passed (None: forever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        sock, dgram = self.sock, self.linktype == LINKTYPE_LINUX_SLL2
        while True:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                sock.settimeout(left)
            try:
                data, anc, _, addr = sock.recvmsg(_SNAPLEN, 64)
            except TimeoutError:
                return
            except OSError as exc:  # ENETDOWN, ENODEV, ENXIO: the interface went down or was removed
                where = f"on {self.iface}" if self.iface else "on all interfaces"
                raise ReconEnvironmentError(f"capture {where} ended: the interface went down or disappeared ({exc.strerror})",
                                            hint="start recon sniff again when the interface is back") from None
            now = 0
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(value) >= 16:
                    sec, nsec = struct.unpack_from("qq", value)
                    now = sec * 1_000_000_000 + nsec
            if not now:
                now = time.time_ns()
            ifname, proto, pkttype, hatype, haddr = addr
            wirelen = len(data)
            if dgram:
                idx = self._ifindex.get(ifname)
                if idx is None:
                    try:
                        idx = self._ifindex[ifname] = socket.if_nametoindex(ifname)
                    except OSError:
                        idx = 0
                data = _SLL2.pack(proto, 0, idx, hatype, pkttype, min(len(haddr), 8), haddr[:8]) + data
                wirelen += 20
            yield Frame(now, self.linktype, data, wirelen, ifname)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "LiveCapture":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- sniff: capture or replay, decode, filter, record -------------------------------------------

MAX_TIMEOUT = 31 * 86_400  # the longest --timeout, in seconds (a finite wait the socket timeout can hold)

PROTO_NAMES = {"icmp": 1, "tcp": 6, "udp": 17, "icmp6": 58, "icmpv6": 58}


def parse_proto(value: str | int | None) -> int | None:
    """``icmp``/``tcp``/``udp``/``icmp6`` or a protocol number 0-255 → the number (None stays None)."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in PROTO_NAMES:
        return PROTO_NAMES[text]
    if text.isdigit() and 0 <= int(text) <= 255:
        return int(text)
    raise InvalidOption("--proto", value, "use icmp, tcp, udp, icmp6 or a protocol number 0-255")


def _same_file(source: BinaryIO, write: str | os.PathLike[str]) -> bool:
    """True when ``write`` names the file ``source`` reads (same device and inode: through links and other names)."""
    try:
        there = os.stat(write)
    except OSError:
        return False
    here = os.fstat(source.fileno())
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _check(read: object, iface: str | None, bpf: str | None, count: int | None, timeout: float | None) -> None:
    """Reject bad sniff options (one line each, exit 2) before anything is opened."""
    if count is not None and count < 1:
        raise InvalidOption("-c", count, "give a count of 1 or more")
    if timeout is not None and not (math.isfinite(timeout) and 0 < timeout <= MAX_TIMEOUT):
        raise InvalidOption("--timeout", timeout, f"give seconds, more than 0 and at most {MAX_TIMEOUT} (31 days)")
    if read is not None and timeout is not None:
        raise InvalidOption("--timeout", timeout, "applies to live capture only (a --read file ends by itself)")
    if read is not None and iface is not None:
        raise InvalidOption("-i", iface, "applies to live capture only (a --read file has its own interfaces)")
    if bpf is not None and not bpf.strip():
        raise InvalidOption("-f", bpf, "give a tcpdump filter expression, e.g. 'icmp and host 198.18.0.10'")


def sniff(*, read: str | os.PathLike[str] | None = None, iface: str | None = None, bpf: str | None = None,
          proto: str | int | None = None, count: int | None = None, timeout: float | None = None,
          write: str | os.PathLike[str] | None = None, ip_only: bool = False) -> Generator[DecodedPacket, None, None]:
    """Decoded packets, live (``AF_PACKET``, BPF in the kernel) or replayed from ``read`` (pcap/pcapng; ``-``: stdin).

    ``proto`` keeps one IP protocol (folded into the kernel filter live); ``count`` stops after that many
    packets; ``timeout`` (seconds, live only) stops waiting; ``write`` records every kept frame to a pcap,
    one write per record, so the file stays valid when the run is interrupted or killed.
    ``ip_only`` drops non-IP frames (ARP, …) before counting and recording, as ``--json`` shows IP packets only.
    Options are checked, and the capture opened, when this is called (errors raise here, before the first
    packet); the packets come from the generator it returns, which closes everything when it ends.
    """
    number = parse_proto(proto)
    _check(read, iface, bpf, count, timeout)
    if read is not None:
        source = open_capture(read)
        if write is not None and _same_file(source, write):
            source.close()
            raise InvalidOption("-w", os.fspath(write), "is the capture being read (--read); write to another file")
        # a -f filter is compiled per link type at the first frame of that type
        return _packets(read_frames(read, source), bpf, number, count, write, None, ip_only, source.close)
    kernel = bpf
    if number is not None:
        clause = f"(ip proto {number} or ip6 proto {number})"
        kernel = f"({bpf}) and {clause}" if bpf else clause
    live = LiveCapture(iface, kernel)
    try:
        writer = PcapWriter(write, live.linktype) if write is not None else None
    except BaseException:
        live.close()
        raise
    return _packets(live.frames(timeout), None, number, count, write, writer, ip_only, live.close)  # bpf: in the kernel


def _packets(frames: Iterator[Frame], bpf: str | None, number: int | None, count: int | None,
             write: str | os.PathLike[str] | None, writer: PcapWriter | None, ip_only: bool,
             close: Callable[[], None]) -> Generator[DecodedPacket, None, None]:
    """Filter, decode, record and count ``frames``; ``close`` releases the capture when this ends."""
    from recon.decode import decode

    programs: dict[int, list[tuple[int, int, int, int]]] = {}
    shown = 0
    try:
        for index, fr in enumerate(frames, 1):
            if bpf is not None:
                program = programs.get(fr.linktype)
                if program is None:
                    program = programs[fr.linktype] = compile_bpf(bpf, fr.linktype)
                if not bpf_match(program, fr.data, fr.wirelen):
                    continue
            pkt = decode(fr[2], fr[1], index, fr[0], fr[3], fr[4])  # positional: this loop is the hot path
            if ip_only and pkt.ip is None:
                continue
            if number is not None:
                ip = pkt.ip
                if ip is None:
                    continue
                if isinstance(ip, IPHeader):
                    if ip.proto != number:
                        continue
                elif number not in (ip.upper_proto, ip.next_header):
                    continue
            if write is not None:
                if writer is None:
                    writer = PcapWriter(write, fr.linktype)
                if fr.linktype != writer.linktype:
                    raise CaptureError(f"frame {index} has link type {fr.linktype}, but {writer.path} was started "
                                       f"with link type {writer.linktype}", hint="a pcap holds one link type")
                writer.write(fr.data, fr.time_ns)
            yield pkt
            shown += 1
            if count is not None and shown >= count:
                return
    finally:
        if writer is not None:
            writer.close()
        close()
