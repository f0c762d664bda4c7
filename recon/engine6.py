"""The IPv6 half of ``recon sweep`` (ARCHITECTURE.md): ICMPv6 echo and the TCP/UDP probes of probes.py.

``engine.Prober.sweep`` sends a TargetSet's IPv4 addresses to the IPv4 engine and its IPv6
part (``TargetSet.v6`` and the scoped targets) here; the results are merged into one
``SweepResult``. Everything goes over raw IPv6 sockets from the ``Transport``
(recon/transport.py); IPv6 raw sockets read no IP header, so a reply's source and hop
limit come from ``recvmsg``:

* ICMPv6 echo: the probe's id and seq carry the target's index (``id = base + index >> 16``,
  ``seq = index & 0xffff``) and the payload's first byte the attempt, as in the IPv4
  engine; the kernel fills in the checksum (RFC 3542 section 3.1). A reply is ours when its
  id/seq decode to a target whose address is the reply's source. An ICMPv6 error
  (unreachable, time exceeded) is ours when the probe it quotes (``icmp.quoted_probe``) is.
  An ``ICMP6_FILTER`` lets only echo replies and errors reach the socket.
* TCP SYN/ACK and UDP: ``probes.Syn6/Ack6/Udp6``, keyed cookies as over IPv4.
* A scoped target (``fe80::1%eth0``) is probed on its interface; a multicast group
  (``ff02::1%eth0``) is one echo, and every member that answers is a host of its own.

Retries follow the IPv4 engine (``retries=None`` adapts; rounds.py).
"""

from __future__ import annotations

import itertools
import random
import select
import socket
import struct
import sys
import time
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from recon.errors import InputError, InvalidOption
from recon.icmp import icmp_name, quoted_probe
from recon.models import HostResult, ScopedTarget, SweepResult, SweepStats
from recon.packets import inet_checksum
from recon.probes import Cookies, ProbeSpec, TcpProbe6, Udp6, l4_probes6
from recon.rounds import Rounds, silent
from recon.targets import int_to_ip6
from recon.transport import (
    FAMILY6,
    RECV_BATCH,
    SEND_BATCH,
    STAMP_SPACE,
    PacketSocket,
    ProbeSockets,
    RecvBatch,
    SendBatch,
    Transport,
    ancillary,
    prepare_probe_socket,
    received_ns,
    scope_word,
)

if TYPE_CHECKING:
    from recon.pcap import PcapWriter
    from recon.targets import V6Targets

__all__ = ["MAX_V6_SWEEP", "PROBES6", "Prober6", "probes_for_v6"]

MAX_V6_SWEEP = 1 << 24  # IPv6 addresses in one sweep (or shard), even with --yes: about 33 bytes each in memory
PROBES6 = ("echo", "syn", "ack", "udp")  # the probe kinds that have an IPv6 form (ICMPv6 has no timestamp or mask)
_ICMP6_FILTER = 1  # <netinet/icmp6.h>; Python has no constant for it
_IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)
_ECHO_REQUEST, _ECHO_REPLY = 128, 129
_UNREACH, _TOO_BIG, _TIME_EXCEEDED = 1, 2, 3
_PENDING, _UP, _DOWN_UNREACH = 0, 1, 2
_ANC = STAMP_SPACE + socket.CMSG_SPACE(4)  # two control messages: the receive time, then the hop limit
_HOPLIMIT_CMSG = struct.pack("ii", socket.IPPROTO_IPV6, _IPV6_HOPLIMIT)  # its level and type, as they lie in the buffer
_SOCKADDR6 = 28
_ECHO6 = bytes([_ECHO_REQUEST]) + bytes(15)  # type, code, checksum (the kernel's), id, seq, 8 bytes of payload
_ALL128 = (1 << 128) - 1


def probes_for_v6(specs: Sequence[ProbeSpec], given: bool) -> tuple[ProbeSpec, ...]:
    """The probes of ``specs`` that exist over IPv6; none is an error only when the user chose them (``given``)."""
    out = tuple(p for p in specs if p.kind in PROBES6)
    if not out and given:
        raise InvalidOption("--probe", ",".join(map(str, specs)),
                            "ICMPv6 has no timestamp or mask; IPv6 targets need echo, syn:PORTS, ack:PORTS or udp:PORTS")
    return out


def _icmp6_filter(*passed: int) -> bytes:
    """An ICMP6_FILTER that blocks every type but ``passed`` (a set bit blocks, RFC 3542 section 3.2)."""
    words = [0xFFFFFFFF] * 8
    for t in passed:
        words[t >> 5] &= ~(1 << (t & 31))
    return struct.pack("=8I", *words)


