"""Single-host ICMP echo, ping(8)-grade: send, receive, match, and yield typed events.

``Pinger`` opens a raw ICMP socket when it may, else an ICMP datagram socket
(``SOCK_DGRAM, IPPROTO_ICMP``) when ``net.ipv4.ping_group_range`` allows it, else
raises PrivilegeError. Iterating it sends echo requests on schedule and yields
``PingReply`` / ``PingError`` events as they arrive, a running ``PingStats``
(``final=False``) whenever ``request_status()`` was called (SIGQUIT in the CLI),
and a final ``PingStats`` last. It never prints.

Matching: raw sockets see every ICMP packet on the host, so a reply is ours only
when its id (random per process), its seq, and an 8-byte per-process nonce at the
start of the payload all match. Datagram sockets are demultiplexed by the kernel
(it rewrites the id to the socket's port); we still check the nonce.

Timing: RTT is measured on the monotonic clock from just before ``sendto`` to the
kernel's receive timestamp (``SO_TIMESTAMPNS``), translated onto the monotonic
clock by subtracting the time the packet waited in the socket. Statistics follow
iputils ``ping_common.c`` exactly (integer microseconds; mdev = sqrt(mean(rtt²) −
mean(rtt)²); duplicates count toward min/avg/max/mdev; exit wait after the last
probe = max(2·max RTT, interval) when something answered, else ``timeout``).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import random
import select
import socket
import struct
import time
from collections.abc import Iterator

from recon.errors import InvalidOption, InvalidTarget, PrivilegeError
from recon.models import PingError, PingReply, PingStart, PingStats
from recon.packets import inet_checksum, ipv4_header

__all__ = ["Pinger", "ping", "rtt_summary", "MIN_USER_INTERVAL"]

MIN_USER_INTERVAL = 0.2  # seconds; below this needs root, as in iputils
DEFAULT_LINGER = 10.0  # seconds to wait after the last probe when nothing answered (iputils MAXWAIT)
MAX_SIZE = 65507

# Linux constants Python's socket module may lack.
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
_IPV6_RECVERR = getattr(socket, "IPV6_RECVERR", 25)
_IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)
_IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
_IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)
_IP_MTU_DISCOVER = getattr(socket, "IP_MTU_DISCOVER", 10)
_IPV6_MTU_DISCOVER = getattr(socket, "IPV6_MTU_DISCOVER", 23)
_PMTUDISC_DO = 2
_SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
_MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)
_SOL_RAW = 255
_ICMP_FILTER = 1
_ICMP6_FILTER = 1
_SO_EE_ORIGIN_LOCAL = 1
_SO_EE_ORIGIN_ICMP = 2
_SO_EE_ORIGIN_ICMP6 = 3

_UNREACH4 = {
    0: "Destination Net Unreachable",
    1: "Destination Host Unreachable",
    2: "Destination Protocol Unreachable",
    3: "Destination Port Unreachable",
    5: "Source Route Failed",
    6: "Destination Net Unknown",
    7: "Destination Host Unknown",
    8: "Source Host Isolated",
    9: "Destination Net Prohibited",
    10: "Destination Host Prohibited",
    11: "Destination Net Unreachable for Type of Service",
    12: "Destination Host Unreachable for Type of Service",
    13: "Packet filtered",
    14: "Precedence Violation",
    15: "Precedence Cutoff",
}
_UNREACH6 = {
    0: "No route",
    1: "Administratively prohibited",
    2: "Beyond scope of source address",
    3: "Address unreachable",
    4: "Port unreachable",
}


def _icmp4_error(icmp_type: int, code: int, info: int) -> tuple[str, str, int | None]:
    """(kind, iputils text, mtu) for an ICMPv4 error."""
    if icmp_type == 3:
        if code == 4:
            return "frag-needed", f"Frag needed and DF set (mtu = {info})", info
        kind = {0: "net-unreachable", 1: "host-unreachable", 3: "port-unreachable"}.get(code, "unreachable")
        return kind, _UNREACH4.get(code, f"Dest Unreachable, Bad Code: {code}"), None
    if icmp_type == 11:
        return "time-exceeded", "Time to live exceeded" if code == 0 else "Frag reassembly time exceeded", None
    if icmp_type == 4:
        return "source-quench", "Source Quench", None
    if icmp_type == 5:
        return "redirect", "Redirect", None
    if icmp_type == 12:
        return "parameter-problem", f"Parameter problem: pointer = {info}", None
    return "icmp", f"Bad ICMP type: {icmp_type}", None


def _icmp6_error(icmp_type: int, code: int, info: int) -> tuple[str, str, int | None]:
    """(kind, iputils text, mtu) for an ICMPv6 error (ping6_common.c wording)."""
    if icmp_type == 1:
        kind = {0: "net-unreachable", 3: "host-unreachable", 4: "port-unreachable"}.get(code, "unreachable")
        return kind, "Destination unreachable: " + _UNREACH6.get(code, f"Unknown code {code}"), None
    if icmp_type == 2:
        return "frag-needed", f"Packet too big: mtu={info}", info
    if icmp_type == 3:
        return "time-exceeded", "Time exceeded: " + ("Hop limit" if code == 0 else "Defragmentation failure"), None
    if icmp_type == 4:
        return "parameter-problem", f"Parameter problem: code {code}", None
    return "icmp", f"Unknown icmp type: {icmp_type}", None


def rtt_summary(samples_us: list[int]) -> tuple[int, int, int, int]:
    """(min, avg, max, mdev) in integer µs, computed exactly as iputils ``finish()`` does."""
    total = len(samples_us)
    tsum = sum(samples_us)
    tsum2 = sum(t * t for t in samples_us)
    return _summary(min(samples_us), max(samples_us), tsum, tsum2, total)


def _summary(tmin: int, tmax: int, tsum: int, tsum2: int, total: int) -> tuple[int, int, int, int]:
    tmavg = tsum // total
    if tsum < 2**31 - 1:
        tmvar = (tsum2 - (tsum * tsum) // total) // total
    else:
        tmvar = tsum2 // total - tmavg * tmavg
    return tmin, tmavg, tmax, _llsqrt(tmvar)


def _llsqrt(a: int) -> int:
    """Integer Newton square root, as iputils' llsqrt (truncating)."""
    if a <= 0:
        return 0
    prev, x = None, a
    while prev is None or x < prev:
        prev, x = x, (x + a // x) // 2
    return prev


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _ipv6_header(src: str, dst: str, payload_len: int, hops: int) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, payload_len, 58, hops,
                       socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst))


