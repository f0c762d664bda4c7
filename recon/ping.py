"""Single-host ICMP echo, ping(8)-grade: the thin scheduler that ties ping's parts together.

The parts (ARCHITECTURE.md), split as icmplib splits them:

* ``ping_options``: ``PingOptions`` (frozen, validated) and the ``Destination``;
* ``ping_socket``: the ``EchoSocket`` from the transport, with per-family ``EchoFamily`` tables;
* ``ping_match``: the ``Matcher``, a pure function of the bytes read;
* ``ping_stats``: the ``Statistics`` accumulator, iputils arithmetic with no clock in it.

``Pinger`` sends echo requests on schedule and yields ``PingReply`` / ``PingError``
(typed: render words them as iputils does) / ``PingPending`` (``-O``) / ``PingSent``
(``-f`` only) events as they come, a running ``PingStats`` (``final=False``) whenever ``request_status()`` was called
(SIGQUIT in the CLI), and a final ``PingStats`` last. It never prints.

Timing: RTT is measured on the monotonic clock from just before ``sendto`` to the
kernel's receive timestamp (``SO_TIMESTAMPNS``), moved onto the monotonic clock by
subtracting the time the packet waited in the socket.
"""

from __future__ import annotations

import errno
import os
import random
import select
import socket
import time
from collections.abc import Generator, Iterator

from recon.errors import InvalidOption, InvalidTarget, ReconEnvironmentError, ReconError
from recon.models import PingError, PingPending, PingReply, PingSent, PingStart, PingStats
from recon.ping_match import ErrorMatch, Matcher, ReplyMatch
from recon.ping_options import MIN_USER_INTERVAL, Destination, PingOptions, resolve
from recon.ping_socket import SO_EE_ORIGIN_LOCAL, EchoFamily, EchoSocket, Received, family_of
from recon.ping_stats import Statistics, rtt_summary
from recon.transport import Transport, default_transport, is_root

__all__ = ["MIN_USER_INTERVAL", "PingOptions", "Pinger", "ping", "rtt_summary"]

FLOOD_WAIT_NS = 10_000_000  # iputils MININTERVAL: unanswered floods go out at most 100 per second
Event = PingReply | PingError | PingPending | PingSent | PingStats


def _payload(size: int, nonce: bytes, pattern: bytes | None) -> bytes:
    """The echo data: our nonce first, then byte i = i & 0xff, or the -p pattern repeated as iputils fills it."""
    body = bytes(pattern[i % len(pattern)] for i in range(size)) if pattern else bytes(i & 0xFF for i in range(size))
    return (nonce + body[len(nonce):])[:size]


def _route_source(transport: Transport, dest: Destination, opts: PingOptions, fam: EchoFamily) -> str:
    """The source address the kernel will use; a target with no route is refused, as ping(8) does."""
    iface = opts.interface or (socket.if_indextoname(dest.scope_id) if dest.scope else None)
    try:
        local = transport.route_source(dest.address, family=dest.family, interface=iface, source=opts.source)
    except OSError as exc:
        if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            raise InvalidTarget(dest.host, f"no route to {dest.address} ({exc.strerror})",
                                hint="check the address, the interface and 'ip route'") from None
        if exc.errno == errno.EADDRNOTAVAIL and opts.source:
            raise InvalidOption("--source", opts.source, "not an address of this machine") from None
        return opts.source or fam.any_address
    return local.split("%")[0]


def _local_error(echo: EchoSocket, exc: OSError, seq: int, wall_ns: int) -> PingError:
    """A send that failed here (ping's "local error"): EMSGSIZE carries the path MTU."""
    version = echo.fam.version
    if exc.errno == errno.EMSGSIZE:
        return PingError(seq=seq, kind="message-too-long", reporter=None, reporter_name=None, icmp_type=None,
                         icmp_code=None, mtu=echo.path_mtu(), local=True, timestamp=wall_ns / 1e9, version=version)
    return PingError(seq=seq, kind="local", reporter=None, reporter_name=None, icmp_type=None, icmp_code=None,
                     mtu=None, local=True, timestamp=wall_ns / 1e9, version=version, detail=exc.strerror or str(exc))


