"""The batched probe engine behind ``recon sweep`` (and ``recon watch``), ARCHITECTURE.md.

Scapy builds each probe template once. The hot loop then only patches the
per-target fields in place, in the slots of a ``transport.SendBatch``, and hands
256 probes at a time to the kernel with one ``sendmmsg(2)``:

* ICMP (routed targets): ``SOCK_RAW/IPPROTO_ICMP``; the probe's ICMP id and seq
  encode the target's index in this sweep (``id = base + index >> 16``,
  ``seq = index & 0xffff``, ``base`` random per sweep), and the payload's first
  byte carries the attempt number. A reply is ours only when its (source, id,
  seq) decode to an index whose address is that source; ICMP errors
  (unreachable, time exceeded) quote our probe, so the quoted destination, id
  and seq must match. Anything else (other processes' pings) is ignored.
  ``IcmpMatcher`` does this from the bytes alone, so it is tested without a network.
* ARP (on-link targets): an ``AF_PACKET`` socket with a prebuilt who-has frame;
  replies are keyed by the sender's IPv4 address.

Replies are drained after each batch, by ``recvmmsg(2)`` (the receive buffer is
64 MiB), the sweep stops as soon as every target has answered, and retries go
only to the silent. TCP/UDP probes leave from the source address the kernel
picks for each target's route (``route_sources``), as ICMP probes do.
``engine="scapy"`` runs Scapy's ``sr()``/``srp()`` in one batched call instead:
the slow reference the tests compare against.

Every socket comes from a ``Transport`` (recon/transport.py): the kernel's by default,
``ReplayTransport`` in tests, which answers from recorded captures without root.
"""

from __future__ import annotations

import bisect
import functools
import ipaddress
import itertools
import queue
import random
import select
import socket
import struct
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any

from recon import scapyload
from recon.arp import ETH_P_ARP, Link, arp_request_template, link, onlink_routes, routes, vendor, with_sender
from recon.engine6 import Prober6, probes_for_v6
from recon.errors import InvalidOption, check_range
from recon.icmp import REPLY_TO, icmp_name, quoted_probe
from recon.models import HostResult, SweepResult, SweepStats
from recon.packets import ipv4_header
from recon.probes import ICMP_KINDS, L4_KINDS, Cookies, L4Probe, ProbeSpec, csum_fold, icmp_probes, l4_probes, parse_probes
from recon.rounds import ADAPTIVE_RETRIES as ADAPTIVE_RETRIES  # the retry cap, where callers have found it
from recon.rounds import Rounds, silent
from recon.targets import address_key, build_targets, int_to_ip, ip_to_int, is_ipv4, parse_shard
from recon.transport import (
    FAMILY4,
    RECV_BATCH,
    SEND_BATCH,
    STAMP_SPACE,
    PacketSocket,
    ProbeSockets,
    RecvBatch,
    SendBatch,
    SendPool,
    Transport,
    big_buffers,
    default_transport,
    interface_lost,
    prepare_probe_socket,
    received_ns,
    require_raw,
    send_threads,
    stamp_receive_times,
)

if TYPE_CHECKING:
    from recon.pcap import PcapWriter
    from recon.targets import TargetSet, Walk

__all__ = ["ENGINES", "METHODS", "PROBES", "IcmpMatcher", "Prober", "SweepStream", "parse_shard", "probe_template", "reverse_dns",
           "sweep", "sweep_iter"]

METHODS = ("auto", "icmp", "arp")
PROBES = {"echo": (8, 0), "timestamp": (13, 14), "mask": (17, 18)}  # request type, reply type
ENGINES = ("raw", "scapy")
MAX_TIMEOUT = 3600  # seconds, as ping caps its waits: a finite wait, whatever is typed
MIN_RATE, MAX_RATE = 0.01, 1e8  # probes per second: below one per 100 s is a typo; above, no interface sends
_REPLY_TYPES4 = frozenset(reply for request, reply in REPLY_TO.items() if request < 128)
_PENDING, _UP, _UNREACH = 0, 1, 2
_LATE_MEMORY = 8  # previous sweeps whose ids still count as "late", not "ignored"
# reply codes beyond ICMP types: answers to TCP/UDP probes, ARP, ourselves
_SYN_ACK, _RST, _UDP_REPLY, _PORT_UNREACH, _LOCALHOST, _ARP_REPLY = 250, 251, 252, 253, 254, 255
_L4_NAMES = {_SYN_ACK: "syn-ack", _RST: "rst", _UDP_REPLY: "udp-reply", _PORT_UNREACH: "port-unreachable"}
_L4_CODES = {name: code for code, name in _L4_NAMES.items()}


def probe_template(probe: str) -> tuple[bytes, int]:
    """The ICMP probe (id = seq = 0, checksum 0, 8-byte payload for echo) built by Scapy, and its checksum partial sum.

    The partial sum lets the hot loop compute each probe's checksum from its id,
    seq and attempt byte in a few integer operations (RFC 1624 style).
    """
    (icmp,) = icmp_probes([ProbeSpec(probe)])
    return icmp.template, icmp.partial


def check_sweep_options(*, timeout: float | None = None, retries: int | None = None, rate: float | None = None) -> None:
    """The sweep's ranges (InvalidOption outside them), for both engines, the cluster and NDP."""
    check_range("--timeout", timeout, 0, MAX_TIMEOUT, f"seconds from 0 to {MAX_TIMEOUT}")
    check_range("--retries", retries, 0, 100, "a whole number from 0 to 100")
    check_range("--rate", rate, MIN_RATE, MAX_RATE, f"packets per second from {MIN_RATE:g} to {MAX_RATE:g}")


