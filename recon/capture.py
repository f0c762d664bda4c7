"""Live capture and ``sniff`` (ARCHITECTURE.md): capture or replay, filter, decode, record.

``LiveCapture`` reads an ``AF_PACKET`` socket opened through the transport
(``recon.transport``), with a classic BPF program (``recon.bpf``) attached in the
kernel before the socket is bound, so no unfiltered packet is ever queued.
``sniff`` replays a capture (``recon.pcap``) or captures live, and yields decoded
packets. pcap I/O lives in ``recon.pcap``, the BPF interpreter in ``recon.bpf``.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING

from recon.bpf import Program, attach_filter, bpf_match, compile_bpf
from recon.errors import CaptureError, InvalidOption, ReconEnvironmentError, check_range
from recon.models import DecodedPacket, IPHeader
from recon.pcap import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_RAW,
    SNAPLEN,
    Frame,
    PcapWriter,
    open_capture,
    read_frames,
    same_file,
)
from recon.protocols import NUMBERS
from recon.transport import ETH_P_ALL

if TYPE_CHECKING:
    from recon.transport import Transport

__all__ = ["MAX_TIMEOUT", "LiveCapture", "parse_proto", "sniff"]  # pcap I/O lives in recon.pcap, BPF in recon.bpf


_SO_TIMESTAMPNS = 35  # also SCM_TIMESTAMPNS
_ARPHRD_LINKTYPES = {1: LINKTYPE_ETHERNET, 772: LINKTYPE_ETHERNET, 65534: LINKTYPE_RAW}  # ether, loopback, none (tun)
_SLL2 = struct.Struct("!HHIHBB8s")


class LiveCapture:
    """An ``AF_PACKET`` capture: one interface (``SOCK_RAW``, its own link type) or all of them
    (``SOCK_DGRAM``, written as Linux SLL2 like ``tcpdump -i any``), filtered in the kernel."""

    def __init__(self, iface: str | None = None, bpf: str | None = None, *, rcvbuf: int = 32 << 20,
                 transport: Transport | None = None) -> None:
        from recon.transport import default_transport

        transport = transport or default_transport()
        self.iface = iface
        kind = socket.SOCK_DGRAM
        self.linktype = LINKTYPE_LINUX_SLL2
        if iface is not None:
            try:
                socket.if_nametoindex(iface)
            except OSError:
                names = ", ".join(n for _, n in socket.if_nameindex())
                raise InvalidOption("-i", iface, f"no such interface here (interfaces: {names})") from None
            try:
                hatype = transport.hardware(iface)[0]
            except OSError:
                hatype = -1
            if hatype in _ARPHRD_LINKTYPES:
                kind, self.linktype = socket.SOCK_RAW, _ARPHRD_LINKTYPES[hatype]
        # the filter sees what the socket reads: with SOCK_DGRAM that starts at the network header
        filter_linktype = LINKTYPE_RAW if kind == socket.SOCK_DGRAM else self.linktype
        program = compile_bpf(bpf, filter_linktype) if bpf else None
        # One interface: protocol 0 queues nothing until bind(), after the filter is attached. All
        # interfaces: Python cannot bind to ifindex 0, so the socket listens from creation and the few
        # frames queued before the filter was attached are drained (as libpcap does).
        sock = transport.capture(iface, cooked=kind == socket.SOCK_DGRAM, what="recon sniff (live capture)")
        try:
            if program:
                attach_filter(sock, program)
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
                data, anc, _, addr = sock.recvmsg(SNAPLEN, 64)
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

    def __enter__(self) -> LiveCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- sniff: capture or replay, decode, filter, record -------------------------------------------

MAX_TIMEOUT = 31 * 86_400  # the longest --timeout, in seconds (a finite wait the socket timeout can hold)


def parse_proto(value: str | int | None) -> int | None:
    """``icmp``/``tcp``/``udp``/``icmp6`` or a protocol number 0-255 → the number (None stays None)."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in NUMBERS:
        return NUMBERS[text]
    if text.isdigit() and 0 <= int(text) <= 255:
        return int(text)
    raise InvalidOption("--proto", value, "use icmp, tcp, udp, icmp6 or a protocol number 0-255")


def _check(read: object, iface: str | None, bpf: str | None, count: int | None, timeout: float | None) -> None:
    """Reject bad sniff options (one line each, exit 2) before anything is opened."""
    if count is not None and count < 1:
        raise InvalidOption("-c", count, "give a count of 1 or more")
    check_range("--timeout", timeout, 0, MAX_TIMEOUT, f"give seconds, more than 0 and at most {MAX_TIMEOUT} (31 days)",
                above_low=True)
    if read is not None and timeout is not None:
        raise InvalidOption("--timeout", timeout, "applies to live capture only (a --read file ends by itself)")
    if read is not None and iface is not None:
        raise InvalidOption("-i", iface, "applies to live capture only (a --read file has its own interfaces)")
    if bpf is not None and not bpf.strip():
        raise InvalidOption("-f", bpf, "give a tcpdump filter expression, e.g. 'icmp and host 198.18.0.10'")


def sniff(*, read: str | os.PathLike[str] | None = None, iface: str | None = None, bpf: str | None = None,
          proto: str | int | None = None, count: int | None = None, timeout: float | None = None,
          write: str | os.PathLike[str] | None = None, ip_only: bool = False,
          transport: Transport | None = None) -> Generator[DecodedPacket, None, None]:
    """Decoded packets, live (``AF_PACKET``, BPF in the kernel) or replayed from ``read`` (pcap/pcapng; ``-``: stdin).

    ``proto`` keeps one IP protocol (folded into the kernel filter live); ``count`` stops after that many
    packets; ``timeout`` (seconds, live only) stops waiting; ``write`` records every kept frame to a pcap,
    one write per record, so the file stays valid when the run is interrupted or killed.
    ``transport`` opens the live capture socket (default: the kernel's, ``recon.transport``).
    ``ip_only`` drops non-IP frames (ARP, …) before counting and recording, as ``--json`` shows IP packets only.
    Options are checked, and the capture opened, when this is called (errors raise here, before the first
    packet); the packets come from the generator it returns, which closes everything when it ends.
    """
    number = parse_proto(proto)
    _check(read, iface, bpf, count, timeout)
    if read is not None:
        source = open_capture(read)
        if write is not None and same_file(source, write):
            source.close()
            raise InvalidOption("-w", os.fspath(write), "is the capture being read (--read); write to another file")
        # a -f filter is compiled per link type at the first frame of that type
        return _packets(read_frames(read, source), bpf, number, count, write, None, ip_only, source.close)
    kernel = bpf
    if number is not None:
        clause = f"(ip proto {number} or ip6 proto {number})"
        kernel = f"({bpf}) and {clause}" if bpf else clause
    live = LiveCapture(iface, kernel, transport=transport)
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

    programs: dict[int, Program] = {}
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
