"""The batched probe engine behind ``recon sweep`` (and ``recon watch``), DESIGN.md §2.

Scapy builds each probe template once. The hot loop then only patches the
per-target fields and hands bytes to a raw socket:

* ICMP (routed targets): ``SOCK_RAW/IPPROTO_ICMP``; the probe's ICMP id and seq
  encode the target's index in this sweep (``id = base + index >> 16``,
  ``seq = index & 0xffff``, ``base`` random per sweep), and the payload's first
  byte carries the attempt number. A reply is ours only when its (source, id,
  seq) decode to an index whose address is that source; ICMP errors
  (unreachable, time exceeded) quote our probe, so the quoted destination, id
  and seq must match. Anything else (other processes' pings) is ignored.
* ARP (on-link targets): an ``AF_PACKET`` socket with a prebuilt who-has frame;
  replies are keyed by the sender's IPv4 address.

Replies are drained between sends (the receive buffer is 64 MiB), the sweep
stops as soon as every target has answered, and retries go only to the silent.
``engine="scapy"`` runs Scapy's ``sr()``/``srp()`` in one batched call instead:
the slow reference the tests compare against.
"""

from __future__ import annotations

import errno
import functools
import random
import select
import socket
import struct
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from recon.arp import ETH_P_ARP, arp_request_template, link, onlink_routes, route_source, vendor
from recon.errors import InvalidOption, PrivilegeError
from recon.models import HostResult, SweepResult, SweepStats
from recon.packets import ipv4_header
from recon.privileges import raw_socket
from recon.targets import build_targets, int_to_ip, ip_to_int, is_ipv4, parse_shard

if TYPE_CHECKING:
    from recon.capture import PcapWriter
    from recon.targets import TargetSet

__all__ = ["Prober", "sweep", "METHODS", "PROBES", "ENGINES", "parse_shard", "reverse_dns", "probe_template"]

METHODS = ("auto", "icmp", "arp")
PROBES = {"echo": (8, 0), "timestamp": (13, 14), "mask": (17, 18)}  # request type, reply type
ENGINES = ("raw", "scapy")
RCVBUF = 64 << 20
_ERROR_NAMES = {
    (3, 0): "net-unreachable", (3, 1): "host-unreachable", (3, 2): "protocol-unreachable",
    (3, 3): "port-unreachable", (3, 4): "fragmentation-needed", (3, 5): "source-route-failed",
    (3, 6): "net-unknown", (3, 7): "host-unknown", (3, 9): "net-prohibited", (3, 10): "host-prohibited",
    (3, 11): "net-unreachable-tos", (3, 12): "host-unreachable-tos", (3, 13): "admin-prohibited",
    (11, 0): "ttl-exceeded", (11, 1): "reassembly-exceeded",
}
_REPLY_NAMES = {0: "echo-reply", 14: "timestamp-reply", 18: "mask-reply"}
_PENDING, _UP, _UNREACH = 0, 1, 2
_MIN_ROUND_WAIT = 0.05
_LATE_MEMORY = 8  # previous sweeps whose ids still count as "late", not "ignored"


def probe_template(probe: str) -> tuple[bytes, int]:
    """The ICMP probe (id = seq = 0, checksum 0, 8-byte payload) built by Scapy, and its checksum partial sum.

    The partial sum lets the hot loop compute each probe's checksum from its id,
    seq and attempt byte in a few integer operations (RFC 1624 style).
    """
    from scapy.layers.inet import ICMP

    req, _ = PROBES[probe]
    icmp = ICMP(type=req, code=0, id=0, seq=0, chksum=0)
    if probe == "timestamp":
        icmp.ts_ori = icmp.ts_rx = icmp.ts_tx = 0
    raw = bytes(icmp)
    if probe == "echo":
        raw += b"\0" * 8  # payload: byte 0 is the attempt number
    total = sum(struct.unpack(f"!{len(raw) // 2}H", raw))
    return raw, total


def _fold(total: int) -> int:
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return total ^ 0xFFFF