class Prober:
    """Keeps its sockets open between sweeps (watch calls .sweep() every round)."""

    def __init__(self, *, method: str = "auto", probe: str | Sequence[str] | None = "echo", engine: str = "raw",
                 interface: str | None = None, source: str | None = None, rate: float | None = None,
                 transport: Transport | None = None) -> None:
        """``probe``: one spec or several (``echo``, ``timestamp``, ``mask``, ``syn:443,80``, ``ack:80``,
        ``udp:53``), all sent to every routed target in the same pass; None is nmap's host-discovery set
        (echo, SYN to 443, ACK to 80, timestamp), the CLI's default."""
        if method not in METHODS:
            raise InvalidOption("--method", method, f"one of {', '.join(METHODS)}")
        specs = parse_probes(probe)
        if engine not in ENGINES:
            raise InvalidOption("--engine", engine, f"one of {', '.join(ENGINES)}")
        check_sweep_options(rate=rate)
        if source is not None and not is_ipv4(source) and not _is_ipv6(source):
            raise InvalidOption("--source", source, "an IPv4 or IPv6 address of this machine")
        if source is not None and is_ipv4(source):  # decimal octets, as targets are read: bind()'s inet_aton reads '010' as 8
            source = ".".join(str(int(octet)) for octet in source.split("."))
        if engine == "scapy" and any(p.kind in L4_KINDS for p in specs):
            if probe is not None:
                raise InvalidOption("--engine", engine, "the Scapy reference engine sends ICMP and ARP only; "
                                    "use --engine raw for TCP/UDP probes")
            specs = tuple(p for p in specs if p.kind in ICMP_KINDS)[:1]
        self.given = probe is not None  # the user chose the probes (the IPv6 part then insists on one that exists there)
        self.specs = specs
        icmp_kinds = [p.kind for p in specs if p.kind in ICMP_KINDS]
        self.method, self.probe, self.engine = method, (icmp_kinds[0] if icmp_kinds else ""), engine
        self.interface, self.source, self.rate = interface, source, rate
        self.sport = random.randint(40000, 60999)  # TCP probes' source port (the kernel RSTs what comes back)
        self.transport = transport if transport is not None else default_transport()
        self._l4 = ProbeSockets(self.transport, socket.AF_INET, interface, "recon sweep (TCP/UDP probes)")
        self._icmp: PacketSocket | None = None
        self._arp: PacketSocket | None = None
        self._arp_iface: str | None = None
        self._arp_link: Link | None = None
        self._previous_bases: deque[int] = deque(maxlen=_LATE_MEMORY)
        self._v6: Prober6 | None = None
        self._closed = False
        self._no_ipv4: InvalidOption | None = None  # --interface has no IPv4 address: fine for IPv6 targets only
        if interface is not None:
            try:
                self._arp_link = link(interface, self.transport)  # validates the name in this namespace
            except InvalidOption as exc:
                try:
                    self.transport.hardware(interface)
                except OSError:
                    raise exc from None
                self._no_ipv4 = exc

    # -- sockets ---------------------------------------------------------------
    def _icmp_socket(self) -> PacketSocket:
        if self._icmp is None:
            s, _ = self.transport.icmp(socket.AF_INET, what="recon sweep")  # raw only: sweep has no datagram fallback
            self._icmp = prepare_probe_socket(s, socket.AF_INET, interface=self.interface, source=self.source)
        return self._icmp

    def _arp_socket(self, iface: str) -> PacketSocket:
        if self._arp is not None and self._arp_iface != iface:  # a later sweep on another segment
            self._arp.close()
            self._arp = None
        if self._arp is None:
            s = self.transport.packet(iface, ETH_P_ARP, what="recon sweep (ARP)")
            try:
                big_buffers(s)
                s.setblocking(False)
            except BaseException:
                s.close()
                raise
            self._arp, self._arp_iface = s, iface
        return self._arp

    def _l4_sockets(self, source: str) -> dict[int, PacketSocket]:
        """Raw TCP/UDP sockets bound to ``source`` (--source), or unbound for ``""``: then the kernel picks each
        probe's source by its route, as for ICMP, and the probes' checksums are computed for that pick."""
        return self._l4.get(source, (socket.IPPROTO_UDP if p.kind == "udp" else socket.IPPROTO_TCP
                                     for p in self.specs if p.kind in L4_KINDS))

    def close(self) -> None:
        for s in (self._icmp, self._arp):
            if s is not None:
                s.close()
        self._l4.close()
        if self._v6 is not None:
            self._v6.close()
        self._icmp = self._arp = None
        self._closed = True

    def __enter__(self) -> Prober:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- planning ----------------------------------------------------------------
    def _plan(self, addrs: array[int]) -> tuple[bytearray | None, Link | None]:
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
        lnk = self._arp_link if self._arp_link is not None and self._arp_link.name == chosen else link(chosen, self.transport)
        if self.source and not lnk.sender:
            lnk = with_sender(lnk, self.source, self.transport)  # --source is the ARP requests' sender too, as fping -S gets
        self._arp_link = lnk
        return kind, lnk

    def _l4_plan(self, addrs: array[int], kind: bytearray | None) -> _L4Plan | None:
        """The TCP/UDP probes of this sweep and their sockets, or None (no such probes, or no route)."""
        specs = [p for p in self.specs if p.kind in L4_KINDS]
        if not specs:
            return None
        if self.source is not None:
            socks = self._l4_sockets(self.source)
            probes = l4_probes(specs, Cookies(), ip_to_int(self.source), self.sport)
            return _L4Plan(probes, socks.get(socket.IPPROTO_TCP), socks.get(socket.IPPROTO_UDP))
        sources, source_of = route_sources(addrs, kind, self.transport, self.interface)
        if not sources:
            return None  # no route: the ICMP sends say so (send_errors)
        socks = self._l4_sockets("")
        cookies = Cookies()
        by_source = tuple(l4_probes(specs, cookies, ip_to_int(src), self.sport) for src in sources)
        return _L4Plan(by_source[0], socks.get(socket.IPPROTO_TCP), socks.get(socket.IPPROTO_UDP), by_source, source_of)

    # -- the sweep ------------------------------------------------------------------
    def sweep(self, targets: TargetSet, *, timeout: float = 1.0, retries: int | None = 1, seed: int | None = None,
              shard: tuple[int, int] = (1, 1), pcap: str | None = None, resolve: bool = False,
              progress: Callable[[int, int], None] | None = None, local: str | Sequence[str] = ()) -> SweepResult:
        """Every target (of this shard) with its status (IPv4 in address order, then IPv6), and the counters.

        ``retries=None`` adapts: the silent are probed again while the last retry round still found hosts (a
        sign of loss), at most ``ADAPTIVE_RETRIES`` times. Built on ``sweep_iter`` (a big range: use that).
        """
        with self.sweep_iter(targets, timeout=timeout, retries=retries, seed=seed, shard=shard, pcap=pcap,
                             resolve=resolve, progress=progress, local=local) as stream:
            hosts = _in_address_order(stream)
        return SweepResult(hosts=hosts, stats=stream.stats)

    def sweep_iter(self, targets: TargetSet, *, timeout: float = 1.0, retries: int | None = 1, seed: int | None = None,
                   shard: tuple[int, int] = (1, 1), pcap: str | None = None, resolve: bool = False,
                   progress: Callable[[int, int], None] | None = None, down: bool = True,
                   local: str | Sequence[str] = ()) -> SweepStream:
        """The sweep of ``sweep()`` as a stream of ``HostResult``s, each yielded as soon as it is decided.

        IPv4 hosts that are up come while probes still go out; unreachable and (with ``down``) down rows
        follow, in address order, once the last wait ends (a scoped target's down row comes either way: the
        walk, which lists the others, does not hold it); then the IPv6 part's (engine6.py), which runs
        beside the IPv4 part (on a thread of its own: a mixed sweep takes the longer part's time, not the
        sum): the hosts it found up meanwhile at once, each later one as soon as its answer is matched, its
        other rows when its wait ends. ``local``
        (``sweep --local IFACE``, one interface or several) adds every IPv6 host on each one's link
        (``ndp.discover_parts``, on a thread of its own beside the IPv4 part, as the IPv6 part): its hosts come
        after the IPv4 part's rows (those it found meanwhile at once), each later one as it answers, an address once.
        Per IPv4 target only compact arrays are kept. ``resolve`` names the hosts that are up: each comes once
        its name is known or its lookup's 2 s are up (``_Names``). Options and interfaces are checked and
        sockets opened here, before the first packet
        (``pcap`` is then Ethernet when ``local`` or ARP puts frames in it, the IP packets framed);
        ``stream.stop()`` (safe in a signal handler) ends the sweep early with what was decided.
        """
        if self._closed:
            raise RuntimeError("this Prober is closed")
        check_sweep_options(timeout=timeout, retries=retries)
        walk = targets.walk(seed, shard)
        addrs = array("I", walk)
        if addrs and self._no_ipv4 is not None:
            raise self._no_ipv4
        v6 = self._v6_prober(targets, len(addrs) > 0)
        ifaces = _local_links(self, local, targets.total)
        progress4 = progress6 = progress
        if progress is not None and addrs and v6 is not None:  # both parts run at once: one bar for the two
            progress4, progress6 = _Progress(progress).parts()
        run = _ipv4_run(self, addrs, walk, timeout, retries, progress4) if addrs or (v6 is None and not ifaces) else None
        writer = _pcap_writer(pcap, ethernet=bool(ifaces) or (run is not None and run.kind is not None))
        if run is not None:
            run.pcap = writer
            if (v6 is not None or ifaces) and isinstance(run, _RawReceive):
                _kernel_stamps(run)  # the IPv6 or --local thread beside it makes read times late (ARCHITECTURE.md: engine.py)
        part6 = None
        if v6 is not None:  # the IPv6 part runs beside the IPv4 one, into the same stream (ARCHITECTURE.md: engine6.py)
            part6 = functools.partial(v6.sweep, targets.v6, targets.scoped, seed=seed, shard=shard, timeout=timeout,
                                      retries=retries, progress=progress6, pcap=writer, down=down)
        onlink = None
        if ifaces:
            from recon.ndp import discover_parts

            onlink = functools.partial(discover_parts, local=ifaces, transport=self.transport, timeout=timeout, retries=retries,
                                       rate=self.rate, tap=writer.write if writer is not None else None,
                                       source=self.source if self.source is not None and _is_ipv6(self.source) else None)
        # without down the IPv6 part gives its silent targets no row: --local's rows are checked against its walk
        walk6 = targets.v6.walk(seed, shard) if part6 is not None and onlink is not None and not down else None
        return SweepStream(run, targets.names, down=down, resolve=resolve, pcap=writer, part6=part6, local=onlink,
                           walk6=walk6)

    def _v6_prober(self, targets: TargetSet, has_v4: bool) -> Prober6 | None:
        """The IPv6 part's prober (engine6.py) when ``targets`` has IPv6 or scoped targets; checked before anything is sent."""
        v6_source = self.source if self.source is not None and _is_ipv6(self.source) else None
        if has_v4 and v6_source is not None:
            raise InvalidOption("--source", v6_source, "an IPv6 source cannot reach the IPv4 targets; sweep them apart")
        if targets.total == len(targets):
            return None
        if self.engine == "scapy":
            raise InvalidOption("--engine", "scapy", "the Scapy reference engine sweeps IPv4 only; use --engine raw for IPv6")
        if self.method == "arp":
            raise InvalidOption("--method", "arp", "ARP is IPv4's; IPv6 targets go by ICMPv6 (use --method auto or icmp)")
        if not has_v4 and self.source is not None and v6_source is None:
            raise InvalidOption("--source", self.source, "an IPv4 source cannot reach IPv6 targets; give an IPv6 address")
        specs = probes_for_v6(self.specs, self.given)
        if self._v6 is None or self._v6.specs != specs or self._v6.source != v6_source:
            if self._v6 is not None:
                self._v6.close()
            self._v6 = Prober6(specs, interface=self.interface, source=v6_source, rate=self.rate,
                               transport=self.transport, sport=self.sport, method=self.method)
        self._v6.icmp_socket()  # opened before the IPv4 part sends anything: no privileges → nothing sent
        return self._v6


def sweep(targets: TargetSet | Iterable[str] | str, *, method: str = "auto", probe: str | Sequence[str] | None = "echo",
          engine: str = "raw",
          interface: str | None = None, source: str | None = None, rate: float | None = None,
          transport: Transport | None = None, **kwargs: Any) -> SweepResult:
    """One sweep: ``Prober(...)`` + ``.sweep(...)`` + close. Targets may be a TargetSet or specs."""
    with sweep_iter(targets, method=method, probe=probe, engine=engine, interface=interface, source=source, rate=rate,
                    transport=transport, **kwargs) as stream:
        hosts = _in_address_order(stream)
    return SweepResult(hosts=hosts, stats=stream.stats)


def sweep_iter(targets: TargetSet | Iterable[str] | str, *, method: str = "auto", probe: str | Sequence[str] | None = "echo",
               engine: str = "raw", interface: str | None = None, source: str | None = None, rate: float | None = None,
               transport: Transport | None = None, **kwargs: Any) -> SweepStream:
    """One sweep as a stream (``Prober(...).sweep_iter(...)``): hosts as they are decided, ``stream.stats`` at
    the end; the sockets close when the stream is closed (use it as a context manager). Targets may be a
    TargetSet or specs."""
    if not hasattr(targets, "order"):
        targets = build_targets([targets] if isinstance(targets, str) else list(targets), yes=True)
    prober = Prober(method=method, probe=probe, engine=engine, interface=interface, source=source, rate=rate,
                    transport=transport)
    try:
        stream = prober.sweep_iter(targets, **kwargs)  # type: ignore[arg-type]  # a TargetSet by now; mypy does not narrow on hasattr
    except BaseException:
        prober.close()
        raise
    stream.on_close(prober.close)
    return stream


def _arrivals(batch: RecvBatch, stamped: bool) -> Iterator[tuple[bytes, float]]:
    """Every packet waiting on ``batch``'s socket and when it arrived, on the monotonic clock of the send times:
    with ``stamped`` the kernel's receive time (SO_TIMESTAMPNS, wall clock, moved onto the monotonic clock once
    per read), else when Python got to it. A read of fewer than the batch's size ends it (the queue ran dry)."""
    clock = time.monotonic
    while True:
        if stamped:
            msgs = batch.recv_msgs()
            read = clock()
            offset = time.time() - read
            for data, _, control in msgs:
                stamp = received_ns(control)
                yield data, stamp / 1_000_000_000 - offset if stamp else read
            got = len(msgs)
        else:
            packets = batch.recv()
            for data in packets:
                yield data, clock()
            got = len(packets)
        if got < batch.size:
            return


