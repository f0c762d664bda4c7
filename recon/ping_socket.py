"""ping's echo socket (ARCHITECTURE.md): one ICMP socket from the transport, configured per family.

Every IPv4/IPv6 difference is a value in one ``EchoFamily`` table (``V4``, ``V6``),
not an ``if v6`` at each use. Raw and datagram sockets differ in three places, each
said once here: who picks the echo id (we do, or the kernel as the socket's port),
whether reads start at the IP header (IPv4 raw only), and where ICMP errors arrive
(as data on raw sockets, on the error queue for datagram sockets).
"""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from recon.errors import InvalidOption
from recon.packets import inet_checksum, ipv4_header
from recon.transport import PacketSocket, Transport, bind_device

__all__ = ["V4", "V6", "EchoFamily", "EchoSocket", "ErrqueueRecord", "Received", "family_of"]

_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)
_SOL_RAW = 255
_ICMP_FILTER = 1
_ICMP6_FILTER = 1
_PMTUDISC = {"dont": 0, "want": 1, "do": 2}
SO_EE_ORIGIN_LOCAL = 1


def _icmp6_checksum(src: bytes, dst: bytes, msg: bytes) -> int:
    return inet_checksum(src + dst + struct.pack("!I3xB", len(msg), 58) + msg)


def _ipv6_header(src: bytes, dst: bytes, payload_len: int, hops: int) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, payload_len, 58, hops, src, dst)


def _v4_filter() -> tuple[int, int, bytes]:
    allowed = (0, 3, 4, 5, 11, 12)  # echo reply and the errors
    return _SOL_RAW, _ICMP_FILTER, struct.pack("I", ~sum(1 << t for t in allowed) & 0xFFFFFFFF)


def _v6_filter() -> tuple[int, int, bytes]:
    bits = bytearray(b"\xff" * 32)  # ICMP6_FILTER: a set bit blocks a type
    for t in (1, 2, 3, 4, 129):
        bits[t >> 3] &= ~(1 << (t & 7)) & 0xFF
    return socket.IPPROTO_ICMPV6, _ICMP6_FILTER, bytes(bits)


@dataclass(frozen=True, slots=True)
class EchoFamily:
    """Everything that differs between ICMP echo over IPv4 and over ICMPv6."""

    af: int
    version: int
    level: int  # IPPROTO_IP / IPPROTO_IPV6
    recverr: int  # IP_RECVERR / IPV6_RECVERR
    hops: int  # IP_TTL / IPV6_UNICAST_HOPS
    multicast_hops: int  # IP_MULTICAST_TTL / IPV6_MULTICAST_HOPS
    mtu_discover: int  # IP_MTU_DISCOVER / IPV6_MTU_DISCOVER
    mtu: int  # IP_MTU / IPV6_MTU
    recv_hops_option: int | None  # ask for the TTL/hop limit as ancillary data (IPv4: datagram sockets only)
    hops_cmsg: int  # the cmsg type that carries it
    echo_request: int
    echo_reply: int
    ee_origin_icmp: int  # sock_extended_err origin of a remote ICMP error
    ip_header_len: int  # what ping adds to the payload size in its header: 28 (IP+ICMP) or 8
    any_address: str
    raw_reads_ip_header: bool
    raw_filter: Callable[[], tuple[int, int, bytes]]
    checksum: Callable[[bytes, bytes, bytes], int]  # (src, dst, ICMP message) → checksum
    pcap_header: Callable[[bytes, bytes, int, int, bool], bytes]  # (src, dst, length, hops, df) → IP header

    def pack(self, address: str) -> bytes:
        return socket.inet_pton(self.af, address.split("%")[0])