class Prober:
    """Keeps its sockets open between sweeps (watch calls .sweep() every round)."""

    def __init__(self, *, method: str = "auto", probe: str = "echo", engine: str = "raw",
                 interface: str | None = None, source: str | None = None, rate: float | None = None) -> None:
        if method not in METHODS:
            raise InvalidOption("--method", method, f"one of {', '.join(METHODS)}")
        if probe not in PROBES:
            raise InvalidOption("--probe", probe, f"one of {', '.join(PROBES)}")
        if engine not in ENGINES:
            raise InvalidOption("--engine", engine, f"one of {', '.join(ENGINES)}")
        if rate is not None and not rate > 0:
            raise InvalidOption("--rate", rate, "a number of packets per second above 0")
        if source is not None and not is_ipv4(source):
            raise InvalidOption("--source", source, "an IPv4 address of this machine")
        self.method, self.probe, self.engine = method, probe, engine
        self.interface, self.source, self.rate = interface, source, rate
        self._icmp: socket.socket | None = None
        self._arp: socket.socket | None = None
        self._arp_iface: str | None = None
        self._arp_link = None
        self._previous_bases: deque[int] = deque(maxlen=_LATE_MEMORY)
        self._template: tuple[bytes, int] | None = None
        self._closed = False
        if interface is not None:
            self._arp_link = link(interface)  # validates the name in this namespace

    # -- sockets ---------------------------------------------------------------
    def _icmp_socket(self) -> socket.socket:
        if self._icmp is None:
            s = _raw_icmp()
            try:
                _big_buffers(s)
                if self.interface:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.interface.encode())
                if self.source:
                    try:
                        s.bind((self.source, 0))
                    except OSError:
                        raise InvalidOption("--source", self.source, "not an address of this machine") from None
                s.setblocking(False)
            except BaseException:
                s.close()
                raise
            self._icmp = s
        return self._icmp

    def _arp_socket(self, iface: str) -> socket.socket:
        if self._arp is not None and self._arp_iface != iface:  # a later sweep on another segment
            self._arp.close()
            self._arp = None
        if self._arp is None:
            try:
                s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
            except PermissionError:
                raise PrivilegeError("recon sweep (ARP)") from None
            try:
                _big_buffers(s)
                s.bind((iface, ETH_P_ARP))
                s.setblocking(False)
            except BaseException:
                s.close()
                raise
            self._arp, self._arp_iface = s, iface
        return self._arp

    def close(self) -> None:
        for s in (self._icmp, self._arp):
            if s is not None:
                s.close()
        self._icmp = self._arp = None
        self._closed = True

    def __enter__(self) -> "Prober":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- planning ----------------------------------------------------------------
    def _plan(self, addrs: array) -> tuple[bytearray | None, Any]:
        """Which targets go by ARP (1) and which by ICMP (0), and the link for ARP."""
        if self.method == "icmp":
            return None, None
        kind = bytearray(len(addrs))
        chosen = None  # one ARP link per sweep; targets on other segments go by ICMP, which the kernel routes
        for route in onlink_routes(self.interface):
            if chosen is not None and route.iface != chosen:
                continue
            for i, a in enumerate(addrs):
                if not kind[i] and (a & route.mask) == route.net:
                    kind[i] = 1
                    chosen = route.iface
        if self.method == "arp":
            missing = kind.count(0)
            if missing:
                first = next(i for i in range(len(addrs)) if not kind[i])
                raise InvalidOption("--method", "arp", f"{missing} target(s) (e.g. {int_to_ip(addrs[first])}) are not on a "
                                    "local segment; use --method auto or icmp")
        if chosen is None:
            return None, None
        lnk = self._arp_link if self._arp_link is not None and self._arp_link.name == chosen else link(chosen)
        self._arp_link = lnk
        return kind, lnk

    # -- the sweep ------------------------------------------------------------------
    def sweep(self, targets: "TargetSet", *, timeout: float = 1.0, retries: int = 1, seed: int | None = None,
              shard: tuple[int, int] = (1, 1), pcap: str | None = None, resolve: bool = False,
              progress: Callable[[int, int], None] | None = None) -> SweepResult:
        """Probe every target (of this shard); return every one with its status and the counters."""
        if self._closed:
            raise RuntimeError("this Prober is closed")
        if not timeout >= 0:
            raise InvalidOption("--timeout", timeout, "seconds, 0 or more")
        if not 0 <= retries <= 100:
            raise InvalidOption("--retries", retries, "a whole number from 0 to 100")
        addrs = array("I", targets.order(seed, shard))
        kind, lnk = self._plan(addrs)
        # Open every socket before the first packet: no privileges → nothing sent.
        if self.engine == "scapy":
            _raw_icmp().close()
            run = _ScapySweep(self, addrs, kind, lnk, timeout, retries)
        else:
            icmp = self._icmp_socket() if kind is None or 0 in kind else None
            arp = self._arp_socket(lnk.name) if kind is not None and 1 in kind else None
            run = _RawSweep(self, addrs, kind, lnk, icmp, arp, timeout, retries, progress)
        writer = None
        if pcap is not None:
            from recon.capture import LINKTYPE_ETHERNET, LINKTYPE_RAW, PcapWriter

            writer = PcapWriter(pcap, LINKTYPE_ETHERNET if kind is not None else LINKTYPE_RAW)
        try:
            run.pcap = writer
            run.execute()
        finally:
            if writer is not None:
                writer.close()
        hosts = run.results(targets.names)
        if resolve:
            hosts = _with_hostnames(hosts)
        return SweepResult(hosts=hosts, stats=run.stats())