def _kernel_stamps(run: _RawReceive) -> None:
    """Time ``run``'s answers by the kernel's receive time: in a mixed sweep (or with ``--local``) the other part's
    thread holds the GIL up to sys.getswitchinterval() (5 ms) at a time, so when Python reads an IPv4 answer says
    little."""
    for sock in run.socks:
        stamp_receive_times(sock)
    run.stamped = True


def _ipv4_run(prober: Prober, addrs: array[int], walk: Walk, timeout: float, retries: int | None,
              progress: Callable[[int, int], None] | None) -> _Run:
    """The IPv4 part's engine, its sockets open (no privileges → nothing sent)."""
    kind, lnk = prober._plan(addrs)
    if prober.engine == "scapy":
        require_raw("recon sweep", prober.transport)
        return _ScapySweep(prober, addrs, walk, kind, lnk, timeout, 1 if retries is None else retries)
    routed = kind is None or 0 in kind
    icmp = prober._icmp_socket() if routed else None
    arp = prober._arp_socket(lnk.name) if kind is not None and 1 in kind and lnk is not None else None
    l4 = prober._l4_plan(addrs, kind) if routed else None
    return _RawSweep(prober, addrs, walk, kind, lnk, (icmp, arp, l4), timeout, retries, progress)


def _local_links(prober: Prober, local: str | Sequence[str], targets: int) -> tuple[str, ...]:
    """``local``'s interfaces, each checked (an Ethernet interface with IPv6 here; an IPv6 ``--source`` one of its
    addresses) before anything is sent; an IPv4 ``--source`` only with other targets, which it is for."""
    ifaces = tuple(dict.fromkeys((local,) if isinstance(local, str) else local))
    if not ifaces:
        return ()
    from recon.ndp import link6

    source = prober.source
    if source is not None and not _is_ipv6(source) and not targets:
        raise InvalidOption("--source", source, f"an IPv4 address cannot send to the IPv6 hosts --local finds; give an "
                            f"IPv6 address of {ifaces[0]}, or leave --source out")
    for iface in ifaces:
        lnk = link6(iface, prober.transport, option="--local")
        if source is not None and _is_ipv6(source):
            lnk.own(source)
    return ifaces


def _in_address_order(hosts: Iterable[HostResult]) -> tuple[HostResult, ...]:
    """The rows in the one address order (``targets.address_key``: IPv4, then IPv6, scope as tiebreak)."""
    return tuple(sorted(hosts, key=lambda h: address_key(h.address)))


def route_sources(addrs: array[int], kind: bytearray | None, transport: Transport,
                  interface: str | None = None) -> tuple[list[str], bytearray | None]:
    """The source address the kernel picks for each routed target (by its route), as a list of the distinct
    ones and, when there are several, each target's index into it (``len(list)``: no route).

    The routing table's prefixes cut the address space into stretches that one route covers; the kernel's
    pick is asked once per stretch that holds a target (``route_source``: a UDP connect, nothing sent), so
    a range behind one route costs one lookup. Policy rules that choose by destination within a stretch of
    the main table are not seen (one lookup stands for the stretch)."""
    edges = sorted({0, *(e for r in routes(usable_only=False) for e in (r.net, (r.net | (~r.mask & 0xFFFFFFFF)) + 1))})
    sources: list[str] = []
    picks: dict[int, int] = {}  # stretch → index into sources (255: no route)

    def pick(address: int) -> int:
        stretch = bisect.bisect_right(edges, address)
        if stretch not in picks:
            try:
                src = transport.route_source(int_to_ip(address), interface=interface)
            except OSError:
                picks[stretch] = 255
            else:
                if src not in sources:
                    sources.append(src)
                picks[stretch] = sources.index(src)
        return picks[stretch]

    routed = addrs if kind is None else array("I", (addrs[i] for i in range(len(addrs)) if not kind[i]))
    if not routed:
        return [], None
    lo, hi = min(routed), max(routed)
    if bisect.bisect_right(edges, lo) == bisect.bisect_right(edges, hi):  # one stretch: the usual case
        pick(lo)
        return sources, None
    of = bytearray(len(addrs))
    for i, a in enumerate(addrs):  # per target only when the targets span several routes
        if kind is None or not kind[i]:
            of[i] = pick(a)
    if len(sources) > 254:
        raise InvalidOption("--source", "(none)", "the targets span more than 254 source addresses; choose one")
    if len(sources) <= 1 and 255 not in of:
        return sources, None
    return sources, of.translate(bytes(range(255)) + bytes([len(sources)]))  # no route → len(sources)


# --- internals ----------------------------------------------------------------------


def _is_ipv6(text: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6, text)
    except (OSError, ValueError):
        return False
    return True


def _pcap_writer(path: str | None, *, ethernet: bool) -> PcapWriter | None:
    """The ``--pcap`` file: Ethernet when ARP frames go in it, else raw IP (IPv4 and IPv6 alike)."""
    if path is None:
        return None
    from recon.pcap import LINKTYPE_ETHERNET, LINKTYPE_RAW, PcapWriter

    return PcapWriter(path, LINKTYPE_ETHERNET if ethernet else LINKTYPE_RAW)


def _merge_stats(a: SweepStats, b: SweepStats, *, together: bool = False) -> SweepStats:
    """The counters of two parts of one sweep, which ran one after the other (or ``together``: the IPv4 and IPv6
    parts, side by side, take the longer one's time)."""
    duration = max(a.duration_s, b.duration_s) if together else a.duration_s + b.duration_s
    counts = {f: getattr(a, f) + getattr(b, f) for f in ("targets", "sent", "received", "duplicates", "late", "retries",
                                                          "unreachable", "ignored", "send_errors")}
    return SweepStats(**counts, duration_s=round(duration, 6), pps=round(counts["sent"] / max(duration, 1e-9), 1),
                      engine=a.engine, method=a.method, interrupted=a.interrupted or b.interrupted)


class _Run:
    """State shared by both engines: compact per-target arrays indexed by sweep position (about 25 bytes a
    target), and the indices decided since the stream last looked (``fresh``): no object per target."""

    pcap: PcapWriter | None = None

    def __init__(self, prober: Prober, addrs: array[int], walk: Walk, kind: bytearray | None, lnk: Link | None,
                 timeout: float, retries: int) -> None:
        self.prober = prober
        self.addrs = addrs
        self.walk = walk  # address → index, without a table
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
        self.macs: dict[int, str] = {}  # index → MAC (ARP answers and ourselves: on-link only), until streamed
        self.reporter: array[int] | None = None  # who reported a target unreachable (allocated on the first one)
        self.which = bytearray()  # 1 + the TCP/UDP probe that answered (n bytes when there are such probes)
        self.l4_specs: tuple[str, ...] = ()
        self.fresh: list[int] = []  # indices that turned up since the stream last looked
        self.local: frozenset[int] | None = None  # this machine's IPv4 addresses, read when the first host is up
        self.halt = False  # stop sending and waiting: the stream was stopped (Ctrl-C)
        self.pause: Callable[[], bool] | None = None  # the waits pause when this says so (names looked up, -R)
        self.sent = self.received = self.duplicates = self.late = self.resent = 0
        self.ignored = self.send_errors = 0
        self.t0 = self.t1 = 0.0
        self.paused = 0.0  # time the stream spent making rows and handing them out, mid-sweep
        self.answered = 0

    def mark_local(self) -> None:
        """Our own address on the swept segment is up (as nmap reports it); no one answers our own ARP."""
        if self.kind is None or self.link is None:
            return
        for mine in {self.link.address, self.link.spa}:  # the interface's address, and the ARP sender (--source)
            i = self.walk.index(mine)
            if i is not None and self.kind[i] and not self.state[i]:
                self.state[i], self.reply[i], self.rtt[i] = _UP, _LOCALHOST, 0.0
                self.macs[i] = self.link.mac_str
                self.answered += 1
                self.fresh.append(i)

    def set_reporter(self, i: int, address: int) -> None:
        if self.reporter is None:
            self.reporter = array("I", bytes(4 * self.n))
        self.reporter[i] = address

    def execute(self) -> None:
        raise NotImplementedError

    def steps(self) -> Generator[None, None, None]:
        """Run the sweep, pausing (yielding) whenever hosts were decided, so they stream out while it runs.
        This one runs it in one go; the raw engine pauses at its drain points."""
        self.execute()
        yield

    def host(self, i: int, names: dict[int, str]) -> HostResult:
        """Target ``i``'s row, from the arrays. The scanner's own addresses that are up get reason ``self`` (nmap
        counts them up too; no reply on the wire found them: ARP is not answered for our own address, and an echo
        to it comes back through the loopback)."""
        a, st = self.addrs[i], self.state[i]
        address = int_to_ip(a)
        name = names.get(a) if names else None
        if st == _PENDING:
            return HostResult(address, "down", hostname=name)
        r, rtt = self.reply[i], self.rtt[i]
        ms = round(float(rtt), 3) if rtt >= 0 else None
        if st == _UP and self.local is None:
            self.local = frozenset(ip_to_int(x) for x in self.prober.transport.local_ipv4())
        mine = st == _UP and self.local is not None and a in self.local
        if r >= _LOCALHOST:
            mac = self.macs.pop(i, None) or ""
            why = "arp-reply" if r == _ARP_REPLY else "self"
            return HostResult(address, "up", ms, None, why, mac, vendor(mac), name, reason="self" if mine else why)
        if st == _UP and r in _L4_NAMES:
            why = _L4_NAMES[r]
            return HostResult(address, "up", ms, self.ttl[i], f"{why}/{self.l4_specs[self.which[i] - 1]}", hostname=name,
                              reason="self" if mine else why)
        if st == _UP:
            why = icmp_name(r, 0)
            return HostResult(address, "up", ms, self.ttl[i], why, hostname=name, reason="self" if mine else why)
        why = icmp_name(r, self.code[i])
        reporter = int_to_ip(self.reporter[i]) if self.reporter is not None else None
        return HostResult(address, "unreachable", ms, self.ttl[i], why, hostname=name, reporter=reporter, reason=why)

    def take_fresh(self, names: dict[int, str]) -> list[HostResult]:
        """The rows of the hosts that turned up since the last call."""
        batch = [self.host(i, names) for i in self.fresh]
        self.fresh.clear()
        return batch

    def rest(self, names: dict[int, str], down: bool) -> Iterator[HostResult]:
        """After the last wait: the unreachable (and with ``down`` the silent) targets, in address order."""
        state = self.state
        if down:
            for _, i in self.walk.by_address():
                if state[i] != _UP:
                    yield self.host(i, names)
            return
        unreachable = []
        i = state.find(_UNREACH)
        while i >= 0:
            unreachable.append(i)
            i = state.find(_UNREACH, i + 1)
        for i in sorted(unreachable, key=self.addrs.__getitem__):
            yield self.host(i, names)

    def stats(self) -> SweepStats:
        duration = max(self.t1 - self.t0 - self.paused, 1e-9)  # the engine's time, not the caller's with the hosts
        method = "icmp" if self.kind is None else ("arp" if 0 not in self.kind else "arp+icmp")
        return SweepStats(
            targets=self.n, sent=self.sent, received=self.received, duplicates=self.duplicates, late=self.late,
            retries=self.resent, unreachable=self.state.count(_UNREACH), ignored=self.ignored,
            send_errors=self.send_errors, duration_s=round(duration, 6), pps=round(self.sent / duration, 1),
            engine=self.prober.engine, method=method, interrupted=self.halt,
        )