def _text_int(address: str) -> int:
    """A row's address (``2001:db8::7`` or ``fe80::1%eth0``) as an int, -1 for anything else."""
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET6, address.partition("%")[0]), "big")
    except OSError:
        return -1


def _meta(control: bytes) -> tuple[int, float]:
    """(hop limit, the kernel's receive time in wall-clock seconds) from a control buffer; 0 for what is absent."""
    stamp = received_ns(control) / 1_000_000_000
    if control[40:48] == _HOPLIMIT_CMSG and len(control) >= 52:  # after the receive time, as the kernel lays them
        return int.from_bytes(control[48:52], sys.byteorder), stamp
    for level, kind, data in ancillary(control):
        if level == socket.IPPROTO_IPV6 and kind == _IPV6_HOPLIMIT and len(data) >= 4:
            return int.from_bytes(data[:4], sys.byteorder), stamp
    return 0, stamp


class _Targets6:
    """A sweep's IPv6 targets by index: 128-bit addresses in two compact arrays (16 bytes a target), and their scopes.

    Index ``i`` is position ``i`` of ``v6.order(seed, shard)``, so ``V6Targets.walk(seed, shard).index`` finds an
    address's index without a table; scoped targets follow the unscoped ones."""

    def __init__(self, v6: V6Targets, addrs: Iterable[int], scoped: Sequence[ScopedTarget],
                 seed: int | None = None, shard: tuple[int, int] = (1, 1), *, in_order: bool = True) -> None:
        self.hi, self.lo = array("Q"), array("Q")
        for a in addrs:
            self.hi.append(a >> 64)
            self.lo.append(a & 0xFFFFFFFFFFFFFFFF)
        self.unscoped = len(self.hi)
        self.scoped = tuple(scoped)
        for s in self.scoped:
            a = int.from_bytes(socket.inet_pton(socket.AF_INET6, s.address), "big")
            self.hi.append(a >> 64)
            self.lo.append(a & 0xFFFFFFFFFFFFFFFF)
        self.n = len(self.hi)
        self.v6, self.seed, self.shard = v6, seed, shard
        # ``addrs`` is v6.order(seed, shard) itself, unless on-link targets were taken out of it (a dict then)
        self._where: dict[int, int] | None = None if in_order else {self[i]: i for i in range(self.unscoped)}
        self._walk = v6.walk(seed, shard)  # the affine step inverted once, not per answer

    def __getitem__(self, i: int) -> int:
        return (self.hi[i] << 64) | self.lo[i]

    def scope(self, i: int) -> ScopedTarget | None:
        return self.scoped[i - self.unscoped] if i >= self.unscoped else None

    def sockaddr(self, i: int) -> tuple[str, int, int, int]:
        text = socket.inet_ntop(socket.AF_INET6, self.hi[i].to_bytes(8, "big") + self.lo[i].to_bytes(8, "big"))
        s = self.scope(i)
        return text, 0, 0, s.ifindex if s is not None else 0

    def index(self, address: int) -> int | None:
        """The target index of ``address`` (an unscoped target first), None when it is not a target."""
        i = self._where.get(address) if self._where is not None else self._walk.index(address)
        if i is not None:
            return i
        return next((self.unscoped + k for k in range(len(self.scoped)) if self[self.unscoped + k] == address), None)


class _PcapTap6:
    """Writes the IPv6 probes and answers to ``--pcap`` with synthetic IPv6 headers (raw IPv6 sockets give none),
    and an Ethernet header when the file is Ethernet (ARP went in it too). ICMPv6 checksums, which the kernel
    fills in on the way out, are computed here."""

    def __init__(self, writer: PcapWriter, local: bytes) -> None:
        from recon.pcap import LINKTYPE_ETHERNET

        self.writer, self.local = writer, local
        self.ethernet = writer.linktype == LINKTYPE_ETHERNET

    def write(self, payload: bytes | bytearray, src: bytes, dst: bytes, proto: int, hops: int) -> None:
        data = bytearray(payload)
        if proto == socket.IPPROTO_ICMPV6 and len(data) >= 4 and data[2:4] == b"\0\0":
            pseudo = src + dst + struct.pack("!I3xB", len(data), proto)  # RFC 8200 8.1
            struct.pack_into("!H", data, 2, inet_checksum(pseudo + bytes(data)))
        packet = struct.pack("!IHBB", 6 << 28, len(data), proto, hops) + src + dst + data
        self.writer.write(b"\0" * 12 + b"\x86\xdd" + packet if self.ethernet else packet)


@dataclass(frozen=True, slots=True)
class _Pass6:
    kind: int  # its number among this sweep's probes, in the order given
    sock: PacketSocket
    probe: TcpProbe6 | Udp6 | None  # None: ICMPv6 echo