def sweep(targets: "TargetSet | Iterable[str] | str", *, method: str = "auto", probe: str = "echo", engine: str = "raw",
          interface: str | None = None, source: str | None = None, rate: float | None = None,
          **kwargs: Any) -> SweepResult:
    """One sweep: ``Prober(...)`` + ``.sweep(...)`` + close. Targets may be a TargetSet or specs."""
    if not hasattr(targets, "order"):
        targets = build_targets([targets] if isinstance(targets, str) else list(targets), yes=True)
    with Prober(method=method, probe=probe, engine=engine, interface=interface, source=source, rate=rate) as prober:
        return prober.sweep(targets, **kwargs)  # type: ignore[arg-type]


# --- internals ----------------------------------------------------------------------


def _raw_icmp() -> socket.socket:
    """The raw ICMP socket, or a PrivilegeError whose advice fits sweep (it has no datagram-socket fallback)."""
    try:
        return raw_socket(socket.AF_INET, socket.IPPROTO_ICMP, "recon sweep")
    except PrivilegeError:
        raise PrivilegeError("recon sweep", hint=PrivilegeError.ADVICE) from None


def _big_buffers(s: socket.socket) -> None:
    for opt_force, opt in ((33, socket.SO_RCVBUF), (32, socket.SO_SNDBUF)):  # SO_RCVBUFFORCE / SO_SNDBUFFORCE
        size = RCVBUF if opt == socket.SO_RCVBUF else 4 << 20
        try:
            s.setsockopt(socket.SOL_SOCKET, opt_force, size)
        except OSError:
            try:
                s.setsockopt(socket.SOL_SOCKET, opt, size)
            except OSError:
                pass