class SweepStream:
    """The hosts of one sweep, each as soon as it is decided (``Prober.sweep_iter``, ``recon.sweep_iter``).

    Iterate for ``HostResult``s, or ``batches()`` for lists (one per moment hosts were decided: a printer
    writes and flushes once per batch). ``stats`` holds the counters, final once the iteration has ended.
    ``stop()`` ends the sweep early and is safe to call from a signal handler: sending and waiting stop at
    the next drain point, the hosts decided by then still come, the silent do not, and ``stats.interrupted``
    is True. As a context manager, leaving it ends the sweep and closes the pcap file (and, from
    ``recon.sweep_iter``, the sockets).
    """

    def __init__(self, run: _Run | None, names: dict[int, str], *, down: bool, resolve: bool, pcap: PcapWriter | None = None,
                 part6: Callable[[], tuple[tuple[HostResult, ...], SweepStats]] | None = None,
                 local: Callable[..., Iterator[SweepResult]] | None = None, walk6: Walk | None = None) -> None:
        self._run, self._pcap = run, pcap
        self._v6 = _OnLinkRows(part6, local, down, walk6) if part6 is not None or local is not None else None
        self._halt = False
        self._batches = self._generate(names, down, resolve)
        self._closers: list[Callable[[], None]] = []

    def _generate(self, names: dict[int, str], down: bool, resolve: bool) -> Generator[list[HostResult], None, None]:
        try:
            if self._halt:  # stopped before the first row was asked for (Ctrl-C between two shards): send nothing
                return
            namer = _Names() if resolve else None
            if self._v6 is not None:
                self._v6.start(lambda: self._halt)  # on its own thread, beside the IPv4 part
            if self._run is not None:
                yield from self._part4(self._run, names, down, namer)
            if self._v6 is not None:
                cut = self.interrupted  # stopped in the IPv4 part: what its threads found up by then, as the IPv4 part
                for batch in self._v6.batches(lambda: self._halt):
                    if batch := _named(namer, [h for h in batch if h.status == "up"] if cut else batch):
                        yield batch
                if namer is not None:
                    yield from namer.rest()
        except OSError as exc:
            lost = interface_lost(exc)
            if lost is exc:
                raise
            raise lost from None
        finally:
            if self._v6 is not None:
                self._v6.finish(self.stop)  # a stream closed early ends its IPv6 side too, before the pcap closes
            if self._pcap is not None:
                self._pcap.close()

    @staticmethod
    def _part4(run: _Run, names: dict[int, str], down: bool, namer: _Names | None) -> Generator[list[HostResult], None, None]:
        """The IPv4 part: hosts as they are decided (with ``namer``, each once its name is known or its lookup's time
        is up: the waits pause for that too), then the unreachable and down rows."""
        steps = run.steps()
        if namer is not None:
            run.pause = namer.has_ready
        try:
            for _ in steps:
                paused = time.monotonic()
                if batch := _named(namer, run.take_fresh(names) if run.fresh else []):
                    yield batch
                run.paused += time.monotonic() - paused
        finally:
            steps.close()
            run.pause = None
        if last := _named(namer, run.take_fresh(names)):
            yield last
        if namer is not None:
            yield from namer.rest()
        if not run.halt:
            rest = run.rest(names, down)
            while chunk := list(itertools.islice(rest, 4096)):
                yield chunk

    def __iter__(self) -> Iterator[HostResult]:
        return itertools.chain.from_iterable(self._batches)

    def batches(self) -> Iterator[list[HostResult]]:
        return self._batches

    @property
    def stats(self) -> SweepStats:
        """The counters so far (final once the iteration has ended); both parts' when there was an IPv6 one."""
        stats6 = self._v6.stats() if self._v6 is not None else None
        if self._run is None:
            return stats6 if stats6 is not None else SweepStats(interrupted=self._halt)
        stats = self._run.stats()
        return stats if stats6 is None else _merge_stats(stats, stats6, together=True)

    @property
    def interrupted(self) -> bool:
        return self._halt

    def stop(self) -> None:
        """End the sweep at the next drain point (from a signal handler too): no more probes, no more waiting.
        The IPv6 part's probes stop at their next batch or wait slice, and so do its on-link targets' Neighbor
        Discovery and ``--local``'s parts (Neighbor Discovery and multicast echo, on their thread); none starts
        after this."""
        self._halt = True
        if self._run is not None:
            self._run.halt = True

    def on_close(self, closer: Callable[[], None]) -> None:
        self._closers.append(closer)

    def close(self) -> None:
        try:
            self._batches.close()  # runs the generator's finally (the pcap file is closed), if it ever started
        finally:
            if self._pcap is not None:
                self._pcap.close()  # a stream closed before its first row: the generator's finally never ran
            while self._closers:
                self._closers.pop()()

    def __enter__(self) -> SweepStream:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class _Progress:
    """One progress callback for two parts that run at once (IPv4 and IPv6, each on its thread): each reports its
    own (done, total), the callback gets their sums."""

    def __init__(self, progress: Callable[[int, int], None]) -> None:
        self.progress, self.counts, self.lock = progress, [(0, 0), (0, 0)], threading.Lock()

    def parts(self) -> tuple[Callable[[int, int], None], Callable[[int, int], None]]:
        return functools.partial(self._report, 0), functools.partial(self._report, 1)

    def _report(self, part: int, done: int, total: int) -> None:
        with self.lock:
            self.counts[part] = (done, total)
            self.progress(sum(d for d, _ in self.counts), sum(t for _, t in self.counts))


_NAMES_POLL = 0.1  # seconds: how often the stream looks for names while it waits for the IPv6 part's hosts