class _Names:
    """Reverse names for reply sources, only when the target was given as a name and -n is off (as ping)."""

    def __init__(self, dest: Destination, numeric: bool) -> None:
        self.dest, self.off = dest, numeric or dest.numeric
        self._cache: dict[str, str | None] = {}

    def __call__(self, address: str | None) -> str | None:
        if address is None or self.off:
            return None
        if address not in self._cache:
            try:
                name: str | None = socket.getnameinfo((address, 0), socket.NI_NAMEREQD)[0]
            except OSError:
                name = None
            self._cache[address] = name or (self.dest.host if address == self.dest.address else None)
        return self._cache[address]


class _Recorder:
    """--pcap: every request and reply as raw IP; a full disk ends the recording with one typed error."""

    def __init__(self, path: str | None) -> None:
        from recon.pcap import LINKTYPE_RAW, PcapWriter

        self.writer = PcapWriter(path, LINKTYPE_RAW) if path else None
        self.failure: ReconError | None = None

    def write(self, packet: bytes, wall_ns: int) -> bool:
        """Record one packet; False when the recording just failed (the session should end)."""
        if self.writer is None:
            return True
        try:
            self.writer.write(packet, wall_ns)
        except (OSError, ReconEnvironmentError) as exc:
            path = self.writer.path
            self.close()
            if isinstance(exc, ReconError):
                self.failure = exc
            else:
                reason = "the disk is full" if exc.errno == errno.ENOSPC else exc.strerror or str(exc)
                self.failure = ReconEnvironmentError(f"cannot write pcap {str(path)!r}: {reason}",
                                                     hint="free some space or choose another --pcap path")
            return False
        return True

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class Pinger:
    """One ping session. Construct (validates, resolves, opens the socket), then iterate."""

    def __init__(self, target: str, *, transport: Transport | None = None, options: PingOptions | None = None,
                 **settings: object) -> None:
        if settings.pop("df", False):  # the old spelling of -M do
            settings["pmtu"] = "do"
        self.options = opts = options if options is not None else PingOptions(**settings)  # type: ignore[arg-type]  # PingOptions checks every value
        self.transport = transport or default_transport()
        opts.check_privilege(is_root() or self.transport.name == "replay")  # replayed packets harm nobody
        self.dest: Destination = resolve(target, opts)
        self.fam = family_of(self.dest.family)
        self.host, self.address, self.family = target, self.dest.address, self.dest.family
        self._local = _route_source(self.transport, self.dest, opts, self.fam)  # before any socket: no route is bad input, as in ping(8)
        self.echo = EchoSocket(self.transport, self.fam, ttl=opts.ttl, pmtu=opts.pmtu, interface=opts.interface,
                               source=opts.source, multicast=self.dest.multicast)
        self.kind = self.echo.kind
        self._pcap: _Recorder | None = None
        try:  # the socket is closed by iterating; until then, a failure here must close it
            self._pcap = _Recorder(opts.pcap)
            self._wake_r, self._wake_w = os.pipe()
        except BaseException:
            self.echo.close()
            if self._pcap is not None:
                self._pcap.close()
            raise
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.ident = random.randrange(1, 0x10000) if self.echo.raw else self.echo.ident
        self.nonce = os.urandom(8) if opts.size >= 8 else b""
        self._payload = _payload(opts.size, self.nonce, opts.pattern)
        self.matcher = Matcher(self.fam.version, self.ident, self.nonce, self.dest.address, check_ident=self.echo.raw,
                               multicast=self.dest.multicast)
        self.statistics = Statistics()
        self._stop = False
        self._status = False
        self._name = _Names(self.dest, opts.numeric)
        self.start = PingStart(
            host=target, address=self.dest.shown, family=self.fam.version, size=opts.size,
            packet_bytes=opts.size + self.fam.ip_header_len, numeric=self.dest.numeric or opts.numeric, socket_kind=self.kind,
            source=self._local if (opts.interface or opts.source) else None, interface=opts.interface,
            pattern=opts.pattern, multicast=self.dest.multicast,
        )

    @property
    def failure(self) -> ReconError | None:
        """Why the session ended early, if it had to (e.g. the --pcap disk is full); the statistics still came."""
        return self._pcap.failure if self._pcap is not None else None

    def close(self) -> None:
        self.echo.close()
        if self._pcap is not None:
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

    def stats(self, *, final: bool = True) -> PingStats:
        """The statistics so far (iputils arithmetic)."""
        return self.statistics.snapshot(self.host, self.dest.shown, final=final,
                                        interval_us=int(self.options.interval_s * 1e6))

    # --- the loop ---------------------------------------------------------------------

    def __iter__(self) -> Generator[Event, None, None]:
        try:
            yield from self._run()
        finally:
            self.close()

    def _done(self, deadline_at: int | None) -> bool:
        """iputils main_loop's exit checks (the deadline is its SIGALRM)."""
        st, opts = self.statistics, self.options
        if self._stop:
            return True
        if opts.count and st.received + st.errors >= opts.count:
            return True
        if opts.deadline and st.errors:
            return True
        return deadline_at is not None and time.monotonic_ns() >= deadline_at

    def _sending(self) -> bool:
        opts = self.options
        return opts.count is None or self.statistics.transmitted < opts.count or opts.deadline is not None

    def _run(self) -> Iterator[Event]:
        opts, st = self.options, self.statistics
        poller = select.poll()
        poller.register(self.echo.fileno(), select.POLLIN | select.POLLERR)
        poller.register(self._wake_r, select.POLLIN)
        interval_ns = int(opts.interval_s * 1e9)
        start = next_send = time.monotonic_ns()
        deadline_at = start + int(opts.deadline * 1e9) if opts.deadline else None
        exit_at: int | None = None
        while not self._done(deadline_at):
            if self._status:
                self._status = False
                yield self.stats(final=False)
            now = time.monotonic_ns()
            sending = self._sending()
            due = next_send
            if interval_ns == 0 and st.in_flight() and st.last_send_ns is not None:
                due = max(due, st.last_send_ns + FLOOD_WAIT_NS)  # flood: the next goes at the reply, or 10 ms on
            if sending and now >= due:
                yield from self._send()
                next_send = max(next_send + interval_ns, now)
                if opts.count and st.transmitted >= opts.count and not opts.deadline and st.last_send_ns is not None:
                    exit_at = st.last_send_ns + st.wait_after_last_ns(interval_ns, int(opts.linger_s * 1e9))
                continue
            if exit_at is not None and now >= exit_at:
                break
            wakes = [t for t in (due if sending else None, exit_at, deadline_at) if t is not None]
            timeout_ms = max(0, (min(wakes) - now + 999_999) // 1_000_000) if wakes else None
            yield from self._wait(poller, timeout_ms)
        yield self.stats(final=True)

    def _wait(self, poller: select.poll, timeout_ms: int | None) -> Iterator[Event]:
        events = poller.poll(timeout_ms)
        if not events:  # errors queued without a wake-up (the replay transport's error queue) are read here
            yield from self._read_errqueue()
        for fd, ev in events:
            if fd == self._wake_r:
                try:
                    os.read(self._wake_r, 512)
                except OSError:
                    pass
                continue
            if ev & select.POLLERR:
                yield from self._read_errqueue()
                self.echo.clear_error()  # a bare sk_err would make poll report POLLERR forever
            if ev & select.POLLIN:
                yield from self._read_replies()

    # --- sending ------------------------------------------------------------------------

    def _send(self) -> Iterator[Event]:
        st, opts = self.statistics, self.options
        if opts.outstanding and st.transmitted and not st.answered(st.transmitted & 0xFFFF):
            yield PingPending(seq=st.transmitted & 0xFFFF, timestamp=time.time())
        seq = st.next_seq()
        src, dst = self.fam.pack(self._local), self.fam.pack(self.dest.address)
        packet = self.echo.echo(self.ident, seq, self._payload, src, dst)
        send_ns, wall_ns = time.monotonic_ns(), time.time_ns()
        error: PingError | None = None
        try:
            self.echo.send(packet, self.dest.sockaddr)
        except OSError as exc:
            error = _local_error(self.echo, exc, seq, wall_ns)
        st.sent(seq, send_ns)
        if opts.flood:
            yield PingSent(seq)
        if error is not None:
            st.error()
            yield error
            return
        self._capture(self.fam.pcap_header(src, dst, len(packet), opts.ttl or 64, opts.pmtu == "do") + packet, wall_ns)
        if not self.echo.raw:  # datagram sockets: errors the responder queued at once
            yield from self._read_errqueue()

    def _capture(self, packet: bytes, wall_ns: int) -> None:
        if self._pcap is not None and not self._pcap.write(packet, wall_ns):
            self.stop()

    # --- receiving ----------------------------------------------------------------------

    def _read_errqueue(self) -> Iterator[PingError]:
        """ICMP errors queued by IP_RECVERR: the only error path for datagram sockets."""
        for rec in self.echo.errqueue():
            if rec.origin == SO_EE_ORIGIN_LOCAL or self.echo.raw:
                continue  # local errors are reported at sendto; raw sockets read ICMP errors as data
            if rec.origin != self.fam.ee_origin_icmp:
                continue
            seq = self.matcher.match_quoted(rec.data)
            if seq is None:
                continue
            yield self._error(ErrorMatch(seq, rec.offender, rec.icmp_type, rec.icmp_code, rec.info), time.time_ns())

    def _error(self, m: ErrorMatch, wall_ns: int) -> PingError:
        from recon import icmp

        self.statistics.error()
        self.statistics.acknowledge(m.seq)
        v = self.fam.version
        mtu = m.info if icmp.error_kind(m.icmp_type, m.icmp_code, v) == "frag-needed" else None
        return PingError(seq=m.seq, kind=icmp.error_kind(m.icmp_type, m.icmp_code, v), reporter=m.reporter,
                         reporter_name=self._name(m.reporter), icmp_type=m.icmp_type, icmp_code=m.icmp_code, mtu=mtu,
                         local=False, timestamp=wall_ns / 1e9, version=v, info=m.info)

    def _read_replies(self) -> Iterator[PingReply | PingError]:
        count = self.options.count
        got = False
        for rec in self.echo.receive():
            got = True
            event = self._handle(rec)
            if event is not None:
                yield event
                st = self.statistics
                if count and st.received + st.errors >= count:
                    return  # done: like ping, stop reading (later duplicates are not waited for)
        if not got:  # a pending socket error, not a packet: the error queue says what it was
            yield from self._read_errqueue()

    def _handle(self, rec: Received) -> PingReply | PingError | None:
        now_mono, now_wall = time.monotonic_ns(), time.time_ns()
        recv_mono, recv_wall = now_mono, now_wall
        if rec.wall_ns is not None and 0 <= now_wall - rec.wall_ns < 1_000_000_000:
            recv_mono, recv_wall = now_mono - (now_wall - rec.wall_ns), rec.wall_ns
        ip_header = self.echo.raw and self.fam.raw_reads_ip_header
        m = self.matcher.match(rec.data, ip_header=ip_header, source=rec.source, hops=rec.hops)
        if m is None or (isinstance(m, ErrorMatch) and not self.echo.raw):
            return None
        if ip_header:
            self._capture(rec.data, recv_wall)
        else:
            src = self.fam.pack(m.source if isinstance(m, ReplyMatch) else (m.reporter or self.fam.any_address))
            hops = m.hops if isinstance(m, ReplyMatch) else rec.hops
            local = self.fam.pack(self._local)
            self._capture(self.fam.pcap_header(src, local, len(rec.data), hops or 0, False) + rec.data, recv_wall)
        if isinstance(m, ErrorMatch):
            return self._error(m, recv_wall)
        return self._reply(m, recv_mono, recv_wall)

    def _reply(self, m: ReplyMatch, recv_mono: int, recv_wall: int) -> PingReply:
        rtt_ns, dup = self.statistics.reply(m.seq, recv_mono)
        return PingReply(
            seq=m.seq, address=m.source, hostname=self._name(m.source), bytes=m.nbytes, ttl=m.hops,
            rtt_ms=None if rtt_ns is None else rtt_ns / 1e6, rtt_us=None if rtt_ns is None else rtt_ns // 1000,
            duplicate=dup, truncated=m.nbytes < self.options.size + 8, timestamp=recv_wall / 1e9,
        )


def ping(target: str, *, transport: Transport | None = None, **options: object) -> Pinger:
    """Validate, resolve and open a ping session; iterate it for events (see ``Pinger``)."""
    return Pinger(target, transport=transport, **options)  # type: ignore[arg-type]  # PingOptions checks every value