class _Run:
    """State shared by both engines: per-target arrays indexed by sweep position."""

    pcap: "PcapWriter | None" = None

    def __init__(self, prober: Prober, addrs: array, kind: bytearray | None, lnk: Any,
                 timeout: float, retries: int) -> None:
        self.prober = prober
        self.addrs = addrs
        self.n = n = len(addrs)
        self.kind = kind
        self.link = lnk
        self.timeout = timeout
        self.retries = retries
        self.state = bytearray(n)
        self.rtt = array("f", bytes(4 * n))
        self.ttl = bytearray(n)
        self.reply = bytearray(n)  # ICMP type of the answer; 255 = ARP reply
        self.code = bytearray(n)
        self.extra: dict[int, tuple[Any, ...]] = {}  # index → (reporter) or (mac)
        self.sent = self.received = self.duplicates = self.late = self.resent = 0
        self.ignored = self.send_errors = 0
        self.t0 = self.t1 = 0.0
        self.answered = 0

    def mark_local(self) -> None:
        """Our own address on the swept segment is up (as nmap reports it); no one answers our own ARP."""
        if self.kind is None or self.link is None:
            return
        for i in range(self.n):
            if self.kind[i] and self.addrs[i] == self.link.address:
                self.state[i], self.reply[i], self.rtt[i] = _UP, 254, 0.0
                self.extra[i] = (self.link.mac_str,)
                self.answered += 1

    def execute(self) -> None:
        raise NotImplementedError

    def results(self, names: dict[int, str]) -> tuple[HostResult, ...]:

        addrs, state, rtt, ttl, reply, code, extra = self.addrs, self.state, self.rtt, self.ttl, self.reply, self.code, self.extra
        out = []
        for i in sorted(range(self.n), key=addrs.__getitem__):
            a = addrs[i]
            st = state[i]
            address = int_to_ip(a)
            name = names.get(a) if names else None
            if st == _PENDING:
                out.append(HostResult(address, "down", hostname=name))
                continue
            r = reply[i]
            ms = round(float(rtt[i]), 3) if rtt[i] >= 0 else None
            if r >= 254:
                mac = extra[i][0]
                out.append(HostResult(address, "up", ms, None, "arp-reply" if r == 255 else "localhost", mac, vendor(mac), name))
            elif st == _UP:
                out.append(HostResult(address, "up", ms, ttl[i], _REPLY_NAMES.get(r, f"icmp-{r}"), hostname=name))
            else:
                out.append(HostResult(address, "unreachable", ms, ttl[i], _ERROR_NAMES.get((r, code[i]), f"icmp-{r}-{code[i]}"),
                                      hostname=name, reporter=extra[i][0]))
        return tuple(out)

    def stats(self) -> SweepStats:
        duration = max(self.t1 - self.t0, 1e-9)
        method = "icmp" if self.kind is None else ("arp" if 0 not in self.kind else "arp+icmp")
        return SweepStats(
            targets=self.n, sent=self.sent, received=self.received, duplicates=self.duplicates, late=self.late,
            retries=self.resent, unreachable=self.state.count(_UNREACH), ignored=self.ignored,
            send_errors=self.send_errors, duration_s=round(duration, 6), pps=round(self.sent / duration, 1),
            engine=self.prober.engine, method=method,
        )