class Prober6:
    """The IPv6 sockets of a Prober, kept open between sweeps, and the sweep over them."""

    def __init__(self, specs: Sequence[ProbeSpec], *, interface: str | None, source: str | None, rate: float | None,
                 transport: Transport, sport: int, method: str = "auto") -> None:
        self.specs, self.interface, self.source, self.rate = tuple(specs), interface, source, rate
        self.method = method  # icmp: on-link targets too go by ICMPv6 (as --method icmp skips ARP)
        self.transport, self.sport = transport, sport
        self._icmp: PacketSocket | None = None
        self._l4 = ProbeSockets(transport, socket.AF_INET6, interface, "recon sweep (IPv6 TCP/UDP probes)")
        self.previous: list[int] = []  # earlier sweeps' id bases (their late replies are not ours)

    def icmp_socket(self) -> PacketSocket:
        if self._icmp is None:
            s, _ = self.transport.icmp(socket.AF_INET6, what="recon sweep (IPv6)")
            prepare_probe_socket(s, socket.AF_INET6, interface=self.interface, source=self.source)
            try:
                s.setsockopt(socket.IPPROTO_ICMPV6, _ICMP6_FILTER,
                             _icmp6_filter(_ECHO_REPLY, _UNREACH, _TOO_BIG, _TIME_EXCEEDED, 4))
            except BaseException:
                s.close()
                raise
            self._icmp = s
        return self._icmp

    def l4_sockets(self, source: str) -> dict[int, PacketSocket]:
        return self._l4.get(source, (socket.IPPROTO_UDP if p.kind == "udp" else socket.IPPROTO_TCP
                                     for p in self.specs if p.kind != "echo"))

    def _local(self, targets: _Targets6) -> bytes:
        """The source address the kernel picks for the first target (for the pcap's headers only; sends nothing)."""
        try:
            dst, _, _, scope = targets.sockaddr(0)
            text = self.source or self.transport.route_source(dst if not scope else f"{dst}%{scope}",
                                                              family=socket.AF_INET6, interface=self.interface)
            return socket.inet_pton(socket.AF_INET6, text.partition("%")[0])
        except (OSError, IndexError):
            return bytes(16)

    def close(self) -> None:
        if self._icmp is not None:
            self._icmp.close()
            self._icmp = None
        self._l4.close()

    def sweep(self, v6: V6Targets, scoped: Sequence[ScopedTarget], *, seed: int | None, shard: tuple[int, int],
              timeout: float, retries: int | None, progress: Callable[[int, int], None] | None = None,
              pcap: PcapWriter | None = None, stopped: Callable[[], bool] = lambda: False,
              found: Callable[[HostResult], None] | None = None, down: bool = True,
              ) -> tuple[tuple[HostResult, ...], SweepStats]:
        """Probe the IPv6 targets of this shard (scoped ones go with shard 1); their rows and the counters.

        On-link targets on an Ethernet interface go by Neighbor Discovery and scoped ones by ``ndp.discover``
        (recon/ndp.py: rows with MACs), as on-link IPv4 goes by ARP, unless ``method`` is icmp; the rest by
        ICMPv6 echo and the TCP/UDP probes. Once ``stopped()`` (the stream was stopped, or closed) the ICMPv6
        and TCP/UDP probes stop at their next batch or wait slice, and Neighbor Discovery at its next send or
        ndp.STOP_SLICE, and no part starts after it (the sweep runs on a thread of its own beside the IPv4 part:
        engine.SweepStream). ``found`` (called on this thread) gets each host's row as soon as it is known up,
        as the result has it (the result holds it too). Without ``down`` a silent unscoped target has no row (as
        the IPv4 part's, ``engine.Prober.sweep_iter``: the walk lists those); a scoped one's still comes, and
        the counters are down's."""
        count = len(range(shard[0] - 1, len(v6), shard[1]))
        if count > MAX_V6_SWEEP:
            raise InputError(f"{count:,} IPv6 addresses in one sweep; at most {MAX_V6_SWEEP:,} (a /104) at a time",
                             hint="split it with --shard I/N, or let --cluster or --resume cut it into parts that "
                                   "small, or give a longer prefix")
        addrs: Iterable[int] = v6.order(seed, shard)
        here = tuple(scoped) if shard[0] == 1 else ()
        onlink: dict[str, list[int]] = {}
        scoped_l2: list[ScopedTarget] = []
        if self.method != "icmp":
            addrs, onlink, here, scoped_l2 = self._split(v6, addrs, here)
        def name(h: HostResult) -> HostResult:  # ndp's rows, named as the IPv6 engine names its own
            hostname = v6.names.get(_text_int(h.address)) if h.hostname is None else None
            return h if hostname is None else replace(h, hostname=hostname)

        named = None
        if found is not None:
            report = found

            def named(h: HostResult) -> None:
                report(name(h))

        parts = [self._ndp(iface, group, (), timeout, retries, pcap, stopped, named) for iface, group in onlink.items()]
        silent = 0  # rows left out without ``down``; the merged counters count them as targets still
        if not down:  # the on-link parts' targets are unscoped: their silent ones get no row
            kept = [SweepResult(tuple(h for h in p.hosts if h.status != "down"), p.stats) for p in parts]
            silent = sum(len(p.hosts) - len(k.hosts) for p, k in zip(parts, kept, strict=True))
            parts = kept
        if scoped_l2:
            parts.append(self._ndp(None, [], scoped_l2, timeout, retries, pcap, stopped, named))
        targets = _Targets6(v6, addrs, here, seed, shard, in_order=not onlink)
        if targets.n or not parts:
            run = _Run6(self, targets, timeout, retries, progress)
            run.stopped, run.found, run.names = stopped, found, v6.names
            if pcap is not None:
                run.tap = _PcapTap6(pcap, self._local(targets))
            run.execute()
            if not parts:
                return run.results(down), run.stats()
            parts.append(SweepResult(run.results(down), run.stats()))
            silent += 0 if down else run.state.count(_PENDING, 0, targets.unscoped)
        from recon.ndp import merge

        merged = merge(parts)
        stats = replace(merged.stats, targets=merged.stats.targets + silent) if silent else merged.stats
        return tuple(map(name, merged.hosts)), stats

    def _split(self, v6: V6Targets, addrs: Iterable[int], scoped: Sequence[ScopedTarget],
               ) -> tuple[Iterable[int], dict[str, list[int]], tuple[ScopedTarget, ...], list[ScopedTarget]]:
        """(routed addresses, on-link addresses by Ethernet interface, scoped targets for ICMPv6, scoped targets
        for ndp), read from the IPv6 routing table as arp.py reads IPv4's. Nothing on-link: ``addrs`` untouched."""
        from recon.ndp import routes6

        table = routes6()  # one read of the routing table for the whole split
        routes = [(int(net.network_address), int(net.netmask), iface) for net, iface, onlink in table
                  if onlink and not net.is_link_local and (self.interface is None or iface == self.interface)]
        ether = {iface: self._ethernet(iface) for iface in {r[2] for r in routes} | {t.interface for t in scoped}}
        routes = [r for r in routes if ether[r[2]]]
        scoped_l2 = [t for t in scoped if ether[t.interface]]
        scoped_l3 = tuple(t for t in scoped if not ether[t.interface])
        touching = [r for r in routes if any(lo <= (r[0] | ~r[1] & _ALL128) and r[0] <= hi for lo, hi in v6.intervals)]
        if not touching:
            return addrs, {}, scoped_l3, scoped_l2
        routed: list[int] = []
        onlink: dict[str, list[int]] = {}
        all_routes = [(int(net.network_address), int(net.netmask), iface, on) for net, iface, on in table]
        for a in addrs:
            hit = next((r for r in all_routes if a & r[1] == r[0]), None)  # longest prefix first
            if hit is not None and hit[3] and any(hit[:3] == r for r in touching):
                onlink.setdefault(hit[2], []).append(a)
            else:
                routed.append(a)
        return routed, onlink, scoped_l3, scoped_l2

    def _ethernet(self, iface: str) -> bool:
        """True when ``iface`` can do Neighbor Discovery at layer 2 (ndp.link6 accepts it); else ICMPv6 it is."""
        from recon.ndp import link6

        try:
            link6(iface, self.transport)
        except (InvalidOption, OSError):
            return False
        return True

    def _ndp(self, iface: str | None, addrs: list[int], scoped: Sequence[ScopedTarget], timeout: float,
             retries: int | None, pcap: PcapWriter | None, stopped: Callable[[], bool],
             found: Callable[[HostResult], None] | None) -> SweepResult:
        """Neighbor Discovery of ``addrs`` on ``iface`` (or of the ``scoped`` targets), each host that answers to
        ``found`` as it answers; once ``stopped()`` it sends no more and its wait ends within ndp.STOP_SLICE, with
        what answered."""
        from recon.ndp import discover, solicit
        from recon.pcap import LINKTYPE_ETHERNET

        tap = None
        if pcap is not None:
            ethernet = pcap.linktype == LINKTYPE_ETHERNET

            def tap(frame: bytes) -> None:
                pcap.write(frame if ethernet else frame[14:])

        if iface is not None:
            return solicit(iface, addrs, transport=self.transport, timeout=timeout, retries=retries, rate=self.rate, tap=tap,
                           source=self.source, stopped=stopped, found=found)
        return discover(scoped, transport=self.transport, timeout=timeout, retries=retries, rate=self.rate, tap=tap,
                        source=self.source, stopped=stopped, found=found)