class _OnLinkRows:
    """The IPv6 side of a sweep, the IPv6 part (engine6) and the ``--local`` part (``ndp.discover_parts``), as
    batches of rows, an address once, as ``ndp.merge`` keeps it (up wins, the first answer stays): each host
    ``--local`` finds as soon as it answers, then the IPv6 part's rows but those, then (with ``down``) the
    ``--local`` rows nobody found up. ``--local``'s parts and the IPv6 part each run on a thread of their own from
    ``start()``, beside the IPv4 part (a sweep takes the longest part's time, not the sum), and hand over each host
    they find up (``found=``); the rows are yielded in their place (what a part found while the parts before it
    were yielded at once, then each as it is found, then its other rows when it ends), so they keep the order
    they had when the parts ran one after the other. Only on-link rows are held: a link's hosts and a prefix of
    4,096 at most."""

    def __init__(self, part6: Callable[..., tuple[tuple[HostResult, ...], SweepStats]] | None,
                 local: Callable[..., Iterator[SweepResult]] | None, down: bool, walk6: Walk | None = None) -> None:
        self.part6, self.local, self.down = part6, local, down
        self.walk6 = walk6  # the IPv6 part's targets (without down: its silent ones have no row to match)
        self.stats6: SweepStats | None = None
        self.stats_local: list[SweepStats] = []
        self.local_rows = self.overlap = 0  # addresses --local reported; of those, how many the IPv6 part did too
        self.up: set[str] = set()
        self.held: dict[str, HostResult] = {}  # --local's down rows, until no one else has found them up
        self.shown6: set[str] = set()  # the IPv6 part's hosts yielded as it found them up
        # the IPv6 part's thread hands over each host it finds up, then its result (or what it raised)
        self.done6: queue.SimpleQueue[HostResult | SweepResult | BaseException] = queue.SimpleQueue()
        self.worker: threading.Thread | None = None
        # --local's thread hands over each host it finds up and each part's result (or what it raised), then None
        self.inbox: queue.SimpleQueue[HostResult | SweepResult | BaseException | None] = queue.SimpleQueue()
        self.local_worker: threading.Thread | None = None

    def start(self, stopped: Callable[[], bool]) -> None:
        """Run ``--local``'s parts and the IPv6 part each on a thread of its own from now, beside the IPv4 part (each
        host found up, then each part's result, to ``inbox`` and ``done6``); after ``stop()`` they send nothing more
        and end their waits within a slice. ``--local``'s options and interfaces are checked here, before its thread
        sends anything."""
        if self.local is not None:
            parts = self.local(found=self.inbox.put, stopped=stopped)  # discover_parts checks before it returns

            def local_work() -> None:
                try:
                    for part in parts:  # a stop ends the running part within ndp.STOP_SLICE
                        self.inbox.put(part)
                        if stopped():
                            break
                except BaseException as exc:  # handed to the stream's thread, which raises it
                    self.inbox.put(exc)
                finally:
                    self.inbox.put(None)

            self.local_worker = threading.Thread(target=local_work, daemon=True, name="recon-local")
            self.local_worker.start()
        if self.part6 is not None:
            part6 = self.part6

            def work() -> None:
                try:
                    self.done6.put(SweepResult(*part6(stopped=stopped, found=self.done6.put)))
                except BaseException as exc:  # handed to the stream's thread, which raises it
                    self.done6.put(exc)

            self.worker = threading.Thread(target=work, daemon=True, name="recon-ipv6")
            self.worker.start()

    def finish(self, stop: Callable[[], None]) -> None:
        """Wait for the threads (stopping them first when one still runs: the stream was closed early, or stopped
        while the IPv4 part ran), so nothing is sent, or written to the pcap, after the stream ends."""
        workers = [w for w in (self.local_worker, self.worker) if w is not None]
        if any(w.is_alive() for w in workers):
            stop()
        for w in workers:
            w.join()

    def batches(self, stopped: Callable[[], bool]) -> Iterator[list[HostResult]]:
        if self.local_worker is not None:
            yield from self._local(self.local_worker)
        if self.worker is not None:
            yield from self._part6(self.worker)
        if self.down and self.held and not stopped():  # after a stop the silent are undecided, as in the IPv4 part
            yield sorted(self.held.values(), key=lambda h: address_key(h.address))

    def _local(self, worker: threading.Thread) -> Iterator[list[HostResult]]:
        """The ``--local`` parts' rows from their thread: each host found as it answers (all it found while the IPv4
        part's rows were yielded come at once), each part's result as it ends (its own addresses, its down rows,
        its counters). The thread is waited for at its end, so nothing writes the pcap after the stream closes it."""
        end = False
        while not end:
            items = [self.inbox.get()]
            while not self.inbox.empty():
                items.append(self.inbox.get())
            rows = []
            for item in items:
                end = end or item is None
                if isinstance(item, BaseException):
                    raise item
                rows += self._take(item)
            self.local_rows = len(self.up) + len(self.held)
            if rows:
                yield rows
        worker.join()

    def _part6(self, worker: threading.Thread) -> Iterator[list[HostResult]]:
        """The IPv6 part's hosts as its thread finds them up (all it found while the IPv4 and ``--local`` parts
        were yielded come at once), then its other rows when it ends. While nothing comes, an empty batch every
        ``_NAMES_POLL`` s lets the stream hand over what ``-R`` has named meanwhile (``_Names.ready``)."""
        done = None
        while done is None:
            try:
                items = [self.done6.get(timeout=_NAMES_POLL)]
            except queue.Empty:
                yield []
                continue
            while not self.done6.empty():
                items.append(self.done6.get())
            rows = []
            for item in items:
                if isinstance(item, BaseException):
                    worker.join()
                    raise item
                if isinstance(item, HostResult):
                    rows += self._found6(item)
                else:
                    done = item
            if done is not None:
                worker.join()
                rows += self._take6(done)
            if rows:
                yield rows

    def _found6(self, host: HostResult) -> list[HostResult]:
        """``host``, found up by the IPv6 part, unless it was yielded already (by ``--local`` too)."""
        if host.address in self.up or host.address in self.shown6:
            return []
        self.shown6.add(host.address)
        self.overlap += self.held.pop(host.address, None) is not None
        return [host]

    def _take6(self, done: SweepResult) -> list[HostResult]:
        """The IPv6 part's rows but those yielded already (found up by ``--local``, or by the IPv6 part as it ran;
        their down rows it decides)."""
        self.stats6 = done.stats
        rows = [h for h in done.hosts if h.address not in self.up and h.address not in self.shown6]
        self.overlap += sum(1 for h in done.hosts if h.address in self.up) + sum(
            1 for h in rows if self.held.pop(h.address, None) is not None)
        if self.walk6 is not None:  # its silent targets (no row without down) that --local reported too
            reported = {h.address for h in done.hosts}
            self.overlap += sum(1 for a in itertools.chain(self.up, self.held)
                                if a not in reported and _in_walk6(self.walk6, a))
        return rows

    def _take(self, item: HostResult | SweepResult | None) -> list[HostResult]:
        """The rows of ``item`` (a host just found, or a part's result) that are new."""
        if item is None:
            return []
        if isinstance(item, HostResult):
            hosts: tuple[HostResult, ...] = (item,)
        else:
            self.stats_local.append(item.stats)
            hosts = item.hosts
        fresh = [h for h in hosts if h.status == "up" and h.address not in self.up]
        self.up.update(h.address for h in fresh)
        for h in fresh:
            self.held.pop(h.address, None)
        self.held.update((h.address, h) for h in hosts if h.status != "up" and h.address not in self.up and h.address not in self.held)
        return fresh

    def stats(self) -> SweepStats | None:
        """Both parts' counters (targets: each address once), or None before either has run."""
        parts = [self.stats6] if self.stats6 is not None else []
        if self.stats_local:
            from recon.ndp import merge

            local = merge([SweepResult((), s) for s in self.stats_local]).stats
            parts.append(replace(local, targets=self.local_rows))
        if not parts:
            return None
        total = parts[0] if len(parts) == 1 else _merge_stats(parts[0], parts[1], together=True)
        return total if not self.overlap else replace(total, targets=total.targets - self.overlap)


def _in_walk6(walk: Walk, address: str) -> bool:
    """Whether ``address`` (a row's, as ndp writes it) is one of ``walk``'s unscoped IPv6 targets."""
    if "%" in address or ":" not in address:
        return False  # a scoped target's row comes without down too
    return walk.index(int(ipaddress.IPv6Address(address))) is not None


# What IcmpMatcher says about one packet.
FOREIGN, REPLY, ERROR, LATE = 0, 1, 2, 3
_NO_MATCH = (FOREIGN, -1, -1)
_LATE_MATCH = (LATE, -1, -1)


class IcmpMatcher:
    """Which target of a sweep an ICMP packet answers, from its bytes alone (a pure function of bytes).

    ``data`` is what a raw IPv4 ICMP socket reads (IP header first). Probe ``i`` of the
    sweep went to ``addrs[i]`` with ``id = base + (i >> 16)``, ``seq = i & 0xffff``. The
    answer is ``(verdict, index, attempt)``:

    * ``REPLY``: a ``reply_type`` message (one type or several) whose id/seq decode to an index whose address
      is the reply's source; ``attempt`` is the echo payload's attempt byte (-1 when the
      probe kind carries none);
    * ``ERROR``: unreachable / time exceeded quoting our probe (ICMP, the same
      destination, id and seq; the quote is read by ``icmp.quoted_probe``);
    * ``LATE``: a reply whose id belongs to one of the ``previous`` sweeps' bases;
    * ``FOREIGN``: anything else (other processes' pings, errors about their traffic).
    """

    __slots__ = ("addrs", "base", "blocks", "n", "previous", "reply_type")

    def __init__(self, addrs: array[int], base: int, reply_type: int | Iterable[int], previous: Iterable[int] = ()) -> None:
        self.addrs, self.n, self.base = addrs, len(addrs), base
        self.reply_type = frozenset([reply_type] if isinstance(reply_type, int) else reply_type)
        self.blocks = (self.n >> 16) + 1
        self.previous = tuple(previous)

    def __call__(self, data: bytes) -> tuple[int, int, int]:
        ihl = (data[0] & 15) << 2
        if len(data) < ihl + 8:
            return _NO_MATCH
        itype = data[ihl]
        if itype in self.reply_type:
            blk = (((data[ihl + 4] << 8) | data[ihl + 5]) - self.base) & 0xFFFF
            i = (blk << 16) | (data[ihl + 6] << 8) | data[ihl + 7]
            if blk >= self.blocks or i >= self.n or self.addrs[i] != int.from_bytes(data[12:16], "big"):
                return _LATE_MATCH if self.is_previous(data) else _NO_MATCH
            return REPLY, i, data[ihl + 8] if len(data) > ihl + 8 and itype == 0 else -1
        if itype == 3 or itype == 11:
            quoted = quoted_probe(data[ihl + 8:], 4)
            if quoted is None or quoted.proto != 1 or len(quoted.l4) < 8:
                return _NO_MATCH
            blk = ((quoted.ident or 0) - self.base) & 0xFFFF
            i = (blk << 16) | (quoted.seq or 0)
            if blk >= self.blocks or i >= self.n or self.addrs[i] != ip_to_int(quoted.dst):
                return _NO_MATCH
            return ERROR, i, -1
        return _NO_MATCH

    def is_previous(self, data: bytes) -> bool:
        """True when ``data`` is an ICMP reply to one of the previous sweeps (by its id)."""
        ihl = (data[0] & 15) * 4
        if len(data) < ihl + 8 or data[ihl] not in _REPLY_TYPES4:
            return False
        ident = int.from_bytes(data[ihl + 4:ihl + 6], "big")
        return any(((ident - b) & 0xFFFF) < self.blocks for b in self.previous)