class _RawSweep(_Run):
    """Raw-socket hot loop: patch bytes, send, drain, match."""

    def __init__(self, prober: Prober, addrs: array, kind: bytearray | None, lnk: Any, icmp: socket.socket | None,
                 arp: socket.socket | None, timeout: float, retries: int,
                 progress: Callable[[int, int], None] | None) -> None:
        super().__init__(prober, addrs, kind, lnk, timeout, retries)
        self.icmp, self.arp = icmp, arp
        self.progress = progress
        self.sent_at = array("d", bytes(8 * self.n))
        self.attempt = bytearray(self.n)
        self.max_rtt = 0.0
        self.base = random.getrandbits(16)
        while self.base in prober._previous_bases:
            self.base = random.getrandbits(16)
        self.blocks = (self.n >> 16) + 1
        if icmp is not None:
            if prober._template is None:
                prober._template = probe_template(prober.probe)
            self.template, self.partial = prober._template
            self.reply_type = PROBES[prober.probe][1]
        self.arp_index: dict[int, int] = {}
        if arp is not None:
            self.arp_frame = bytearray(arp_request_template(lnk))
            self.arp_index = {addrs[i]: i for i in range(self.n) if kind[i]}  # type: ignore[index]
            self.my_addr = lnk.address
        self.eth_src = lnk.mac if lnk is not None else b"\0" * 6

    @functools.cached_property
    def src_addr(self) -> bytes:
        """The IPv4 source the kernel will use (for the pcap's synthetic IP headers; only a pcap asks); sends nothing."""
        if self.prober.source:
            return socket.inet_aton(self.prober.source)
        routed = next((i for i in range(self.n) if not self.kind or not self.kind[i]), None)
        if routed is None:
            return b"\0" * 4
        try:
            return socket.inet_aton(route_source(int_to_ip(self.addrs[routed])))
        except OSError:
            return b"\0" * 4

    # -- sending ---------------------------------------------------------------------
    def execute(self) -> None:
        prober = self.prober
        self._flush_stale()
        self.t0 = time.monotonic()
        self.mark_local()
        state = self.state
        todo: Iterable[int] = [i for i in range(self.n) if not state[i]] if self.answered else range(self.n)
        rounds = self.retries + 1
        try:
            for rnd in range(rounds):
                count = self._send_round(todo, rnd)
                if rnd:
                    self.resent += count
                last = rnd == rounds - 1
                if last:
                    wait = self.timeout
                else:
                    # between rounds, wait only as long as replies have taken so far (adaptive, as nmap does)
                    wait = self.timeout if self.received == 0 else min(self.timeout, max(_MIN_ROUND_WAIT, 3 * self.max_rtt + 0.02))
                self._wait(wait)
                if self.answered >= self.n:
                    break
                if not last:
                    todo = [i for i in range(self.n) if not state[i]]
        finally:
            self.t1 = time.monotonic()
            prober._previous_bases.append(self.base)
            if self.progress:
                self.progress(self.n, self.n)

    def _flush_stale(self) -> None:
        for s in (self.icmp, self.arp):
            if s is None:
                continue
            while True:
                try:
                    data = s.recv(65535)
                except (BlockingIOError, InterruptedError):
                    break
                if s is self.icmp and self._is_previous(data):
                    self.late += 1

    def _is_previous(self, data: bytes) -> bool:
        ihl = (data[0] & 15) * 4
        if len(data) < ihl + 8 or data[ihl] not in _REPLY_NAMES:
            return False
        ident = int.from_bytes(data[ihl + 4:ihl + 6], "big")
        return any(((ident - b) & 0xFFFF) < self.blocks for b in self.prober._previous_bases)

    def _send_round(self, todo: Iterable[int], rnd: int) -> int:
        icmp, arp, kind = self.icmp, self.arp, self.kind
        addrs, sent_at, attempt = self.addrs, self.sent_at, self.attempt
        pcap = self.pcap
        rate = self.prober.rate
        interval = 1.0 / rate if rate else 0.0
        burst = max(1.0, (rate or 0) / 200)  # allow 5 ms of burst
        next_at = time.monotonic()
        pack_into = struct.pack_into
        clock = time.monotonic
        ntoa = socket.inet_ntoa
        base, partial = self.base, self.partial if icmp is not None else 0
        buf = bytearray(self.template) if icmp is not None else None
        req_type = buf[0] if buf is not None else 0
        rtype_code = (req_type << 8)
        rnd_word = rnd << 8  # the attempt byte is the high byte of the payload's first word
        if buf is not None and len(buf) > 8 and req_type == 8:
            buf[8] = rnd
        else:
            rnd_word = 0
        frame = self.arp_frame if arp is not None else None
        drain = self._drain
        progress = self.progress
        count = 0
        for i in todo:
            if interval:
                now = clock()
                if now < next_at:
                    self._wait_until(next_at)
                    now = clock()
                next_at = max(next_at + interval, now - burst * interval)
            a = addrs[i]
            if kind is not None and kind[i]:
                frame[38:42] = a.to_bytes(4, "big")  # type: ignore[index]
                data = frame
                sock, dest = arp, None
            else:
                ident = (base + (i >> 16)) & 0xFFFF
                seq = i & 0xFFFF
                pack_into("!HHHH", buf, 0, rtype_code, _fold(partial + ident + seq + rnd_word), ident, seq)  # type: ignore[arg-type]
                data = buf
                sock, dest = icmp, (ntoa(a.to_bytes(4, "big")), 0)
            while True:
                try:
                    sent_at[i] = clock()
                    if dest is None:
                        sock.send(data)  # type: ignore[union-attr]
                    else:
                        sock.sendto(data, dest)  # type: ignore[union-attr]
                    break
                except (BlockingIOError, InterruptedError):
                    drain()
                    time.sleep(0.0005)
                except OSError as exc:
                    if exc.errno == errno.ENOBUFS:
                        drain()
                        time.sleep(0.0005)
                        continue
                    self.send_errors += 1  # e.g. EHOSTUNREACH/ENETUNREACH: the kernel has no route
                    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES, errno.EPERM):
                        break
                    raise
            attempt[i] = rnd
            count += 1
            if pcap is not None:
                self._record_probe(data, a, dest is None)
            if not count & 31:
                drain()
                if progress is not None and not count & 4095:
                    progress(min(self.n, count) if rnd == 0 else self.answered, self.n)
        self.sent += count
        drain()
        return count

    def _wait_until(self, deadline: float) -> None:
        socks = [s for s in (self.icmp, self.arp) if s is not None]
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            ready, _, _ = select.select(socks, [], [], left)
            if ready:
                self._drain()

    def _wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        socks = [s for s in (self.icmp, self.arp) if s is not None]
        last_progress = 0.0
        while self.answered < self.n:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            ready, _, _ = select.select(socks, [], [], min(left, 0.1))
            if ready:
                self._drain()
            if self.progress is not None and time.monotonic() - last_progress > 0.1:
                last_progress = time.monotonic()
                self.progress(self.answered, self.n)

    # -- receiving -------------------------------------------------------------------
    def _drain(self) -> None:
        if self.icmp is not None:
            self._drain_icmp()
        if self.arp is not None:
            self._drain_arp()

    def _drain_icmp(self) -> None:
        recv = self.icmp.recv  # type: ignore[union-attr]
        addrs, state, attempt, sent_at = self.addrs, self.state, self.attempt, self.sent_at
        base, n, blocks, reply_type = self.base, self.n, self.blocks, self.reply_type
        pcap = self.pcap
        clock = time.monotonic
        while True:
            try:
                data = recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            now = clock()
            if pcap is not None:
                self._record_reply(data)
            ihl = (data[0] & 15) << 2
            if len(data) < ihl + 8:
                self.ignored += 1
                continue
            itype = data[ihl]
            if itype == reply_type:
                blk = (((data[ihl + 4] << 8) | data[ihl + 5]) - base) & 0xFFFF
                i = (blk << 16) | (data[ihl + 6] << 8) | data[ihl + 7]
                src = int.from_bytes(data[12:16], "big")
                if blk >= blocks or i >= n or addrs[i] != src:
                    if self._is_previous(data):
                        self.late += 1
                    else:
                        self.ignored += 1
                    continue
                self.received += 1
                try_attempt = data[ihl + 8] if len(data) > ihl + 8 and reply_type == 0 else attempt[i]
                if state[i] == _UP:
                    if try_attempt < attempt[i]:
                        self.late += 1
                    else:
                        self.duplicates += 1
                    continue
                if state[i] == _PENDING:
                    self.answered += 1
                state[i] = _UP
                self.ttl[i] = data[8]
                self.reply[i] = itype
                if try_attempt == attempt[i]:
                    rtt = now - sent_at[i]
                    self.rtt[i] = rtt * 1000.0
                    if rtt > self.max_rtt:
                        self.max_rtt = rtt
                else:
                    self.late += 1
                    self.rtt[i] = -1.0
            elif itype == 3 or itype == 11:
                q = ihl + 8  # the quoted IP header of our probe
                if len(data) < q + 20:
                    self.ignored += 1
                    continue
                qihl = (data[q] & 15) << 2
                if data[q + 9] != 1 or len(data) < q + qihl + 8:
                    self.ignored += 1
                    continue
                qi = q + qihl
                blk = (((data[qi + 4] << 8) | data[qi + 5]) - base) & 0xFFFF
                i = (blk << 16) | (data[qi + 6] << 8) | data[qi + 7]
                dst = int.from_bytes(data[q + 16:q + 20], "big")
                if blk >= blocks or i >= n or addrs[i] != dst:
                    self.ignored += 1
                    continue
                self.received += 1
                if state[i] != _PENDING:
                    self.duplicates += 1
                    continue
                self.answered += 1
                state[i] = _UNREACH
                self.ttl[i] = data[8]
                self.reply[i] = itype
                self.code[i] = data[ihl + 1]
                self.rtt[i] = (now - sent_at[i]) * 1000.0
                self.extra[i] = (socket.inet_ntoa(data[12:16]),)
            else:
                self.ignored += 1

    def _drain_arp(self) -> None:
        recv = self.arp.recv  # type: ignore[union-attr]
        index, state, my = self.arp_index, self.state, self.my_addr
        pcap = self.pcap
        clock = time.monotonic
        while True:
            try:
                frame = recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            if len(frame) < 42 or frame[20:22] != b"\x00\x02":
                continue  # our own requests (outgoing) and other who-has
            if pcap is not None:
                pcap.write(frame)
            if int.from_bytes(frame[38:42], "big") != my:
                self.ignored += 1
                continue
            i = index.get(int.from_bytes(frame[28:32], "big"))
            if i is None:
                self.ignored += 1
                continue
            self.received += 1
            if state[i] != _PENDING:
                self.duplicates += 1
                continue
            self.answered += 1
            state[i] = _UP
            self.reply[i] = 255
            self.rtt[i] = (clock() - self.sent_at[i]) * 1000.0
            self.extra[i] = (frame[22:28].hex(":"),)

    # -- pcap ------------------------------------------------------------------------
    def _record_probe(self, data: bytes | bytearray, dst: int, is_frame: bool) -> None:
        assert self.pcap is not None
        if is_frame:
            self.pcap.write(bytes(data))
            return
        packet = ipv4_header(self.src_addr, dst.to_bytes(4, "big"), len(data), 64, True) + bytes(data)
        if self.kind is not None:
            packet = b"\0" * 6 + self.eth_src + b"\x08\x00" + packet
        self.pcap.write(packet)

    def _record_reply(self, data: bytes) -> None:
        assert self.pcap is not None
        if self.kind is not None:
            data = self.eth_src + b"\0" * 6 + b"\x08\x00" + data
        self.pcap.write(data)