class _Receive6:
    """The receiving half of an IPv6 sweep: per-target state by index, its sockets, the drain and matching."""

    def __init__(self, prober: Prober6, targets: _Targets6, timeout: float, retries: int | None,
                 progress: Callable[[int, int], None] | None) -> None:
        self.prober, self.t, self.n = prober, targets, targets.n
        self.rounds = Rounds(timeout, retries)  # the retry policy (rounds.py)
        self.progress = progress
        self.stopped: Callable[[], bool] = lambda: False  # the stream was stopped: send and wait no more
        self.found: Callable[[HostResult], None] | None = None  # each host's row as soon as it is known up
        self.names: dict[int, str] = {}  # the targets' names (V6Targets.names), for those rows
        self.tap: _PcapTap6 | None = None
        n = self.n
        self.state, self.hops, self.attempt = bytearray(n), bytearray(n), bytearray(n)
        self.rtt = array("f", bytes(4 * n))
        self.sent_at = array("d", bytes(8 * n))  # wall-clock seconds, as the kernel's receive times
        self.why: dict[int, tuple[str, str | None, str | None]] = {}  # index → (reason, reply, reporter)
        self.members: dict[str, tuple[int, HostResult]] = {}  # multicast members: address%iface → (group, its row)
        self.rows: dict[int, HostResult] = {}  # the row of each target found up, built once: found= and results() share it
        self.sent = self.received = self.duplicates = self.late = self.resent = self.ignored = self.send_errors = 0
        self.answered = self.later_finds = self.slow_finds = 0  # slow_finds: first found by an earlier round's echo
        self.kinds_answered: set[int] = set()
        self.first_kind, self.passes, self.max_rtt = -1, 1, 0.0
        self.base = random.getrandbits(16)
        while self.base in prober.previous:
            self.base = random.getrandbits(16)
        self.blocks = (n >> 16) + 1
        self.t0 = self.t1 = 0.0
        self.groups = any(s.multicast for s in targets.scoped)  # members answer at any time: wait the whole timeout
        self.icmp = prober.icmp_socket() if n else None  # echo replies, and errors about every probe kind
        self.l4: tuple[TcpProbe6 | Udp6, ...] = ()
        self.l4_socks: dict[TcpProbe6 | Udp6, PacketSocket] = {}
        self.kind_of: dict[TcpProbe6 | Udp6, int] = {}  # each TCP/UDP probe's kind (its place among the specs)
        if n and any(p.kind != "echo" for p in prober.specs):
            self._plan_l4()
        # what every answer would otherwise look up again: the echo's kind, each socket's protocol
        self.echo_kind = next((k for k, p in enumerate(prober.specs) if p.kind == "echo"), -1)
        self.socks = [s for s in (self.icmp, *prober._l4.socks.values()) if s is not None] if self.l4 or self.icmp else []
        self.proto_of: dict[int, int] = {id(s): proto for proto, s in prober._l4.socks.items()}
        if self.icmp is not None:
            self.proto_of[id(self.icmp)] = socket.IPPROTO_ICMPV6
        self.batches: dict[int, SendBatch] = {}  # the send batch of each socket
        self.recv_batches = {id(s): RecvBatch(s, RECV_BATCH, name=_SOCKADDR6, control=_ANC) for s in self.socks}

    def _plan_l4(self) -> None:
        prober = self.prober
        source = prober.source
        first = next((i for i in range(self.n) if self.t.scope(i) is None), None)
        if source is None and first is not None:
            try:
                source = prober.transport.route_source(self.t.sockaddr(first)[0], family=socket.AF_INET6,
                                                       interface=prober.interface)
            except OSError:
                return  # no route: the echo sends say so (send_errors)
        if source is None:
            return  # scoped targets only: TCP/UDP go to unscoped ones
        socks = prober.l4_sockets(source)
        src = int.from_bytes(socket.inet_pton(socket.AF_INET6, source), "big")
        self.l4 = l4_probes6(prober.specs, Cookies(), src, prober.sport)
        self.l4_socks = {p: socks[p.proto] for p in self.l4}
        self.kind_of = {p: prober.specs.index(ProbeSpec(p.kind, p.port)) for p in self.l4}

    def _is_group(self, i: int) -> bool:
        s = self.t.scope(i)
        return s is not None and s.multicast

    def _wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        last = 0.0
        while (self.answered < self.n or self.groups) and not self.stopped():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            ready, _, _ = select.select(self.socks, [], [], min(left, 0.1))
            if ready:
                self._drain()
            if self.progress is not None and time.monotonic() - last > 0.1:
                last = time.monotonic()
                self.progress(self.answered, self.n)

    # -- receiving -----------------------------------------------------------------
    def _drain(self) -> None:
        # A drain loop: each socket's datagrams read by recvmmsg(2), RECV_BATCH at a time (transport.RecvBatch); the
        # source comes from the sockaddr_in6 the kernel wrote (a raw IPv6 socket reads no IP header), the hop limit
        # from the control message.
        tap, icmp = self.tap, self.icmp
        for sock in self.socks:
            batch, proto = self.recv_batches[id(sock)], self.proto_of[id(sock)]
            while True:
                got = batch.recv_msgs()
                read = time.time()
                for data, name, control in got:
                    src = int.from_bytes(name[8:24], "big") if len(name) >= 24 else -1
                    hops, now = _meta(control)  # RTTs from the kernel's receive time: not how late Python read it
                    now = now or read
                    if tap is not None and src >= 0:
                        tap.write(data, name[8:24], tap.local, proto, hops)
                    if sock is icmp:
                        self._icmp(data, src, hops, now)
                    else:
                        self._l4_answer(data, src, hops, now)
                if len(got) < RECV_BATCH:
                    break

    def _found(self, i: int, kind: int, reason: str, reply: str, hops: int, now: float, rtt_ok: bool = True) -> None:
        if self.state[i] != _PENDING:
            self.duplicates += self.state[i] == _UP and self.why[i][1] == reply
            return
        self.answered += 1
        self.later_finds += kind != self.first_kind
        self.kinds_answered.add(kind)
        self.state[i], self.hops[i] = _UP, hops
        self.why[i] = (reason, reply, None)
        rtt = now - self.sent_at[i]
        self.rtt[i] = rtt * 1000.0 if rtt_ok else -1.0
        self.max_rtt = max(self.max_rtt, rtt if rtt_ok else 0.0)
        row = self.rows[i] = self.row(i)
        if self.found is not None:
            self.found(row)

    def _icmp(self, data: bytes, src: int, hops: int, now: float) -> None:
        if len(data) < 8:
            self.ignored += 1
            return
        if data[0] == _ECHO_REPLY:
            blk = (int.from_bytes(data[4:6], "big") - self.base) & 0xFFFF
            i = (blk << 16) | int.from_bytes(data[6:8], "big")
            if blk >= self.blocks or i >= self.n:
                ident = int.from_bytes(data[4:6], "big")
                if any(((ident - b) & 0xFFFF) < self.blocks for b in self.prober.previous):
                    self.late += 1  # an earlier sweep's probe
                else:
                    self.ignored += 1
                return
            self.received += 1
            if self._is_group(i):
                self._member(i, src, hops, now)
            elif self.t[i] != src:
                self.received -= 1
                self.ignored += 1
            else:
                got = data[8] if len(data) > 8 else self.attempt[i]
                slow = got != self.attempt[i] and self.state[i] == _PENDING  # an earlier round's probe: slow, not lost
                self.late += slow
                self.slow_finds += slow
                self._found(i, self.echo_kind, "echo-reply", "echo-reply", hops, now, got == self.attempt[i])
            return
        if data[0] in (_UNREACH, _TOO_BIG, _TIME_EXCEEDED, 4):
            self._error(data, src, hops, now)
            return
        self.ignored += 1

    def _member(self, i: int, src: int, hops: int, now: float) -> None:
        """An answer to the echo sent to multicast group ``i``: its source is a host on that link."""
        scope = self.t.scope(i)
        assert scope is not None  # only groups are members' targets
        name = f"{int_to_ip6(src)}%{scope.interface}" if src >= 0 else "?"
        if name in self.members:
            self.duplicates += 1
            return
        if self.state[i] == _PENDING:
            self.answered += 1
            self.kinds_answered.add(self.echo_kind)
            self.state[i] = _UP
        ms = (now - self.sent_at[i]) * 1000.0
        row = HostResult(name, "up", round(ms, 3), hops or None, "echo-reply", reason="echo-reply")
        self.members[name] = (i, row)
        if self.found is not None:
            self.found(row)

    def row(self, i: int) -> HostResult:
        """Target ``i``'s row (not a multicast group's: its members are the hosts)."""
        t = self.t
        scope = t.scope(i)
        address = str(scope) if scope is not None else int_to_ip6(t[i])
        name = self.names.get(t[i]) if scope is None else None
        if self.state[i] == _PENDING:
            return HostResult(address, "down", hostname=name)
        reason, reply, reporter = self.why[i]
        ms = round(float(self.rtt[i]), 3) if self.rtt[i] >= 0 else None
        status = "up" if self.state[i] == _UP else "unreachable"
        return HostResult(address, status, ms, self.hops[i] or None, reply, hostname=name, reporter=reporter, reason=reason)

    def _error(self, data: bytes, src: int, hops: int, now: float) -> None:
        """An ICMPv6 error quoting one of our probes: port unreachable from the target itself means up (UDP);
        anything else makes a silent target unreachable, reported by ``src``."""
        quoted = quoted_probe(data[8:], 6)
        if quoted is None:
            self.ignored += 1
            return
        dst = int.from_bytes(socket.inet_pton(socket.AF_INET6, quoted.dst), "big")
        i: int | None
        kind = -1
        if quoted.proto == 58 and quoted.ident is not None and quoted.seq is not None and quoted.icmp_type == _ECHO_REQUEST:
            blk = (quoted.ident - self.base) & 0xFFFF
            i = (blk << 16) | quoted.seq
            if blk >= self.blocks or i >= self.n or self.t[i] != dst:
                i = None
            kind = self.echo_kind if i is not None else -1
        else:
            probe = next((p for p in self.l4 if p.answers_quote(quoted)), None)
            i = self.t.index(dst) if probe is not None else None
            kind = self.kind_of[probe] if probe is not None else -1
            if i is not None and isinstance(probe, Udp6) and data[0] == _UNREACH and data[1] == 4 and src == dst:
                self.received += 1
                self._found(i, kind, "port-unreachable", f"port-unreachable/udp:{probe.port}", hops, now)
                return
        if i is None:
            self.ignored += 1
            return
        self.received += 1
        if self.state[i] != _PENDING:
            return
        self.answered += 1
        self.state[i], self.hops[i] = _DOWN_UNREACH, hops
        self.rtt[i] = (now - self.sent_at[i]) * 1000.0
        name = icmp_name(data[0], data[1], 6)
        self.why[i] = (name, name, int_to_ip6(src) if src >= 0 else None)

    def _l4_answer(self, data: bytes, src: int, hops: int, now: float) -> None:
        for probe in self.l4:
            answer = probe.match6(data, src, hops)
            if answer is not None:
                break
        else:
            self.ignored += 1
            return
        i = self.t.index(src)
        if i is None:
            self.ignored += 1
            return
        self.received += 1
        self._found(i, self.kind_of[probe], answer.reason, f"{answer.reason}/{probe.kind}:{probe.port}", hops, now)