class _PcapTap:
    """Writes a raw sweep's probes and replies to ``--pcap`` (synthetic IP/Ethernet headers where the socket has none)."""

    def __init__(self, writer: PcapWriter, prober: Prober, run: _Run) -> None:
        from recon.pcap import LINKTYPE_ETHERNET

        self.writer, self.prober, self.run = writer, prober, run
        self.ethernet = writer.linktype == LINKTYPE_ETHERNET  # ARP or --local frames go in it too: IP packets framed
        self.eth_src = run.link.mac if run.link is not None else b"\0" * 6

    @functools.cached_property
    def src_addr(self) -> bytes:
        """The IPv4 source the kernel will use (for the pcap's synthetic IP headers; only a pcap asks); sends nothing."""
        if self.prober.source:
            return socket.inet_aton(self.prober.source)
        run = self.run
        routed = next((i for i in range(run.n) if not run.kind or not run.kind[i]), None)
        if routed is None:
            return b"\0" * 4
        try:
            return socket.inet_aton(self.prober.transport.route_source(int_to_ip(run.addrs[routed])))
        except OSError:
            return b"\0" * 4

    def probe(self, data: bytes | bytearray, dst: int, is_frame: bool, sock: PacketSocket | None,
              src: bytes | None = None) -> None:
        if is_frame:
            self.writer.write(bytes(data))
            return
        l4 = self.run.l4 if isinstance(self.run, _RawReceive) else None
        proto = socket.IPPROTO_TCP if l4 is not None and sock is l4.tcp else (
            socket.IPPROTO_UDP if l4 is not None and sock is l4.udp else socket.IPPROTO_ICMP)
        packet = ipv4_header(src or self.src_addr, dst.to_bytes(4, "big"), len(data), 64, True, proto) + bytes(data)
        if self.ethernet:
            packet = b"\0" * 6 + self.eth_src + b"\x08\x00" + packet
        self.writer.write(packet)

    def reply(self, data: bytes) -> None:
        if self.ethernet:
            data = self.eth_src + b"\0" * 6 + b"\x08\x00" + data
        self.writer.write(data)

    def frame(self, frame: bytes) -> None:
        self.writer.write(frame)


@dataclass(frozen=True, slots=True)
class _L4Plan:
    """A sweep's TCP/UDP probes (sharing one cookie key) and the raw sockets they go out on."""

    probes: tuple[L4Probe, ...]
    tcp: PacketSocket | None
    udp: PacketSocket | None
    by_source: tuple[tuple[L4Probe, ...], ...] = ()  # the probes again for each source address, when there are several
    source_of: bytearray | None = None  # each target's index into by_source (len(by_source): no route)


@dataclass(frozen=True, slots=True)
class _Pass:
    """One probe kind's pass over the targets: an ICMP template to patch, or a TCP/UDP probe to build."""

    kind: int  # its number: ICMP kinds first, then TCP/UDP, in the order given (-1: ARP only)
    sock: PacketSocket | None
    buf: bytearray | None
    partial: int
    type_code: int
    probe: L4Probe | None
    variants: tuple[L4Probe | None, ...] | None = None  # the probe for each source address (None: no route)


class _RawReceive(_Run):
    """The receiving half of a raw sweep: its sockets, waiting on them, draining and matching what they read."""

    def __init__(self, prober: Prober, addrs: array[int], walk: Walk, kind: bytearray | None, lnk: Link | None,
                 socks: tuple[PacketSocket | None, PacketSocket | None, _L4Plan | None], timeout: float,
                 retries: int | None, progress: Callable[[int, int], None] | None) -> None:
        super().__init__(prober, addrs, walk, kind, lnk, timeout, 1 if retries is None else retries)
        self.rounds = Rounds(timeout, retries)  # the retry policy (rounds.py)
        self.icmp, self.arp, self.l4 = socks
        self.progress = progress
        self.tap: _PcapTap | None = None
        self.batches: dict[int, SendBatch] = {}
        self.pool: SendPool | None = None  # full batches of routed probes go out on its threads (steps())
        self.recv_batches: dict[int, RecvBatch] = {}
        self.stamped = False  # answers timed by the kernel's receive time (_kernel_stamps)
        self.sent_at = array("d", bytes(8 * self.n))
        self.attempt = bytearray(self.n)
        self.max_rtt = 0.0
        self.base = random.getrandbits(16)
        while self.base in prober._previous_bases:
            self.base = random.getrandbits(16)
        self.icmp_probes = icmp_probes(prober.specs) if self.icmp is not None else ()
        self.kind_of_reply = {p.reply: k for k, p in enumerate(self.icmp_probes)}
        self.kinds_answered: set[int] = set()
        self.first_kind, self.passes, self.later_finds = -1, 1, 0  # later_finds: hosts first found by a later kind
        self.slow_finds = 0  # hosts first found by an answer to an earlier round's echo
        self.match = IcmpMatcher(addrs, self.base, [p.reply for p in self.icmp_probes], prober._previous_bases)
        self.arp_frame = bytearray()
        self.my_addr = 0
        if self.arp is not None and lnk is not None and kind is not None:
            self.arp_frame = bytearray(arp_request_template(lnk))
            self.my_addr = lnk.spa
        if self.l4 is not None:
            self.which = bytearray(self.n)
            self.l4_specs = tuple(f"{p.kind}:{p.port}" for p in self.l4.probes)
        self.multi = len(self.icmp_probes) + (len(self.l4.probes) if self.l4 else 0) > 1
        self.socks = [s for s in (self.icmp, self.arp, *((self.l4.tcp, self.l4.udp) if self.l4 else ())) if s is not None]

    # -- waiting ----------------------------------------------------------------------
    def _flush_stale(self) -> None:
        for s in self.socks:
            for data, _ in self._received(s):
                if s is self.icmp and self.match.is_previous(data):
                    self.late += 1

    def _wait_until(self, deadline: float) -> None:
        while not self.halt:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            ready, _, _ = select.select(self.socks, [], [], min(left, 0.1))
            if ready:
                self._drain()

    def _wait(self, seconds: float) -> Generator[None, None, None]:
        """Drain until ``seconds`` have passed (or every target answered, or the sweep was stopped); pause
        whenever hosts were decided, so they stream out during the wait."""
        deadline = time.monotonic() + seconds
        last_progress = 0.0
        while self.answered < self.n and not self.halt:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            ready, _, _ = select.select(self.socks, [], [], min(left, 0.1))
            if ready:
                self._drain()
            if self.fresh or (self.pause is not None and self.pause()):
                yield
            if self.progress is not None and time.monotonic() - last_progress > 0.1:
                last_progress = time.monotonic()
                self.progress(self.answered, self.n)

    # -- receiving -------------------------------------------------------------------
    def _received(self, sock: PacketSocket) -> Iterator[tuple[bytes, float]]:
        """Every packet waiting on ``sock`` and when it arrived (``_arrivals``), read in batches by recvmmsg(2)."""
        batch = self.recv_batches.get(id(sock))
        if batch is None:
            batch = self.recv_batches[id(sock)] = RecvBatch(sock, RECV_BATCH, control=STAMP_SPACE if self.stamped else 0)
        return _arrivals(batch, self.stamped)

    def _drain(self) -> None:
        if self.icmp is not None:
            self._drain_icmp(self.icmp)
        if self.arp is not None:
            self._drain_arp(self.arp)
        if self.l4 is not None:
            for sock in (self.l4.tcp, self.l4.udp):
                if sock is not None:
                    self._drain_l4(sock)

    def _drain_icmp(self, sock: PacketSocket) -> None:
        # A drain loop: IcmpMatcher decides from the bytes; the bookkeeping stays inline (one call per packet).
        match = self.match
        state, attempt, sent_at = self.state, self.attempt, self.sent_at
        tap, l4, multi, fresh = self.tap, self.l4, self.multi, self.fresh
        for data, now in self._received(sock):
            if tap is not None:
                tap.reply(data)
            verdict, i, got = match(data)
            if verdict == REPLY:
                self.received += 1
                try_attempt = attempt[i] if got < 0 else got
                if state[i] == _UP:
                    if multi and self.reply[i] != data[(data[0] & 15) << 2]:
                        continue  # another probe kind's answer: not a duplicate
                    if try_attempt < attempt[i]:
                        self.late += 1
                    else:
                        self.duplicates += 1
                    continue
                if state[i] == _PENDING:
                    self.answered += 1
                    k = self.kind_of_reply[data[(data[0] & 15) << 2]]
                    self.later_finds += k != self.first_kind
                    self.kinds_answered.add(k)
                    self.slow_finds += try_attempt != attempt[i]  # an earlier round's probe: slow, not lost
                state[i] = _UP
                fresh.append(i)
                self.ttl[i] = data[8]
                self.reply[i] = data[(data[0] & 15) << 2]
                if try_attempt == attempt[i]:
                    rtt = now - sent_at[i]
                    self.rtt[i] = rtt * 1000.0
                    if rtt > self.max_rtt:
                        self.max_rtt = rtt
                else:
                    self.late += 1
                    self.rtt[i] = -1.0
            elif verdict == ERROR:
                self.received += 1
                if state[i] != _PENDING:
                    self.duplicates += not multi  # with several probe kinds, each may get its error
                    continue
                self._unreachable(i, data, now)
            elif verdict == LATE:
                self.late += 1
            elif l4 is None or not self._l4_error(data, now):
                self.ignored += 1

    def _unreachable(self, i: int, data: bytes, now: float) -> None:
        ihl = (data[0] & 15) << 2
        self.answered += 1
        self.state[i] = _UNREACH
        self.ttl[i] = data[8]
        self.reply[i] = data[ihl]
        self.code[i] = data[ihl + 1]
        self.rtt[i] = (now - self.sent_at[i]) * 1000.0
        self.set_reporter(i, int.from_bytes(data[12:16], "big"))

    def _l4_error(self, data: bytes, now: float) -> bool:
        """An ICMP error about one of our TCP/UDP probes: port unreachable from the target itself means up,
        anything else from anyone else makes a silent target unreachable. False: not about our probes."""
        ihl = (data[0] & 15) << 2
        if len(data) < ihl + 8 or data[ihl] not in (3, 11) or self.l4 is None:
            return False
        quoted = quoted_probe(data[ihl + 8:], 4)
        if quoted is None:
            return False
        probe = next((p for p in self.l4.probes if p.answers_quote(quoted)), None)
        i = self.walk.index(ip_to_int(quoted.dst)) if probe is not None else None
        if probe is None or i is None:
            return False
        self.received += 1
        if data[ihl] == 3 and data[ihl + 1] == 3 and data[12:16] == socket.inet_aton(quoted.dst):
            self._answered(i, _PORT_UNREACH, data[8], probe, now)
        elif self.state[i] == _PENDING:
            self._unreachable(i, data, now)
        return True

    def _drain_l4(self, sock: PacketSocket) -> None:
        # One call per probe kind per packet: TCP/UDP answers are matched by cookie, not decoded from an index.
        probes, where, tap = self.l4.probes if self.l4 else (), self.walk, self.tap
        for data, now in self._received(sock):
            for probe in probes:
                answer = probe.match(data)
                if answer is not None:
                    break
            else:
                self.ignored += 1
                continue
            i = where.index(answer.address)
            if i is None:
                self.ignored += 1
                continue
            if tap is not None:
                tap.reply(data)
            self.received += 1
            self._answered(i, _L4_CODES[answer.reason], answer.ttl, probe, now)

    def _answered(self, i: int, code: int, ttl: int, probe: L4Probe, now: float) -> None:
        which = 1 + (self.l4.probes.index(probe) if self.l4 is not None else 0)
        if self.state[i] == _UP:
            self.duplicates += self.reply[i] == code and self.which[i] == which  # the same probe answered twice
            return
        if self.state[i] == _PENDING:
            self.answered += 1
            k = len(self.icmp_probes) + which - 1
            self.later_finds += k != self.first_kind
            self.kinds_answered.add(k)
        self.state[i] = _UP
        self.fresh.append(i)
        self.ttl[i] = ttl
        self.reply[i] = code
        self.which[i] = which
        rtt = now - self.sent_at[i]
        self.rtt[i] = rtt * 1000.0
        if rtt > self.max_rtt:
            self.max_rtt = rtt

    def _drain_arp(self, sock: PacketSocket) -> None:
        walk, kind, state, my = self.walk, self.kind, self.state, self.my_addr
        tap = self.tap
        for frame, now in self._received(sock):
            if len(frame) < 42 or frame[20:22] != b"\x00\x02":
                continue  # our own requests (outgoing) and other who-has
            if tap is not None:
                tap.frame(frame)
            if int.from_bytes(frame[38:42], "big") != my:
                self.ignored += 1
                continue
            i = walk.index(int.from_bytes(frame[28:32], "big"))
            if i is None or kind is None or not kind[i]:
                self.ignored += 1
                continue
            self.received += 1
            if state[i] != _PENDING:
                self.duplicates += 1
                continue
            self.answered += 1
            state[i] = _UP
            self.reply[i] = _ARP_REPLY
            self.rtt[i] = (now - self.sent_at[i]) * 1000.0
            self.macs[i] = frame[22:28].hex(":")
            self.fresh.append(i)