class _ScapySweep(_Run):
    """The reference: Scapy's sr() (routed, ICMP) and srp() (on-link, ARP), each one batched call."""

    def execute(self) -> None:
        from scapy.config import conf
        from scapy.layers.inet import ICMP, IP
        from scapy.layers.l2 import ARP, Ether
        from scapy.sendrecv import sr, srp

        req, rep = PROBES[self.prober.probe]
        kind = self.kind
        icmp_idx = [i for i in range(self.n) if kind is None or not kind[i]]
        arp_idx = [i for i in range(self.n) if kind is not None and kind[i]]
        inter = 1.0 / self.prober.rate if self.prober.rate else 0
        answered: list[tuple[Any, Any]] = []
        silent: list[Any] = []
        self.t0 = time.monotonic()
        self.mark_local()
        arp_idx = [i for i in arp_idx if not self.state[i]]
        old_verb = conf.verb
        conf.verb = 0
        try:
            if icmp_idx:
                base = random.getrandbits(16)
                pkts = []
                for i in icmp_idx:
                    ip = IP(dst=int_to_ip(self.addrs[i]))
                    if self.prober.source:
                        ip.src = self.prober.source
                    pkts.append(ip / ICMP(type=req, id=(base + (i >> 16)) & 0xFFFF, seq=i & 0xFFFF))
                ans, unans = sr(pkts, timeout=self.timeout, retry=-self.retries if self.retries else 0, inter=inter,
                                iface=self.prober.interface, verbose=0)
                self.sent += len(pkts)
                answered += list(ans)
                silent += list(unans)
            if arp_idx:
                lnk = self.link
                frames = [Ether(dst="ff:ff:ff:ff:ff:ff", src=lnk.mac_str) / ARP(pdst=int_to_ip(self.addrs[i]), hwsrc=lnk.mac_str,
                                                                                 psrc=int_to_ip(lnk.address)) for i in arp_idx]
                ans, unans = srp(frames, iface=lnk.name, timeout=self.timeout, retry=-self.retries if self.retries else 0,
                                 inter=inter, verbose=0)
                self.sent += len(frames)
                answered += list(ans)
                silent += list(unans)
        finally:
            conf.verb = old_verb
            self.t1 = time.monotonic()
        if self.pcap is not None:
            self._write_pcap([*(s for s, _ in answered), *silent, *(r for _, r in answered)], Ether)
        where = {a: i for i, a in enumerate(self.addrs)}
        for snd, rcv in answered:
            if snd.haslayer(ARP):
                i = where.get(ip_to_int(rcv[ARP].psrc))
                if i is None or self.state[i]:
                    continue
                self.state[i], self.reply[i] = _UP, 255
                self.extra[i] = (rcv[ARP].hwsrc.lower(),)
            else:
                i = where.get(ip_to_int(snd[IP].dst))
                if i is None or self.state[i]:
                    continue
                icmp = rcv[ICMP]
                self.ttl[i] = rcv[IP].ttl
                self.reply[i] = icmp.type
                self.code[i] = icmp.code
                if icmp.type == rep:
                    self.state[i] = _UP
                elif icmp.type in (3, 11):
                    self.state[i] = _UNREACH
                    self.extra[i] = (rcv[IP].src,)
                else:
                    continue
            self.received += 1
            self.rtt[i] = max(0.0, (rcv.time - snd.sent_time) * 1000.0) if getattr(snd, "sent_time", None) else -1.0