V4 = EchoFamily(
    af=socket.AF_INET, version=4, level=socket.IPPROTO_IP, recverr=getattr(socket, "IP_RECVERR", 11),
    hops=socket.IP_TTL, multicast_hops=socket.IP_MULTICAST_TTL, mtu_discover=getattr(socket, "IP_MTU_DISCOVER", 10),
    mtu=getattr(socket, "IP_MTU", 14), recv_hops_option=getattr(socket, "IP_RECVTTL", 12), hops_cmsg=socket.IP_TTL,
    echo_request=8, echo_reply=0, ee_origin_icmp=2, ip_header_len=28, any_address="0.0.0.0",
    raw_reads_ip_header=True, raw_filter=_v4_filter,
    checksum=lambda _src, _dst, msg: inet_checksum(msg),
    pcap_header=lambda src, dst, n, hops, df: ipv4_header(src, dst, n, hops, df),
)
V6 = EchoFamily(
    af=socket.AF_INET6, version=6, level=socket.IPPROTO_IPV6, recverr=getattr(socket, "IPV6_RECVERR", 25),
    hops=socket.IPV6_UNICAST_HOPS, multicast_hops=socket.IPV6_MULTICAST_HOPS,
    mtu_discover=getattr(socket, "IPV6_MTU_DISCOVER", 23), mtu=getattr(socket, "IPV6_MTU", 24),
    recv_hops_option=getattr(socket, "IPV6_RECVHOPLIMIT", 51), hops_cmsg=getattr(socket, "IPV6_HOPLIMIT", 52),
    echo_request=128, echo_reply=129, ee_origin_icmp=3, ip_header_len=8, any_address="::",
    raw_reads_ip_header=False, raw_filter=_v6_filter,
    checksum=_icmp6_checksum,
    pcap_header=lambda src, dst, n, hops, _df: _ipv6_header(src, dst, n, hops),
)


def family_of(af: int) -> EchoFamily:
    return V6 if af == socket.AF_INET6 else V4


@dataclass(frozen=True, slots=True)
class Received:
    """One datagram read from the socket: the bytes, where from, the TTL/hop limit, kernel receive time."""

    data: bytes
    source: str
    hops: int | None
    wall_ns: int | None  # SO_TIMESTAMPNS, when the kernel gave one


@dataclass(frozen=True, slots=True)
class ErrqueueRecord:
    """One ``sock_extended_err`` from the error queue: the quoted datagram (our probe), and what happened."""

    data: bytes
    origin: int
    icmp_type: int
    icmp_code: int
    info: int
    offender: str | None