class _Run6(_Receive6):
    """One IPv6 sweep: the retry rounds, the sends, and the rows."""

    # -- rounds ---------------------------------------------------------------------
    def execute(self) -> None:
        # The rounds as engine.py runs them (rounds.Round): a slow answer (to an earlier round's echo) is no sign of loss
        self.t0 = time.monotonic()
        try:
            for r in self.rounds.each(self) if self.socks else ():
                todo = silent(self.state) if r.number else range(self.n)  # a group is silent until one member answers
                count = self._send_round(todo, r.number)
                self.resent += count if r.number else 0
                self._wait(r.wait())
                if (self.answered >= self.n and not self.groups) or self.stopped():
                    break
                rest = r.rest()
                if rest is not None:
                    self._wait(rest)
                    break
        finally:
            self.t1 = time.monotonic()
            self.prober.previous = [*self.prober.previous[-7:], self.base]

    def _passes(self, rnd: int) -> list[_Pass6]:
        out: list[_Pass6] = []
        l4 = iter(self.l4)
        for k, spec in enumerate(self.prober.specs):
            if spec.kind == "echo" and self.icmp is not None:
                out.append(_Pass6(k, self.icmp, None))
            elif spec.kind != "echo" and self.l4:
                probe = next(l4)
                out.append(_Pass6(k, self.l4_socks[probe], probe))
        if rnd and self.kinds_answered:
            out = [p for p in out if p.kind in self.kinds_answered] or out
        return out

    def _send_round(self, todo: Iterable[int], rnd: int) -> int:
        passes = self._passes(rnd)
        if rnd == 0:
            self.first_kind, self.passes = (passes[0].kind if passes else -1), len(passes)
        count = 0
        for p in passes:  # one kind after the other; who answered an earlier kind is skipped by the later ones
            count += self._send_pass(todo, rnd, p)
            self._drain()
            if self.stopped():
                break
        self.sent += count
        return count

    def _batch(self, spec: _Pass6, rnd: int) -> SendBatch:
        """The pass's send batch (one per socket for the sweep): the echo template, attempt byte set, in every slot;
        for a TCP/UDP probe its length (the probe writes itself)."""
        batch = self.batches.get(id(spec.sock))
        if batch is None:
            batch = self.batches[id(spec.sock)] = SendBatch(spec.sock, SEND_BATCH, family=socket.AF_INET6)
        if spec.probe is None:
            echo = bytearray(_ECHO6)
            echo[8] = rnd  # the attempt: the payload's first byte
            for at in range(batch.head, SEND_BATCH * batch.slot, batch.slot):
                batch.area[at:at + len(echo)] = echo
            batch.set_length(len(echo))
        else:
            batch.set_length(len(spec.probe.template))
        return batch

    def _send_pass(self, todo: Iterable[int], rnd: int, spec: _Pass6) -> int:
        # The send loop: each echo written in place into a SendBatch slot (its sockaddr_in6 and id/seq in one pack_into);
        # a batch of TCP/UDP probes is written whole at its flush (L4Probe.write_targets, one call per batch, as
        # engine.py's); 256 to a sendmmsg(2): a call per packet costs speed.
        state, hi, lo, unscoped = self.state, self.t.hi, self.t.lo, self.t.unscoped
        scopes = [scope_word(s.ifindex) for s in self.t.scoped]
        interval = 1.0 / self.prober.rate if self.prober.rate else 0.0
        limit = 1 if interval else SEND_BATCH
        next_at = time.monotonic()
        probe, base, clock, pack_into, fam = spec.probe, self.base, time.monotonic, struct.pack_into, FAMILY6
        batch = self._batch(spec, rnd)
        area, slot = batch.area, batch.slot
        held = array("I", bytes(4 * SEND_BATCH))  # the target index in each slot
        count = k = 0
        for i in todo:
            if state[i]:
                continue
            if i >= unscoped:
                if probe is not None:
                    continue  # TCP/UDP go to unscoped targets only
                scope = scopes[i - unscoped]
            else:
                scope = 0
            if interval:
                now = clock()
                if now < next_at:
                    self._wait(next_at - now)
                next_at = max(next_at + interval, clock() - interval)
            if probe is None:
                pack_into("!HHIQQIHHHH", area, k * slot, fam, 0, 0, hi[i], lo[i], scope, _ECHO_REQUEST << 8, 0,
                          (base + (i >> 16)) & 0xFFFF, i & 0xFFFF)  # the checksum is the kernel's (RFC 3542 3.1)
            held[k] = i
            k += 1
            if k >= limit:
                count += self._flush(batch, held, k, rnd, spec)
                k = 0
                if self.stopped():
                    return count
        return count + self._flush(batch, held, k, rnd, spec)

    def _flush(self, batch: SendBatch, held: array[int], count: int, rnd: int, spec: _Pass6) -> int:
        """Send the ``count`` probes waiting in ``batch`` (target indices in ``held``) under the one send policy
        (transport.SendBatch.send_all: a probe the kernel refuses counts as sent and failed), then drain."""
        if not count:
            return 0
        if spec.probe is not None:  # the TCP/UDP probes of the whole batch, written now (see _send_pass)
            hi, lo = self.t.hi, self.t.lo
            spec.probe.write_targets(batch.area, batch.slot, [(hi[i] << 64) | lo[i] for i in held[:count]])
        sent_at, attempt = self.sent_at, self.attempt
        now = time.time()  # wall clock, as the answers' kernel timestamps
        for k in range(count):
            i = held[k]
            sent_at[i] = now
            attempt[i] = rnd
        self.send_errors += batch.send_all(count, self._drain)
        if self.tap is not None:
            proto = spec.probe.proto if spec.probe is not None else 58
            for k in range(count):
                self.tap.write(batch.packet(k), self.tap.local, self.t[held[k]].to_bytes(16, "big"), proto, 64)
        self._drain()
        return count

    # -- results ------------------------------------------------------------------------
    def results(self, down: bool = True) -> tuple[HostResult, ...]:
        """Every target's row in address order (a host found up: the row ``found`` got), then the multicast members';
        without ``down`` no row for a silent unscoped target (the walk lists those), as the IPv4 part has it."""
        out: list[HostResult] = []
        t, rows = self.t, self.rows
        answered = {g for g, _ in self.members.values()}
        picked: Iterable[int] = range(self.n)
        if not down:  # the decided unscoped targets (a state byte not 0), then the scoped ones
            picked = itertools.chain(itertools.compress(range(t.unscoped), self.state), range(t.unscoped, self.n))
        for i in sorted(picked, key=t.__getitem__):
            scope = t.scope(i)
            if scope is not None and scope.multicast:
                if i not in answered:
                    out.append(HostResult(str(scope), "down"))
                continue
            out.append(rows.get(i) or self.row(i))
        out += [row for _, (_, row) in sorted(self.members.items())]
        return tuple(out)

    def stats(self) -> SweepStats:
        duration = max(self.t1 - self.t0, 1e-9)
        unreachable = self.state.count(_DOWN_UNREACH)
        return SweepStats(targets=self.n, sent=self.sent, received=self.received, duplicates=self.duplicates,
                          late=self.late, retries=self.resent, unreachable=unreachable, ignored=self.ignored,
                          send_errors=self.send_errors, duration_s=round(duration, 6),
                          pps=round(self.sent / duration, 1), engine="raw", method="icmp", interrupted=self.stopped())