class _RawSweep(_RawReceive):
    """Raw-socket hot loop: patch bytes, send, drain, match; retries go only to the silent."""

    # -- sending ---------------------------------------------------------------------
    def steps(self) -> Generator[None, None, None]:
        """Send and wait, round after round. After a flush of probes (and a drain) or during a wait, pause
        (yield) when hosts were decided, so they stream out; end at such a point when the sweep was stopped."""
        prober = self.prober
        if self.pcap is not None:
            self.tap = _PcapTap(self.pcap, prober, self)
        self._flush_stale()
        self.t0 = time.monotonic()
        self.mark_local()
        first: Iterable[int] = self._silent() if self.answered else range(self.n)
        self.pool = self._send_pool()
        try:
            for r in self.rounds.each(self):  # the end of each round is decided by rounds.Round
                count = yield from self._send_round(self._silent() if r.number else first, r.number)
                if self.halt:
                    break
                if r.number:
                    self.resent += count
                yield from self._wait(r.wait())  # as long as replies have taken (as nmap)
                if self.answered >= self.n or self.halt:
                    break
                rest = r.rest()
                if rest is not None:
                    yield from self._wait(rest)  # no sign of loss left: wait out the timeout once
                    break
        finally:
            try:
                if self.pool is not None:
                    self.sent -= self.pool.close()  # counted when queued; a stop leaves the queue unsent
            finally:
                self.pool = None
                self.t1 = time.monotonic()
                prober._previous_bases.append(self.base)
                if self.progress:
                    self.progress(self.n, self.n)

    def _send_pool(self) -> SendPool | None:
        """Threads to send the routed probes on (``transport.SendPool``), when the sweep is big and unpaced, there
        are CPUs for them, and the transport can open a twin of every routed socket; else None (inline)."""
        prober = self.prober
        routed = [s for s in (self.icmp, *((self.l4.tcp, self.l4.udp) if self.l4 is not None else ())) if s is not None]
        threads = send_threads(self.n * max(1, len(prober.specs)))
        if prober.rate or not threads or not routed or not all(prober.transport.twins(s) for s in routed):
            return None
        return SendPool(prober.transport.send_twin, threads)

    def _silent(self) -> array[int]:
        """The indices of the targets still silent (_PENDING is 0), as rounds.silent makes them."""
        return silent(self.state)

    def _passes(self, rnd: int) -> list[_Pass]:
        """One pass per probe kind for this round, in order. Retry rounds send only the kinds that were a
        host's first answer in this sweep (every kind while none was): the probes this network answers."""
        out: list[_Pass] = []
        icmp = iter(enumerate(self.icmp_probes))
        l4 = iter(enumerate(self.l4.probes if self.l4 is not None else (), len(self.icmp_probes)))
        for spec in self.prober.specs:  # in the order given: nmap's is echo, SYN, ACK, timestamp
            if spec.kind in ICMP_KINDS and self.icmp_probes:
                k, p = next(icmp)
                buf = bytearray(p.template)
                rnd_word = 0
                if p.kind == "echo":
                    buf[8] = rnd  # the attempt byte is the high byte of the payload's first word
                    rnd_word = rnd << 8
                out.append(_Pass(k, self.icmp, buf, p.partial + rnd_word, p.request << 8, None))
            elif spec.kind in L4_KINDS and self.l4 is not None:
                k, q = next(l4)
                variants = None
                if self.l4.source_of is not None:  # several source addresses: the checksum differs for each
                    variants = (*(ps[k - len(self.icmp_probes)] for ps in self.l4.by_source), None)
                out.append(_Pass(k, self.l4.tcp if q.proto == socket.IPPROTO_TCP else self.l4.udp, None, 0, 0, q, variants))
        if rnd and self.kinds_answered:
            out = [x for x in out if x.kind in self.kinds_answered] or out
        return out or [_Pass(-1, None, None, 0, 0, None)]  # on-link targets only: the ARP pass

    def _send_round(self, todo: Iterable[int], rnd: int) -> Generator[None, None, int]:
        """Every probe kind to every silent target of ``todo``, one kind after the other in one pass: by the
        time the second kind goes out, the first kind's answers have been drained, and who answered is skipped."""
        count = 0
        passes = self._passes(rnd)
        if rnd == 0:
            self.first_kind, self.passes = passes[0].kind, len(passes)
        for n, spec in enumerate(passes):
            count += yield from self._send_pass(todo, rnd, spec, n == 0)
            if self.halt:  # stopped: what the pool still holds is not sent (steps() closes it)
                break
            if self.pool is not None:  # the pass has gone (and its answers drained) before the next kind skips who answered
                self.send_errors += self.pool.finish(self._drain)
        self.sent += count
        self._drain()
        return count

    def _batch(self, sock: PacketSocket) -> SendBatch:
        """The send batch of ``sock`` (one per socket for the whole sweep)."""
        batch = self.batches.get(id(sock))
        if batch is None:
            batch = self.batches[id(sock)] = SendBatch(sock, SEND_BATCH, addressed=sock is not self.arp)
        return batch

    def _pass_batches(self, spec: _Pass, first: bool) -> tuple[SendBatch | None, SendBatch | None]:
        """A pass's send batches: the routed one (the ICMP template already in every slot, or the TCP/UDP probe's
        length set) and, on the first pass, the ARP one (the who-has frame in every slot)."""
        out = self._batch(spec.sock) if spec.sock is not None else None
        if out is not None and spec.buf is not None:
            out.set_length(len(spec.buf))
            for k in range(SEND_BATCH):  # the template's tail (echo's attempt byte) is the same for the whole pass
                out.area[k * out.slot + out.head:k * out.slot + out.head + len(spec.buf)] = spec.buf
        elif out is not None and spec.probe is not None:
            out.set_length(len(spec.probe.template))
        link = self._batch(self.arp) if first and self.arp is not None and self.kind is not None else None
        if link is not None:
            link.set_length(len(self.arp_frame))
            for k in range(SEND_BATCH):
                link.area[k * link.slot + link.head:k * link.slot + link.head + len(self.arp_frame)] = self.arp_frame
        return out, link

    def _send_pass(self, todo: Iterable[int], rnd: int, spec: _Pass, first: bool) -> Generator[None, None, int]:
        # The hot loop: everything it touches is a local, and the per-target work is inline,
        # because a function call per packet costs measurable speed on a /16. Each probe is
        # written in place into a SendBatch slot (its sockaddr and the patched header in one
        # pack_into) and a full batch goes out in one sendmmsg(2) (_flush). TCP/UDP probes carry
        # a keyed cookie: their probe object writes a whole batch of them just before it goes
        # (L4Probe.write_slots, one call per batch), or, when targets have different source
        # addresses, each one into its slot (build_into). Yields: see steps().
        kind, state, addrs, fresh = self.kind, self.state, self.addrs, self.fresh
        rate = self.prober.rate
        interval = 1.0 / rate if rate else 0.0
        burst = max(1.0, (rate or 0) / 200)  # allow 5 ms of burst
        limit = min(SEND_BATCH, int(burst)) if rate else SEND_BATCH  # a paced sweep never holds more than its burst
        next_at = time.monotonic()
        pack_into, clock, base, fam = struct.pack_into, time.monotonic, self.base, FAMILY4
        buf, partial, type_code, probe = spec.buf, spec.partial, spec.type_code, spec.probe
        variants, source_of = spec.variants, self.l4.source_of if self.l4 is not None else None
        write = probe.write_slots if probe is not None and variants is None else None
        flush, progress = self._flush, self.progress
        count = 0
        out, link = self._pass_batches(spec, first)
        area, slot, head = (out.area, out.slot, out.head) if out is not None else (bytearray(), 0, 0)
        larea, lslot, lhead = (link.area, link.slot, link.head) if link is not None else (bytearray(), 0, 0)
        held, lheld = array("I", bytes(4 * SEND_BATCH)), array("I", bytes(4 * SEND_BATCH))  # the sweep index in each slot
        k = lk = 0
        for i in todo:
            if not first and state[i]:
                continue
            if interval:
                now = clock()
                if now < next_at:
                    count += flush(out, held, k, rnd, write) + flush(link, lheld, lk, rnd)
                    k = lk = 0
                    self._wait_until(next_at)
                    if fresh or self.halt:
                        yield
                        if self.halt:
                            return count
                    now = clock()
                next_at = max(next_at + interval, now - burst * interval)
            a = addrs[i]
            if kind is not None and kind[i]:
                if link is None:
                    continue
                pack_into("!I", larea, lk * lslot + lhead + 38, a)  # the who-has frame's target address
                lheld[lk] = i
                lk += 1
                if lk >= limit:
                    count += flush(link, lheld, lk, rnd)
                    lk = 0
                continue
            if buf is not None:
                ident = (base + (i >> 16)) & 0xFFFF
                seq = i & 0xFFFF
                pack_into("!HHI8xHHHH", area, k * slot, fam, 0, a, type_code, csum_fold(partial + ident + seq), ident, seq)
            elif write is not None:
                pass  # the whole batch is written at its flush
            elif probe is not None:
                p = probe if variants is None or source_of is None else variants[source_of[i]]
                if p is None:
                    continue  # no route to this one: its ICMP probe says so
                pack_into("!HHI8x", area, k * slot, fam, 0, a)
                p.build_into(area, k * slot + head, a)
            else:
                continue
            held[k] = i
            k += 1
            if k >= limit:
                count += flush(out, held, k, rnd, write)
                k = 0
                if first and progress is not None and not count & 4095:
                    progress(min(self.n, count) if rnd == 0 else self.answered, self.n)
                if fresh or self.halt:
                    yield
                    if self.halt:
                        return count  # stopped: the probes written since are not sent (as the paced branch)
        return count + flush(out, held, k, rnd, write) + flush(link, lheld, lk, rnd)

    def _source_of(self, i: int) -> bytes | None:
        """Target ``i``'s source address when the sweep has several (by route), else None."""
        l4 = self.l4
        if l4 is None or l4.source_of is None or l4.source_of[i] >= len(l4.by_source):
            return None
        return l4.by_source[l4.source_of[i]][0].source.to_bytes(4, "big")

    def _mark_sent(self, held: array[int], count: int, rnd: int) -> None:
        """The send time and round of the ``count`` probes whose sweep indices ``held`` lists, just before they go
        (on a ``SendPool`` thread, when one sends them)."""
        sent_at, attempt = self.sent_at, self.attempt
        now = time.monotonic()
        for k in range(count):
            i = held[k]
            sent_at[i] = now
            attempt[i] = rnd

    def _flush(self, batch: SendBatch | None, held: array[int], count: int, rnd: int,
               write: Callable[[bytearray, int, array[int], array[int], int], None] | None = None) -> int:
        """Send the ``count`` probes waiting in ``batch`` (sweep indices in ``held``; ``write`` writes them first,
        as ``L4Probe.write_slots``), then drain; how many went."""
        if batch is None or not count:
            return 0
        if write is not None:
            write(batch.area, batch.slot, self.addrs, held, count)
        tap = self.tap
        if self.pool is not None and batch.addressed:
            self.pool.submit(batch, count, functools.partial(self._mark_sent, held[:count], count, rnd), self._drain)
        else:
            self._mark_sent(held, count, rnd)
            self.send_errors += batch.send_all(count, self._drain)  # the one send policy (transport.SEND_AGAIN)
        if tap is not None:
            for k in range(count):
                tap.probe(batch.packet(k), self.addrs[held[k]], not batch.addressed, batch.sock, self._source_of(held[k]))
        self._drain()
        return count