class EchoSocket:
    """An ICMP echo socket for one family: opened by ``transport``, configured once, closed by ``close``."""

    def __init__(self, transport: Transport, fam: EchoFamily, *, ttl: int | None, pmtu: str | None,
                 interface: str | None, source: str | None, multicast: bool) -> None:
        self.fam = fam
        sock, kind = transport.icmp(fam.af, what="recon ping", allow_dgram=True)
        self.sock: PacketSocket = sock
        self.raw = kind == "raw"
        self.kind = kind
        try:
            self._configure(ttl, pmtu, interface, source, multicast)
            self.ident = int(self.sock.getsockname()[1]) if not self.raw else 0
        except BaseException:
            self.sock.close()
            raise

    def _configure(self, ttl: int | None, pmtu: str | None, interface: str | None, source: str | None,
                   multicast: bool) -> None:
        s, fam = self.sock, self.fam
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        s.setsockopt(fam.level, fam.recverr, 1)
        if ttl is not None:
            s.setsockopt(fam.level, fam.multicast_hops if multicast else fam.hops, ttl)
        if pmtu is not None:
            s.setsockopt(fam.level, fam.mtu_discover, _PMTUDISC[pmtu])
        if fam.recv_hops_option is not None and (fam.version == 6 or not self.raw):
            s.setsockopt(fam.level, fam.recv_hops_option, 1)
        if self.raw:
            s.setsockopt(*fam.raw_filter())
        if interface:
            bind_device(s, interface, "-I/--interface")
        if source or not self.raw:
            try:
                s.bind((source or fam.any_address, 0))
            except OSError as exc:
                raise InvalidOption("--source", source, f"not an address of this machine ({exc.strerror})") from None

    def echo(self, ident: int, seq: int, payload: bytes, src: bytes, dst: bytes) -> bytes:
        """The echo request as sent (ICMP header and payload), with its checksum."""
        head = struct.pack("!BBHHH", self.fam.echo_request, 0, 0, ident, seq)
        csum = self.fam.checksum(src, dst, head + payload)
        return head[:2] + struct.pack("!H", csum) + head[4:] + payload

    def send(self, packet: bytes, sockaddr: tuple[str, int] | tuple[str, int, int, int]) -> None:
        self.sock.sendto(packet, sockaddr)

    def path_mtu(self) -> int | None:
        """The MTU the kernel knows for this socket's path (after EMSGSIZE)."""
        for rec in self.errqueue():
            if rec.origin == SO_EE_ORIGIN_LOCAL:
                return rec.info
        try:
            return int(self.sock.getsockopt(self.fam.level, self.fam.mtu)) or None
        except OSError:
            return None

    def receive(self) -> Iterator[Received]:
        """Every datagram waiting now (non-blocking). A pending socket error ends the batch."""
        while True:
            try:
                data, ancdata, _flags, addr = self.sock.recvmsg(65535 + 60, 512, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno == errno.EBADF:
                    raise
                return  # a bare socket error from IP_RECVERR: the caller reads the error queue
            wall_ns = hops = None
            for level, ctype, cdata in ancdata:
                if level == socket.SOL_SOCKET and ctype == _SO_TIMESTAMPNS and len(cdata) >= 16:
                    sec, nsec = struct.unpack("=qq", cdata[:16])
                    wall_ns = sec * 1_000_000_000 + nsec
                elif level == self.fam.level and ctype == self.fam.hops_cmsg and len(cdata) >= 4:
                    hops = struct.unpack("=i", cdata[:4])[0]
            source = _scoped(addr)
            yield Received(bytes(data), source, hops, wall_ns)

    def errqueue(self) -> Iterator[ErrqueueRecord]:
        """Drain the error queue (IP_RECVERR); SOL_SOCKET messages (timestamps) are not error records."""
        while True:
            try:
                data, ancdata, _flags, _addr = self.sock.recvmsg(65535, 1024, _MSG_ERRQUEUE | socket.MSG_DONTWAIT)
            except OSError:  # EAGAIN: the queue is empty
                return
            for level, _ctype, cdata in ancdata:
                if level == socket.SOL_SOCKET or len(cdata) < 16:
                    continue
                _err, origin, etype, ecode, info = struct.unpack("=IBBBxI", cdata[:12])
                yield ErrqueueRecord(bytes(data), origin, etype, ecode, info, _offender(cdata[16:]))

    def clear_error(self) -> None:
        """Read and drop a bare pending socket error, so poll stops reporting POLLERR."""
        try:
            self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        except OSError:
            pass

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()


def _scoped(addr: object) -> str:
    """The source of a datagram as ping prints it: link-local IPv6 sources carry their %scope."""
    if not isinstance(addr, tuple) or not addr:
        return ""
    host = str(addr[0])
    if len(addr) >= 4 and addr[3] and "%" not in host:
        try:
            host = f"{host}%{socket.if_indextoname(addr[3])}"
        except OSError:
            host = f"{host}%{addr[3]}"
    return host


def _offender(sa: bytes) -> str | None:
    """The address in a sockaddr_in / sockaddr_in6 (the reporter of an ICMP error)."""
    if len(sa) >= 8 and struct.unpack("=H", sa[:2])[0] == socket.AF_INET:
        return socket.inet_ntoa(sa[4:8])
    if len(sa) >= 24 and struct.unpack("=H", sa[:2])[0] == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, sa[8:24])
    return None