# --- reverse DNS -----------------------------------------------------------------------


    def _write_pcap(self, packets: list[Any], ether: Any) -> None:
        """Every probe (with its retries' last send time) and reply, in time order; IP-level packets get a
        synthetic Ethernet header when the capture is Ethernet (ARP was used)."""
        records = []
        for p in packets:
            data = bytes(p)
            if self.kind is not None and not p.haslayer(ether):
                data = b"\0" * 12 + b"\x08\x00" + data
            records.append((int((getattr(p, "sent_time", None) or p.time) * 1e9), data))
        for stamp, data in sorted(records):
            self.pcap.write(data, stamp)  # type: ignore[union-attr]

def reverse_dns(addresses: Iterable[str], *, time_limit: float = 2.0, workers: int = 32) -> dict[str, str]:
    """Concurrent reverse lookups (the system resolver, /etc/hosts first), bounded by ``time_limit`` seconds.

    Lookups still running at the limit are abandoned (daemon threads), never waited for.
    """
    todo = deque(dict.fromkeys(addresses))
    names: dict[str, str] = {}
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if not todo:
                    return
                address = todo.popleft()
            try:
                name = socket.gethostbyaddr(address)[0]
            except (OSError, UnicodeError):
                continue
            with lock:
                names[address] = name

    threads = [threading.Thread(target=worker, daemon=True, name="recon-rdns") for _ in range(min(workers, len(todo)))]
    for t in threads:
        t.start()
    deadline = time.monotonic() + time_limit
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    with lock:
        return dict(names)


def _with_hostnames(hosts: tuple[HostResult, ...]) -> tuple[HostResult, ...]:
    from dataclasses import replace

    names = reverse_dns(h.address for h in hosts if h.status == "up" and not h.hostname)
    if not names:
        return hosts
    return tuple(replace(h, hostname=names[h.address]) if h.address in names else h for h in hosts)