class _ScapySweep(_Run):
    """The reference: Scapy's sr() (routed, ICMP) and srp() (on-link, ARP), each one batched call."""

    def execute(self) -> None:
        scapyload.route_tables()  # sr() and srp() pick the interface by Scapy's routes
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
            if arp_idx and self.link is not None:
                lnk = self.link
                frames = [Ether(dst="ff:ff:ff:ff:ff:ff", src=lnk.mac_str) / ARP(pdst=int_to_ip(self.addrs[i]), hwsrc=lnk.mac_str,
                                                                                 psrc=int_to_ip(lnk.spa)) for i in arp_idx]
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
        where = self.walk
        for snd, rcv in answered:
            if snd.haslayer(ARP):
                found = where.index(ip_to_int(rcv[ARP].psrc))
                if found is None or self.state[found]:
                    continue
                i = found
                self.state[i], self.reply[i] = _UP, _ARP_REPLY
                self.macs[i] = rcv[ARP].hwsrc.lower()
                self.fresh.append(i)
            else:
                found = where.index(ip_to_int(snd[IP].dst))
                if found is None or self.state[found]:
                    continue
                i = found
                icmp = rcv[ICMP]
                self.ttl[i] = rcv[IP].ttl
                self.reply[i] = icmp.type
                self.code[i] = icmp.code
                if icmp.type == rep:
                    self.state[i] = _UP
                    self.fresh.append(i)
                elif icmp.type in (3, 11):
                    self.state[i] = _UNREACH
                    self.set_reporter(i, ip_to_int(rcv[IP].src))
                else:
                    continue
            self.received += 1
            self.rtt[i] = max(0.0, (rcv.time - snd.sent_time) * 1000.0) if getattr(snd, "sent_time", None) else -1.0


    def _write_pcap(self, packets: list[Any], ether: Any) -> None:
        """Every probe (with its retries' last send time) and reply, in time order; IP-level packets get a
        synthetic Ethernet header when the capture is Ethernet (ARP or --local frames go in it)."""
        from recon.pcap import LINKTYPE_ETHERNET

        records = []
        for p in packets:
            data = bytes(p)
            if self.pcap.linktype == LINKTYPE_ETHERNET and not p.haslayer(ether):  # type: ignore[union-attr]  # only called when a pcap was asked for
                data = b"\0" * 12 + b"\x08\x00" + data
            records.append((int((getattr(p, "sent_time", None) or p.time) * 1e9), data))
        for stamp, data in sorted(records):
            self.pcap.write(data, stamp)  # type: ignore[union-attr]  # only called when a pcap was asked for


# --- reverse DNS -----------------------------------------------------------------------


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


def _named(namer: _Names | None, batch: list[HostResult]) -> list[HostResult]:
    """``batch`` as the stream hands it out: with ``-R`` (``namer``), its hosts go to the lookups and the hosts
    named (or out of lookup time) by now come instead."""
    return batch if namer is None else namer.add(batch) + namer.ready()


class _Names:
    """``-R``: reverse lookups (the system resolver, /etc/hosts first) of the hosts that are up, as they come,
    on at most ``workers`` threads. Each row is handed back as soon as its lookup ends (with its name when one
    came), or once its own ``time_limit`` has passed (a lookup still running then is abandoned, never waited
    for). Rows that are not up, already named or scoped (nothing names fe80::1%eth0) pass at once."""

    def __init__(self, time_limit: float = 2.0, workers: int = 32) -> None:
        self.time_limit, self.workers = time_limit, workers
        self.lock = threading.Condition()
        self.todo: deque[str] = deque()
        self.waiting: dict[str, tuple[float, HostResult]] = {}  # address → (deadline, row), deadlines in order
        self.ended: dict[str, str | None] = {}  # address → name (None: no name), lookups that ended
        self.alive = 0

    def add(self, hosts: Iterable[HostResult]) -> list[HostResult]:
        """Start the lookups of ``hosts``; the rows that need none."""
        now, passed = time.monotonic(), []
        with self.lock:
            for h in hosts:
                if h.status != "up" or h.hostname or "%" in h.address or h.address in self.waiting:
                    passed.append(h)
                    continue
                self.waiting[h.address] = (now + self.time_limit, h)
                self.todo.append(h.address)
            start = max(0, min(self.workers - self.alive, len(self.todo)))
            self.alive += start
        for _ in range(start):
            threading.Thread(target=self._work, daemon=True, name="recon-rdns").start()
        return passed

    def _work(self) -> None:
        while True:
            with self.lock:
                if not self.todo:
                    self.alive -= 1
                    return
                address = self.todo.popleft()
            try:
                name: str | None = socket.gethostbyaddr(address)[0]
            except (OSError, UnicodeError):
                name = None
            with self.lock:
                if address in self.waiting:
                    self.ended[address] = name
                    self.lock.notify_all()

    def has_ready(self) -> bool:
        """True when a row can be handed back now (cheap: the waits of the sweep ask often)."""
        with self.lock:
            return bool(self.ended) or (bool(self.waiting) and next(iter(self.waiting.values()))[0] <= time.monotonic())

    def ready(self) -> list[HostResult]:
        """The rows whose lookup ended (named when a name came) or whose time is up."""
        now, out = time.monotonic(), []
        with self.lock:
            for address, name in self.ended.items():
                row = self.waiting.pop(address)[1]
                out.append(replace(row, hostname=name) if name else row)
            self.ended.clear()
            while self.waiting and next(iter(self.waiting.values()))[0] <= now:
                out.append(self.waiting.pop(next(iter(self.waiting)))[1])
        return out

    def rest(self) -> Iterator[list[HostResult]]:
        """The rows still waiting, each as soon as it is ready (within ``time_limit`` of its ``add``)."""
        while True:
            with self.lock:
                if not self.waiting:
                    return
                if not self.ended:
                    self.lock.wait(max(0.0, next(iter(self.waiting.values()))[0] - time.monotonic()))
            batch = self.ready()
            if batch:
                yield batch