def _icmp6_checksum(src: str, dst: str, icmp: bytes) -> int:
    pseudo = (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
              + struct.pack("!I3xB", len(icmp), 58))
    return inet_checksum(pseudo + icmp)


class Pinger:
    """One ping session. Construct (validates, resolves, opens the socket), then iterate."""

    def __init__(
        self,
        target: str,
        *,
        family: int | None = None,
        count: int | None = None,
        interval: float = 1.0,
        timeout: float | None = None,
        size: int = 56,
        ttl: int | None = None,
        df: bool = False,
        interface: str | None = None,
        source: str | None = None,
        pcap: str | None = None,
    ) -> None:
        from recon.privileges import is_root

        if count is not None and count < 1:
            raise InvalidOption("-c/--count", count, "give a whole number of packets, 1 or more")
        if not 0 < interval <= 3600:
            raise InvalidOption("-i/--interval", interval, "seconds between probes, above 0 and at most 3600")
        if interval < MIN_USER_INTERVAL and not is_root():
            raise InvalidOption("-i/--interval", interval,
                                f"intervals below {MIN_USER_INTERVAL:g} s need root, as in ping(8)")
        if timeout is not None and not 0 < timeout <= 3600:
            raise InvalidOption("-W/--timeout", timeout, "seconds to wait for a reply, above 0 and at most 3600")
        if not 0 <= size <= MAX_SIZE:
            raise InvalidOption("-s/--size", size, f"payload bytes from 0 to {MAX_SIZE}")
        if ttl is not None and not 1 <= ttl <= 255:
            raise InvalidOption("-t/--ttl", ttl, "a hop count from 1 to 255")
        if family not in (None, socket.AF_INET, socket.AF_INET6):
            raise InvalidOption("family", family, "AF_INET or AF_INET6")
        # -I takes an interface or an address, as in ping(8).
        if interface is not None and _is_address(interface):
            if source is not None:
                raise InvalidOption("-I/--interface", interface, "give an interface name when --source is set")
            source, interface = interface, None
        if interface is not None:
            try:
                socket.if_nametoindex(interface)
            except OSError:
                raise InvalidOption("-I/--interface", interface, "no such network interface here") from None
        if source is not None:
            if not _is_address(source):
                raise InvalidOption("--source", source, "an IPv4 or IPv6 address of this machine")
            src_family = socket.AF_INET6 if ":" in source else socket.AF_INET
            if family is not None and family != src_family:
                raise InvalidOption("--source", source, "the same address family as -4/-6")
            family = family or src_family

        self.count = count
        self.interval = interval
        self.linger = timeout if timeout is not None else DEFAULT_LINGER
        self.size = size
        self.ttl = ttl
        self.df = df
        self.interface = interface
        self.host = target
        self.numeric = _is_address(target)
        if self.numeric:
            addr = ipaddress.ip_address(target)
            want = socket.AF_INET6 if addr.version == 6 else socket.AF_INET
            if family is not None and family != want:
                raise InvalidOption("-4/-6", target, f"{target} is an IPv{addr.version} address")
            self.address = str(addr)
            self.family = want
        else:
            from recon.targets import resolve_host

            self.address = resolve_host(target, family or socket.AF_UNSPEC)
            self.family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        if source is not None and (":" in source) != (self.family == socket.AF_INET6):
            raise InvalidOption("--source", source, f"{self.address} needs a source of the same family")
        self.source = source
        self.v6 = self.family == socket.AF_INET6

        self._local = self._route_source()  # before any socket: no route is bad input, as in ping(8)
        self.sock, self.kind = self._open_socket()
        self._pcap = None
        try:  # the socket is closed by iterating; until then, a failure here must close it
            self._setup_socket()
            if pcap:
                from recon.capture import LINKTYPE_RAW, PcapWriter

                self._pcap = PcapWriter(pcap, LINKTYPE_RAW)
            self._wake_r, self._wake_w = os.pipe()
        except BaseException:
            self.sock.close()
            if self._pcap is not None:
                self._pcap.close()
            raise
        self.ident = random.randrange(1, 0x10000) if self.kind == "raw" else self.sock.getsockname()[1]
        self.nonce = os.urandom(8)
        self._payload = (self.nonce + bytes(i & 0xFF for i in range(8, size)))[:size]
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._stop = False
        self._status = False
        self._names: dict[str, str | None] = {}
        # counters, as in iputils
        self.transmitted = 0
        self.received = 0
        self.duplicates = 0
        self.errors = 0
        self.tmin = 0
        self.tmax = 0
        self.tsum = 0
        self.tsum2 = 0
        self.ewma8 = 0  # iputils 'rtt': 8 × the EWMA in µs
        self.pipe = 0
        self._start_ns = 0
        self._last_send_ns = 0
        self._sent: dict[int, int] = {}
        self._rcvd = bytearray(0x10000 // 8)
        self.start = PingStart(
            host=target, address=self.address, family=6 if self.v6 else 4, size=size,
            packet_bytes=size + (8 if self.v6 else 28), numeric=self.numeric, socket_kind=self.kind,
            source=self._local if (interface or source) else None, interface=interface,
        )

    # --- sockets -----------------------------------------------------------------

    def _open_socket(self) -> tuple[socket.socket, str]:
        from recon.privileges import raw_socket

        proto = socket.IPPROTO_ICMPV6 if self.v6 else socket.IPPROTO_ICMP
        try:
            return raw_socket(self.family, proto, "recon ping"), "raw"
        except PrivilegeError as denied:
            try:
                return socket.socket(self.family, socket.SOCK_DGRAM, proto), "dgram"
            except PermissionError:  # EACCES/EPERM: ping_group_range does not allow us either
                raise denied from None

    def _setup_socket(self) -> None:
        s = self.sock
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        level, recverr, hops, pmtu = ((socket.IPPROTO_IPV6, _IPV6_RECVERR, socket.IPV6_UNICAST_HOPS, _IPV6_MTU_DISCOVER)
                                      if self.v6 else (socket.IPPROTO_IP, _IP_RECVERR, socket.IP_TTL, _IP_MTU_DISCOVER))
        s.setsockopt(level, recverr, 1)
        if self.ttl is not None:
            s.setsockopt(level, hops, self.ttl)
        if self.df:
            s.setsockopt(level, pmtu, _PMTUDISC_DO)
        if self.v6:
            s.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVHOPLIMIT, 1)
        elif self.kind == "dgram":
            s.setsockopt(socket.IPPROTO_IP, _IP_RECVTTL, 1)
        if self.kind == "raw" and self.v6:
            # ICMP6_FILTER: a set bit blocks a type; pass echo reply and the errors only.
            bits = bytearray(b"\xff" * 32)
            for t in (1, 2, 3, 4, 129):
                bits[t >> 3] &= ~(1 << (t & 7)) & 0xFF
            s.setsockopt(socket.IPPROTO_ICMPV6, _ICMP6_FILTER, bytes(bits))
        elif self.kind == "raw":
            allowed = (0, 3, 4, 5, 11, 12)
            s.setsockopt(_SOL_RAW, _ICMP_FILTER, struct.pack("I", ~sum(1 << t for t in allowed) & 0xFFFFFFFF))
        if self.interface:
            try:
                s.setsockopt(socket.SOL_SOCKET, _SO_BINDTODEVICE, self.interface.encode())
            except PermissionError:
                raise PrivilegeError("binding to an interface (-I)") from None
        if self.source or self.kind == "dgram":
            try:
                s.bind((self.source or ("::" if self.v6 else "0.0.0.0"), 0))
            except OSError as exc:
                raise InvalidOption("--source", self.source, f"not an address of this machine ({exc.strerror})") from None

    def _route_source(self) -> str:
        """The source address the kernel will use; a target with no route is refused (a UDP connect sends nothing)."""
        with socket.socket(self.family, socket.SOCK_DGRAM) as probe:
            if self.interface:
                try:
                    probe.setsockopt(socket.SOL_SOCKET, _SO_BINDTODEVICE, self.interface.encode())
                except OSError:
                    pass
            try:
                if self.source:
                    probe.bind((self.source, 0))
                probe.connect((self.address, 9))
            except OSError as exc:
                if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
                    raise InvalidTarget(self.host, f"no route to {self.address} ({exc.strerror})",
                                        hint="check the address, the interface and 'ip route'") from None
                if exc.errno == errno.EADDRNOTAVAIL and self.source:
                    raise InvalidOption("--source", self.source, "not an address of this machine") from None
                return self.source or ("::" if self.v6 else "0.0.0.0")
            return self.source or probe.getsockname()[0]

    def close(self) -> None:
        self.sock.close()
        if self._pcap:
            self._pcap.close()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    # --- control (signal-safe) ---------------------------------------------------------

    def stop(self) -> None:
        """End the session: the iterator yields the final statistics next (Ctrl-C)."""
        self._stop = True
        self._wake()

    def request_status(self) -> None:
        """Ask for a running-statistics snapshot (SIGQUIT)."""
        self._status = True
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    # --- the loop ---------------------------------------------------------------------

    def __iter__(self) -> Iterator[PingReply | PingError | PingStats]:
        try:
            yield from self._run()
        finally:
            self.close()

    def _run(self) -> Iterator[PingReply | PingError | PingStats]:
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN | select.POLLERR)
        poller.register(self._wake_r, select.POLLIN)
        interval_ns = int(self.interval * 1e9)
        self._start_ns = self._last_send_ns = time.monotonic_ns()
        next_send = self._start_ns
        exit_at: int | None = None
        while True:
            if self._stop:
                break
            if self.count and self.received + self.errors >= self.count:
                break
            if self._status:
                self._status = False
                yield self.stats(final=False)
            now = time.monotonic_ns()
            sending = self.count is None or self.transmitted < self.count
            if sending and now >= next_send:
                yield from self._send()
                next_send = max(next_send + interval_ns, now)
                if self.count and self.transmitted >= self.count:
                    exit_at = self._last_send_ns + self._wait_ns()
                continue
            if exit_at is not None and now >= exit_at:
                break
            wake_at = next_send if sending else exit_at
            timeout_ms = max(0, (wake_at - now + 999_999) // 1_000_000) if wake_at is not None else None
            for fd, ev in poller.poll(timeout_ms):
                if fd == self._wake_r:
                    try:
                        os.read(self._wake_r, 512)
                    except OSError:
                        pass
                    continue
                if ev & select.POLLERR:
                    yield from self._read_errqueue()
                    self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)  # clear a bare sk_err: no busy poll
                if ev & select.POLLIN:
                    yield from self._read_replies()
        yield self.stats(final=True)

    def _wait_ns(self) -> int:
        """iputils __schedule_exit: after the last probe, wait this long for stragglers."""
        if self.received:
            return max(2 * self.tmax * 1000, int(self.interval * 1e9))
        return int(self.linger * 1e9)

    def _send(self) -> Iterator[PingError]:
        seq = (self.transmitted + 1) & 0xFFFF
        icmp_type = 128 if self.v6 else 8
        hdr = struct.pack("!BBHHH", icmp_type, 0, 0, self.ident, seq)
        if self.v6:
            csum = _icmp6_checksum(self._local, self.address, hdr + self._payload) if self._local else 0
        else:
            csum = inet_checksum(hdr + self._payload)
        packet = hdr[:2] + struct.pack("!H", csum) + hdr[4:] + self._payload
        self._rcvd[seq >> 3] &= ~(1 << (seq & 7)) & 0xFF
        dest = (self.address, 0, 0, 0) if self.v6 else (self.address, 0)
        send_ns = time.monotonic_ns()
        wall_ns = time.time_ns()
        error: PingError | None = None
        try:
            self.sock.sendto(packet, dest)
        except OSError as exc:
            error = self._local_error(exc, seq, wall_ns)
        self._sent[seq] = send_ns
        self.transmitted += 1
        self._last_send_ns = send_ns
        if error is not None:
            self.errors += 1
            yield error
        elif self._pcap:
            hops = self.ttl or 64
            head = (_ipv6_header(self._local, self.address, len(packet), hops) if self.v6
                    else ipv4_header(socket.inet_aton(self._local), socket.inet_aton(self.address), len(packet), hops, self.df))
            self._pcap.write(head + packet, wall_ns)

    def _local_error(self, exc: OSError, seq: int, wall_ns: int) -> PingError:
        mtu = None
        if exc.errno == errno.EMSGSIZE:
            for _data, origin, _type, _code, info, _offender in self._extended_errors():
                if origin == _SO_EE_ORIGIN_LOCAL:
                    mtu = info
            if mtu is None:
                try:
                    mtu = self.sock.getsockopt(socket.IPPROTO_IPV6 if self.v6 else socket.IPPROTO_IP,
                                               getattr(socket, "IPV6_MTU", 24) if self.v6 else getattr(socket, "IP_MTU", 14))
                except OSError:
                    mtu = None
            sep = ": " if self.v6 else "="
            message = "local error: message too long" + (f", mtu{sep}{mtu}" if mtu else "")
            kind = "message-too-long"
        else:
            message = f"local error: {exc.strerror or exc}"
            kind = "local"
        return PingError(seq=seq, kind=kind, message=message, reporter=None, reporter_name=None,
                         icmp_type=None, icmp_code=None, mtu=mtu, local=True, timestamp=wall_ns / 1e9)

    def _extended_errors(self) -> Iterator[tuple[bytes, int, int, int, int, bytes]]:
        """Drain the error queue (IP_RECVERR): (data, origin, type, code, info, offender) per sock_extended_err.

        SOL_SOCKET messages (the SO_TIMESTAMPNS stamp) are not error records and are skipped.
        """
        while True:
            try:
                data, ancdata, _flags, _addr = self.sock.recvmsg(65535, 1024, _MSG_ERRQUEUE | socket.MSG_DONTWAIT)
            except OSError:  # EAGAIN: the queue is empty
                return
            for level, _ctype, cdata in ancdata:
                if level == socket.SOL_SOCKET or len(cdata) < 16:
                    continue
                _err, origin, etype, ecode, info = struct.unpack("=IBBBxI", cdata[:12])
                yield data, origin, etype, ecode, info, cdata[16:]

    def _read_errqueue(self) -> Iterator[PingError]:
        """ICMP errors and local errors queued by IP_RECVERR (the only error path for datagram sockets)."""
        for data, origin, etype, ecode, info, offender in self._extended_errors():
            if origin == _SO_EE_ORIGIN_LOCAL or self.kind == "raw":
                continue  # local errors are reported at sendto; raw sockets read ICMP errors as data
            if origin not in (_SO_EE_ORIGIN_ICMP, _SO_EE_ORIGIN_ICMP6) or len(data) < 8:
                continue
            _t, _c, _ck, _ident, seq = struct.unpack("!BBHHH", data[:8])
            if len(data) >= 16 and self.size >= 8 and data[8:16] != self.nonce:
                continue
            reporter = None
            if len(offender) >= 8 and struct.unpack("=H", offender[:2])[0] == socket.AF_INET:
                reporter = socket.inet_ntoa(offender[4:8])
            elif len(offender) >= 24:
                reporter = socket.inet_ntop(socket.AF_INET6, offender[8:24])
            yield self._icmp_error(etype, ecode, info, seq, reporter, time.time_ns())

    def _icmp_error(self, etype: int, ecode: int, info: int, seq: int, reporter: str | None, wall_ns: int) -> PingError:
        kind, message, mtu = (_icmp6_error if self.v6 else _icmp4_error)(etype, ecode, info)
        self.errors += 1
        return PingError(seq=seq, kind=kind, message=message, reporter=reporter, reporter_name=self._name(reporter),
                         icmp_type=etype, icmp_code=ecode, mtu=mtu, local=False, timestamp=wall_ns / 1e9)

    def _read_replies(self) -> Iterator[PingReply | PingError]:
        while True:
            try:
                data, ancdata, _flags, addr = self.sock.recvmsg(65535 + 60, 512, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # a pending socket error (e.g. from IP_RECVERR): read the error queue instead
                yield from self._read_errqueue()
                return
            now_mono = time.monotonic_ns()
            now_wall = time.time_ns()
            kernel_ns = None
            hops = None
            for level, ctype, cdata in ancdata:
                if level == socket.SOL_SOCKET and ctype == _SO_TIMESTAMPNS and len(cdata) >= 16:
                    sec, nsec = struct.unpack("=qq", cdata[:16])
                    kernel_ns = sec * 1_000_000_000 + nsec
                elif level == socket.IPPROTO_IP and ctype == socket.IP_TTL and len(cdata) >= 4:
                    hops = struct.unpack("=i", cdata[:4])[0]
                elif level == socket.IPPROTO_IPV6 and ctype == _IPV6_HOPLIMIT and len(cdata) >= 4:
                    hops = struct.unpack("=i", cdata[:4])[0]
            recv_mono, recv_wall = now_mono, now_wall
            if kernel_ns is not None and 0 <= now_wall - kernel_ns < 1_000_000_000:
                recv_mono, recv_wall = now_mono - (now_wall - kernel_ns), kernel_ns
            event = self._parse(data, addr[0], hops, recv_mono, recv_wall)
            if event is not None:
                yield event
                if self.count and self.received + self.errors >= self.count:
                    return  # done: like ping, stop reading (later duplicates are not waited for)

    def _parse(self, data: bytes, src: str, hops: int | None, recv_mono: int, recv_wall: int) -> PingReply | PingError | None:
        raw_packet = data
        if not self.v6 and self.kind == "raw":
            if len(data) < 20:
                return None
            ihl = (data[0] & 0x0F) * 4
            hops = data[8]
            data = data[ihl:]
        if len(data) < 8:
            return None
        icmp_type, code, _csum, ident, seq = struct.unpack("!BBHHH", data[:8])
        reply_type = 129 if self.v6 else 0
        if icmp_type == reply_type:
            if self.kind == "raw" and ident != self.ident:
                return None
            if self.size >= 8 and data[8:16] != self.nonce:
                return None
            self._capture(raw_packet, src, hops, recv_wall)
            return self._reply(seq, src, len(data), hops, recv_mono, recv_wall)
        if self.kind != "raw":
            return None
        # An ICMP error quoting one of our probes: inner IP header, then our echo header.
        inner = data[8:]
        if self.v6:
            if len(inner) < 48 or inner[6] != 58:
                return None
            if socket.inet_ntop(socket.AF_INET6, inner[24:40]) != self.address:
                return None
            quoted = inner[40:]
        else:
            if len(inner) < 28 or inner[9] != 1:
                return None
            if socket.inet_ntoa(inner[16:20]) != self.address:
                return None
            quoted = inner[(inner[0] & 0x0F) * 4:]
        if len(quoted) < 8:
            return None
        q_type, _qc, _qs, q_ident, q_seq = struct.unpack("!BBHHH", quoted[:8])
        if q_type != (128 if self.v6 else 8) or q_ident != self.ident:
            return None
        if self.size >= 8 and len(quoted) >= 16 and quoted[8:16] != self.nonce:
            return None
        info = struct.unpack("!I", data[4:8])[0]
        if not self.v6 and icmp_type == 3 and code == 4:
            info &= 0xFFFF  # next-hop MTU is the low half
        elif not self.v6 and icmp_type == 12:
            info >>= 24
        self._capture(raw_packet, src, hops, recv_wall)
        return self._icmp_error(icmp_type, code, info, q_seq, src, recv_wall)

    def _capture(self, packet: bytes, src: str, hops: int | None, wall_ns: int) -> None:
        if not self._pcap:
            return
        if not self.v6 and self.kind == "raw":
            self._pcap.write(packet, wall_ns)
        elif self.v6:
            self._pcap.write(_ipv6_header(src, self._local or "::", len(packet), hops or 0) + packet, wall_ns)
        else:
            self._pcap.write(ipv4_header(socket.inet_aton(src), socket.inet_aton(self._local or "0.0.0.0"), len(packet), hops or 0, False)
                             + packet, wall_ns)

    def _reply(self, seq: int, src: str, nbytes: int, hops: int | None, recv_mono: int, recv_wall: int) -> PingReply:
        sent = self._sent.get(seq)
        rtt_ns = max(0, recv_mono - sent) if sent is not None else None
        dup = bool(self._rcvd[seq >> 3] & (1 << (seq & 7)))
        if rtt_ns is not None:
            us = rtt_ns // 1000
            self.tsum += us
            self.tsum2 += us * us
            self.tmin = us if (self.received + self.duplicates) == 0 else min(self.tmin, us)
            self.tmax = max(self.tmax, us)
            self.ewma8 = us * 8 if not self.ewma8 else self.ewma8 + us - self.ewma8 // 8
        if dup:
            self.duplicates += 1
        else:
            self._rcvd[seq >> 3] |= 1 << (seq & 7)
            self.received += 1
            diff = (self.transmitted - seq) & 0xFFFF
            if diff <= 0x7FFF:
                self.pipe = max(self.pipe, diff + 1)
        return PingReply(
            seq=seq, address=src, hostname=self._name(src), bytes=nbytes, ttl=hops,
            rtt_ms=None if rtt_ns is None else rtt_ns / 1e6, rtt_us=None if rtt_ns is None else rtt_ns // 1000,
            duplicate=dup, truncated=nbytes < self.size + 8, timestamp=recv_wall / 1e9,
        )

    def _name(self, address: str | None) -> str | None:
        """Reverse name for reply sources, only when the target was given as a name (as ping does)."""
        if address is None or self.numeric:
            return None
        if address not in self._names:
            try:
                name: str | None = socket.getnameinfo((address, 0), socket.NI_NAMEREQD)[0]
            except OSError:
                name = None
            self._names[address] = name or (self.host if address == self.address else None)
        return self._names[address]

    def stats(self, *, final: bool = True) -> PingStats:
        """The statistics so far (iputils arithmetic)."""
        total = self.received + self.duplicates
        if total:
            tmin, tavg, tmax, mdev = _summary(self.tmin, self.tmax, self.tsum, self.tsum2, total)
        else:
            tmin = tavg = tmax = mdev = None
        return PingStats(
            host=self.host, address=self.address, transmitted=self.transmitted, received=self.received,
            duplicates=self.duplicates, errors=self.errors,
            time_ms=(self._last_send_ns - self._start_ns + 500_000) // 1_000_000,
            rtt_min_us=tmin, rtt_avg_us=tavg, rtt_max_us=tmax, rtt_mdev_us=mdev,
            rtt_ewma_us=self.ewma8 // 8 if total else None, pipe=self.pipe, final=final,
        )


def ping(target: str, **options: object) -> Pinger:
    """Validate, resolve and open a ping session; iterate it for events (see ``Pinger``)."""
    return Pinger(target, **options)  # type: ignore[arg-type]
