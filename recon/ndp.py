"""On-link IPv6 discovery at layer 2: Neighbor Discovery and multicast echo (ARCHITECTURE.md).

``solicit`` sends a Neighbor Solicitation for each target to its solicited-node group
(ff02::1:ffXX:XXXX, Ethernet 33:33:ff:XX:XX:XX), from the interface's address of the
target's scope, with our source link-layer address option; a Neighbor Advertisement
whose target field is the address (hop limit 255, checksum good) says it is up, and
gives its MAC (the target link-layer address option, else the frame's source).
``multicast_echo`` sends one ICMPv6 echo to ff02::1 (or another group) from each of
the interface's addresses: hosts answer from the address of the same scope, so the
link-local echo finds every host's fe80:: address and a global one its global address;
each responder's MAC is the reply frame's source.

Why layer 2 (an ``AF_PACKET`` socket from ``recon.transport``) rather than a raw ICMPv6
socket with hop limit 255:

* the MAC is the point of an on-link row, and an echo reply carries it only in the
  Ethernet header, which a raw ICMPv6 socket never shows;
* the kernel's neighbour cache stays out of the way: no waiting on its one-at-a-time
  resolution and retransmit timer, and no cache entries for every address asked about
  (the kernel ignores advertisements it did not ask for);
* it is the ARP path again (``recon.arp``): the same socket kind, vendor lookup and
  pcap of whole frames.

The price: it needs an Ethernet interface (others are refused with a hint), and the
ICMPv6 checksums are computed here. Frames are built with struct, not Scapy: a
solicitation is 86 bytes, and one is built per target.

Link-local addresses are reported with their scope (``fe80::1%eth0``), as ping does.
"""

from __future__ import annotations

import ipaddress
import os
import select
import struct
import time
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass, replace
from types import TracebackType

from recon.arp import vendor
from recon.errors import InvalidOption, InvalidTarget
from recon.models import HostResult, ScopedTarget, SweepResult, SweepStats
from recon.packets import inet_checksum
from recon.rounds import Round, Rounds
from recon.targets import address_key
from recon.transport import (
    STAMP_SPACE,
    PacketSocket,
    RecvBatch,
    SendBatch,
    Transport,
    default_transport,
    proc_net,
    received_ns,
    stamp_receive_times,
)

__all__ = [
    "ALL_NODES",
    "ANSWERS_FILTER",
    "ETH_P_IPV6",
    "LOCAL_PREFIX_LIMIT",
    "Link6",
    "discover",
    "discover_parts",
    "echo_frame",
    "link6",
    "merge",
    "multicast_echo",
    "multicast_mac",
    "ns_frame",
    "onlink_interface",
    "parse_advert",
    "parse_echo_reply",
    "routes6",
    "solicit",
    "solicited_node",
]

ETH_P_IPV6 = 0x86DD
ALL_NODES = "ff02::1"
# ``--local`` solicits every address of an on-link prefix only up to this many (a /116): a /64
# cannot be swept, and there the multicast echo finds the hosts.
LOCAL_PREFIX_LIMIT = 4096
ND_REASON = "nd-advert"
ECHO_REASON = "echo-reply"
LOCAL_REASON = "self"  # our own address, as engine.py marks it (ARP and ICMP)

_ARPHRD_ETHER = 1
_RTF_UP, _RTF_GATEWAY, _RTF_REJECT, _RTF_LOCAL = 0x1, 0x2, 0x200, 0x80000000  # linux/ipv6_route.h
_NS, _NA, _ECHO, _ECHO_REPLY = 135, 136, 128, 129
_ICMP = 14 + 40  # the ICMPv6 header's offset in an Ethernet frame (no extension headers)
_SNM_PREFIX = ipaddress.IPv6Address("ff02::1:ff00:0").packed[:13]  # the solicited-node prefix, ff02::1:ff00:0/104
_ECHO_HOPS = 1  # a multicast echo stays on the link (as ping's default IPV6_MULTICAST_HOPS)
_BATCH = 64  # frames to a sendmmsg(2), and read by one recvmmsg(2)
_FRAME = 128  # bytes a send slot holds: a solicitation is 86, our echo 70
_FRAME_READ = 2048  # bytes read of an answer (ours are under 100; a longer frame is not one)

Tap = Callable[[bytes], None]  # called with every frame sent and every answer read (for a pcap)
Found = Callable[[HostResult], None]  # called with each host's row as soon as it answers (a streamed sweep)
Stopped = Callable[[], bool]  # True once the sweep was stopped (Ctrl-C): send and wait no more
STOP_SLICE = 0.1  # seconds: the longest a wait sleeps before it looks at its stop signal (engine6's wait slice)


def _never() -> bool:
    return False

# What the packet socket lets through, decided in the kernel (classic BPF): IPv6 frames with no extension
# header that carry an ICMPv6 echo reply or neighbor advertisement. The rest of a busy link (mDNS, our own
# outgoing frames, other NDP) never reaches Python nor fills the socket's buffer. Hand-assembled; tests check
# it keeps what ``tcpdump -ddd 'ip6[6] == 58 and (ip6[40] == 129 or ip6[40] == 136)'`` keeps.
ANSWERS_FILTER: list[tuple[int, int, int, int]] = [
    (0x28, 0, 0, 12),  # ldh [12]          the ethertype
    (0x15, 0, 6, ETH_P_IPV6),  # jeq #0x86dd, else drop
    (0x30, 0, 0, 20),  # ldb [20]          IPv6 next header
    (0x15, 0, 4, 58),  # jeq #58 (ICMPv6), else drop
    (0x30, 0, 0, 54),  # ldb [54]          ICMPv6 type
    (0x15, 1, 0, _ECHO_REPLY),  # jeq #129: accept
    (0x15, 0, 1, _NA),  # jeq #136: accept, else drop
    (0x06, 0, 0, 0x40000),  # accept (the whole frame)
    (0x06, 0, 0, 0),  # drop
]


# --- the interface -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Link6:
    """An Ethernet interface's MAC and usable IPv6 addresses: (address, prefix length, link-local?)."""

    name: str
    mac: bytes
    addresses: tuple[tuple[str, int, bool], ...]

    @property
    def mac_str(self) -> str:
        return self.mac.hex(":")

    @property
    def link_local(self) -> bytes:
        return next(_pack(a) for a, _, ll in self.addresses if ll)

    def sources(self) -> list[bytes]:
        """Every address to send from: the link-local one first, then the others (distinct)."""
        out = [self.link_local] + [_pack(a) for a, _, ll in self.addresses if not ll]
        return list(dict.fromkeys(out))

    def prefixes(self) -> list[ipaddress.IPv6Network]:
        """The on-link prefixes of the interface's non-link-local addresses."""
        nets = (ipaddress.IPv6Network(f"{a}/{p}", strict=False) for a, p, ll in self.addresses if not ll)
        return list(dict.fromkeys(nets))

    def own(self, source: str) -> bytes:
        """``source`` (``--source``) packed, when it is one of this interface's addresses: what is sent from it must
        be (RFC 4861 7.2.2); InvalidOption otherwise."""
        try:
            packed = ipaddress.IPv6Address(source.split("%")[0]).packed
        except ValueError:
            packed = b""
        if packed not in {_pack(a) for a, _, _ in self.addresses}:
            raise InvalidOption("--source", source, f"not an IPv6 address of {self.name}, which these targets are asked on; "
                                f"give one of its addresses (ip -6 addr show {self.name}), or leave --source out")
        return packed

    def source_for(self, target: bytes) -> bytes:
        """The address to solicit ``target`` from: link-local for a link-local target, else the address whose
        prefix holds it (the kernel's choice too), else any non-link-local address, else the link-local one."""
        if target[:2] == b"\xfe\x80":
            return self.link_local
        t = ipaddress.IPv6Address(target)
        others = [(a, p) for a, p, ll in self.addresses if not ll]
        for a, p in others:
            if t in ipaddress.IPv6Network(f"{a}/{p}", strict=False):
                return _pack(a)
        return _pack(others[0][0]) if others else self.link_local

    def show(self, address: bytes) -> str:
        """An address as rows show it: link-local ones with their scope (``fe80::1%eth0``)."""
        text = str(ipaddress.IPv6Address(address))
        return f"{text}%{self.name}" if address[:2] == b"\xfe\x80" else text


def _pack(address: str) -> bytes:
    return ipaddress.IPv6Address(address).packed


def link6(iface: str, transport: Transport | None = None, *, option: str = "--interface") -> Link6:
    """MAC and IPv6 addresses of Ethernet interface ``iface`` in this namespace; InvalidOption (named
    ``option``) when there is no such interface, it is not Ethernet, or it has no link-local address."""
    t = transport or default_transport()
    try:
        hatype, mac = t.hardware(iface)
    except OSError:
        raise InvalidOption(option, iface, "no such interface in this network namespace (see 'ip link')") from None
    if hatype != _ARPHRD_ETHER:
        raise InvalidOption(option, iface, "not an Ethernet interface; Neighbor Discovery and multicast echo "
                                           "at layer 2 need one (see 'ip link')")
    addresses = t.addresses6(iface)
    if not any(ll for _, _, ll in addresses):
        raise InvalidOption(option, iface, "the interface has no IPv6 link-local address (is it down, or IPv6 off on it?)")
    return Link6(iface, mac, addresses)


def routes6() -> list[tuple[ipaddress.IPv6Network, str, bool]]:
    """The IPv6 unicast routes of this thread's namespace (/proc/…/net/ipv6_route): (prefix, interface,
    on-link?), longest prefix first. Left out: loopback, rejects, our own addresses' local routes, multicast."""
    out: list[tuple[ipaddress.IPv6Network, str, bool]] = []
    try:
        lines = proc_net("ipv6_route").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        f = line.split()
        if len(f) != 10:
            continue
        flags = int(f[8], 16)
        if f[9] == "lo" or not flags & _RTF_UP or flags & (_RTF_REJECT | _RTF_LOCAL) or f[0].startswith("ff"):
            continue
        net = ipaddress.IPv6Network((int(f[0], 16), int(f[1], 16)))
        out.append((net, f[9], not flags & _RTF_GATEWAY and int(f[4], 16) == 0))
    out.sort(key=lambda r: -r[0].prefixlen)
    return out


def onlink_interface(address: str | int, routes: Sequence[tuple[ipaddress.IPv6Network, str, bool]] | None = None) -> str | None:
    """The interface ``address`` is on-link on (its longest-prefix route has no gateway and is not
    link-local's fe80::/64, which needs a scope), else None. Pass ``routes6()`` once for many addresses."""
    ip = ipaddress.IPv6Address(address)
    for net, iface, onlink in routes6() if routes is None else routes:
        if ip in net:
            return iface if onlink and not ip.is_link_local else None
    return None


# --- frames ----------------------------------------------------------------------------------------


def solicited_node(target: bytes) -> bytes:
    """The solicited-node multicast group of ``target`` (RFC 4291 2.7.1): ff02::1:ff + its last 24 bits."""
    return _SNM_PREFIX + target[13:16]


def multicast_mac(group: bytes) -> bytes:
    """The Ethernet address of IPv6 multicast ``group`` (RFC 2464 7): 33:33 + its last 32 bits."""
    return b"\x33\x33" + group[12:16]


def _icmp6_frame(mac: bytes, src: bytes, dst: bytes, hops: int, msg: bytearray) -> bytes:
    """Ethernet + IPv6 + ``msg`` (an ICMPv6 message whose checksum is filled in here), to multicast ``dst``."""
    msg[2:4] = b"\0\0"
    msg[2:4] = inet_checksum(src + dst + struct.pack("!I3xB", len(msg), 58) + bytes(msg)).to_bytes(2, "big")
    ip = struct.pack("!IHBB", 0x60000000, len(msg), 58, hops) + src + dst
    return multicast_mac(dst) + mac + b"\x86\xdd" + ip + bytes(msg)


def ns_frame(link: Link6, source: bytes, target: bytes) -> bytes:
    """A Neighbor Solicitation for ``target`` to its solicited-node group, with our link-layer address option."""
    msg = bytearray(struct.pack("!BBHI", _NS, 0, 0, 0) + target + b"\x01\x01" + link.mac)
    return _icmp6_frame(link.mac, source, solicited_node(target), 255, msg)


def echo_frame(link: Link6, source: bytes, group: bytes, ident: int, seq: int, payload: bytes) -> bytes:
    """An ICMPv6 echo request to multicast ``group`` (hop limit 1: it stays on the link)."""
    msg = bytearray(struct.pack("!BBHHH", _ECHO, 0, 0, ident, seq) + payload)
    return _icmp6_frame(link.mac, source, group, _ECHO_HOPS, msg)


def _icmp6(frame: bytes) -> bytes | None:
    """The ICMPv6 message of an Ethernet frame, when it is one with a good checksum (no extension headers)."""
    if len(frame) < _ICMP + 8 or frame[12:14] != b"\x86\xdd" or frame[14] >> 4 != 6 or frame[20] != 58:
        return None
    size = int.from_bytes(frame[18:20], "big")
    if size < 8 or _ICMP + size > len(frame):
        return None
    msg = frame[_ICMP:_ICMP + size]
    if inet_checksum(frame[22:54] + struct.pack("!I3xB", size, 58) + msg) != 0:
        return None
    return msg


def parse_advert(frame: bytes) -> tuple[bytes, bytes] | None:
    """(target address, MAC) of a valid Neighbor Advertisement frame (RFC 4861 7.1.2: hop limit 255,
    code 0, at least 24 bytes, no zero-length option); the MAC is the target link-layer address option's,
    else the frame's source. None for anything else."""
    msg = _icmp6(frame)
    if msg is None or msg[0] != _NA or msg[1] != 0 or len(msg) < 24 or frame[21] != 255 or msg[8] == 0xFF:
        return None
    mac, at = frame[6:12], 24
    while at + 2 <= len(msg):
        kind, units = msg[at], msg[at + 1]
        if units == 0 or at + units * 8 > len(msg):
            return None
        if kind == 2 and units == 1:
            mac = msg[at + 2:at + 8]
        at += units * 8
    return msg[8:24], mac


def parse_echo_reply(frame: bytes) -> tuple[bytes, bytes, int, int, int, bytes] | None:
    """(source, destination, hop limit, id, seq, payload) of an ICMPv6 echo reply frame; None otherwise."""
    msg = _icmp6(frame)
    if msg is None or msg[0] != _ECHO_REPLY or msg[1] != 0:
        return None
    ident, seq = struct.unpack_from("!HH", msg, 4)
    return frame[22:38], frame[38:54], frame[21], ident, seq, msg[8:]


# --- the wire ----------------------------------------------------------------------------------


class _Wire:
    """One AF_PACKET socket on the interface: send frames (``_BATCH`` to a ``sendmmsg(2)``, under transport's send
    policy), read the frames other hosts send back (``recvmmsg(2)``) with the kernel's receive time.

    Round trip times are the kernel's receive timestamp (``SO_TIMESTAMPNS``: when the frame reached the
    interface) less the wall-clock time taken right before the send: not inflated by how late Python reads
    the frame. Both are wall-clock nanoseconds; the waits run on the monotonic clock."""

    def __init__(self, link: Link6, part: _Part, what: str, handle: Callable[[bytes, int], None]) -> None:
        from recon.bpf import attach_filter

        self.link, self.tap, self.handle = link, part.tap, handle
        self.stopped = part.stopped  # looked at in every wait slice and after every round
        self.sock: PacketSocket = part.transport.packet(link.name, ETH_P_IPV6, what=what)
        try:
            attach_filter(self.sock, ANSWERS_FILTER)
        except OSError:
            pass  # a kernel without socket filters: Python reads past what it does not want, as before
        stamp_receive_times(self.sock)  # refused: an answer's time is when it is read
        self.sock.setblocking(False)
        self.batch = SendBatch(self.sock, _BATCH, _FRAME, addressed=False)
        self.reader = RecvBatch(self.sock, _BATCH, _FRAME_READ, control=STAMP_SPACE)
        self.sent = self.received = self.send_errors = 0
        self.t0 = time.monotonic()

    def __enter__(self) -> _Wire:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.sock.close()

    def send(self, frames: Sequence[bytes]) -> int:
        """Send ``frames``, ``_BATCH`` to a sendmmsg(2); a frame the kernel refuses counts as sent and failed
        (transport.SendBatch.send_all). The wall-clock time in ns taken right before the first send, which the
        answers' kernel timestamps are measured from (on a veth the whole exchange can run inside the send)."""
        start = 0
        for at in range(0, len(frames), _BATCH):
            chunk = frames[at:at + _BATCH]
            for k, frame in enumerate(chunk):
                self.batch.put(k, frame)
            start = start or time.time_ns()
            self.send_errors += self.batch.send_all(len(chunk), self.drain)
        self.sent += len(frames)
        if self.tap is not None:
            for frame in frames:
                self.tap(frame)
        return start

    def drain(self) -> None:
        """Hand every waiting IPv6 frame that another host sent to ``handle(frame, when)`` (``when``: the kernel's
        receive time in wall-clock ns, or the time it is read where the kernel gives none)."""
        mine = self.link.mac
        while True:
            got = self.reader.recv_msgs()
            for frame, _, control in got:
                if frame[6:12] != mine:  # our own frames come back as outgoing copies
                    self.handle(frame, received_ns(control) or time.time_ns())
            if len(got) < _BATCH:
                return

    def end_round(self, r: Round, done: Callable[[], bool]) -> bool:
        """Wait after round ``r``, whose last frame has just left, as the sweep engine does (rounds.Round); True when
        no round should follow (also once ``done()`` or ``stopped()``)."""
        since, wait = time.monotonic(), r.wait()
        self.wait(since + wait, done)
        if done() or self.stopped():
            return True
        rest = r.rest()
        if rest is not None:
            self.wait(since + wait + rest, done)  # the rest of the timeout, once
        return rest is not None

    def wait(self, until: float, done: Callable[[], bool]) -> None:
        """Read until ``until`` (monotonic clock), until ``done()``, or until ``stopped()`` (seen within a
        ``STOP_SLICE``: a stop comes from another thread, which cannot wake the select)."""
        while True:
            self.drain()
            left = until - time.monotonic()
            if left <= 0 or done() or self.stopped():
                return
            select.select([self.sock], [], [], min(left, STOP_SLICE))


@dataclass(frozen=True, slots=True)
class _Part:
    """What a solicitation or an echo runs with: its rounds, from options checked once (``_checked``: once for
    all the parts of a discovery), and the caller's transport, pace and hooks."""

    rounds: Rounds
    transport: Transport
    rate: float | None
    tap: Tap | None
    source: str | None
    found: Found | None
    stopped: Stopped


def _checked(transport: Transport | None, timeout: float, retries: int | None, rate: float | None, tap: Tap | None,
             source: str | None, found: Found | None, stopped: Stopped | None) -> _Part:
    """Validate the options as the sweep engine does; the part they make."""
    from recon.engine import check_sweep_options

    check_sweep_options(timeout=timeout, retries=retries, rate=rate)
    return _Part(Rounds(timeout, retries), transport or default_transport(), rate, tap, source, found, stopped or _never)


class _Tally:
    """What a run's rounds are decided by (rounds.Tally): one probe kind, and every host first found counts (an
    answer to an earlier round's probe is not told apart)."""

    found: Sized  # the hosts found
    answers: int  # answers read
    max_rtt: float  # s, the slowest answer so far
    slow_finds = later_finds = 0
    passes = 1

    @property
    def answered(self) -> int:
        return len(self.found)

    @property
    def received(self) -> int:
        return self.answers


def _target(value: str | int) -> bytes:
    try:
        address = ipaddress.IPv6Address(value.split("%")[0] if isinstance(value, str) else value)
    except ValueError:
        raise InvalidTarget(str(value), "not an IPv6 address") from None
    if address.is_multicast or address.is_unspecified:
        raise InvalidTarget(str(value), "Neighbor Discovery asks for one unicast address",
                            hint="ask a multicast group with an echo (ff02::1%eth0)")
    return address.packed


# --- Neighbor Discovery ------------------------------------------------------------------------


class _Solicit(_Tally):
    """The state of one solicitation sweep: who was asked when, who answered, with what."""

    def __init__(self, link: Link6, targets: list[bytes]) -> None:
        self.link, self.targets = link, targets
        self.index = {a: i for i, a in enumerate(targets)}
        self.sent_at = [0] * len(targets)  # wall-clock ns of the last solicitation of each (0: not yet asked)
        self.found: dict[int, HostResult] = {}  # index → its row, built once as it answers (found= and hosts() share it)
        self.duplicates = self.ignored = self.answers = 0
        self.max_rtt = 0.0  # s, the slowest answer so far
        for own in link.sources():
            if own in self.index:
                self.found[self.index[own]] = HostResult(link.show(own), "up", 0.0, None, LOCAL_REASON, link.mac_str,
                                                         vendor(link.mac_str), reason=LOCAL_REASON)

    def handle(self, frame: bytes, when: int) -> None:
        advert = parse_advert(frame)
        if advert is None:
            return
        i = self.index.get(advert[0])
        if i is None or not self.sent_at[i]:
            self.ignored += 1
            return
        self.answers += 1
        if i in self.found:
            self.duplicates += 1
            return
        rtt = (when - self.sent_at[i]) / 1e6
        self.max_rtt = max(self.max_rtt, rtt / 1000)
        mac = advert[1].hex(":")
        self.found[i] = HostResult(self.link.show(advert[0]), "up", round(rtt, 3), None, ND_REASON, mac, vendor(mac),
                                   reason=ND_REASON)

    def done(self) -> bool:
        return len(self.found) == len(self.targets)

    def hosts(self) -> tuple[HostResult, ...]:
        found = self.found
        return tuple(found.get(i) or HostResult(self.link.show(self.targets[i]), "down")
                     for i in sorted(range(len(self.targets)), key=self.targets.__getitem__))



def _tapped(run: _Solicit | _Echo, part: _Part) -> Callable[[bytes, int], None]:
    """``run.handle``, and every frame it counted (an answer, or one it ignored) also to the part's ``tap`` (the
    pcap); the row of each host it found, as it is found, to its ``found`` (the row the run keeps for its result:
    built once)."""
    tap, found = part.tap, part.found

    def handle(frame: bytes, when: int) -> None:
        before, known = run.answers + run.ignored, len(run.found)
        run.handle(frame, when)
        if tap is not None and run.answers + run.ignored != before:
            tap(frame)
        if found is not None and len(run.found) != known:
            found(next(reversed(run.found.values())))
    return handle

def solicit(iface: str, addrs: Iterable[str | int], *, transport: Transport | None = None, timeout: float = 1.0,
            retries: int | None = 1, rate: float | None = None, tap: Tap | None = None, source: str | None = None,
            found: Found | None = None, stopped: Stopped | None = None) -> SweepResult:
    """Ask for each address in ``addrs`` (IPv6 text, scope allowed, or 128-bit ints) with a Neighbor
    Solicitation on Ethernet interface ``iface``; return every target, up (``reason`` nd-advert, with MAC
    and vendor; our own addresses ``self``) or down, in address order, and the counters.

    Each round asks the silent again and waits ``timeout`` seconds after its last send. ``retries=None``
    adapts as the sweep engine does: again while the last retry still found hosts, at most 6 times.
    ``rate`` paces the sends (per second); ``tap`` sees every frame sent and every advertisement read.
    ``source`` (one of the interface's addresses) sends every solicitation from it, as --source asks.
    ``found`` gets each answering host's row as soon as it answers. Once ``stopped()`` (Ctrl-C, from another
    thread) nothing more is sent and the waits end within ``STOP_SLICE``: the result holds what answered.
    """
    return _solicit(iface, addrs, _checked(transport, timeout, retries, rate, tap, source, found, stopped))


def _solicit(iface: str, addrs: Iterable[str | int], part: _Part) -> SweepResult:
    lnk = link6(iface, part.transport)
    own = lnk.own(part.source) if part.source else None
    targets = list(dict.fromkeys(_target(a) for a in addrs))
    run = _Solicit(lnk, targets)
    gap = 1.0 / part.rate if part.rate else 0.0
    resent = 0

    with _Wire(lnk, part, "recon sweep (Neighbor Discovery)", _tapped(run, part)) as wire:
        for r in part.rounds.each(run):
            todo = [i for i in range(len(targets)) if i not in run.found]
            if not todo:
                break
            resent += len(todo) if r.number else 0
            next_at = time.monotonic()
            step = 1 if gap else _BATCH  # paced: one frame at a time, reading while waiting for the next slot
            for at in range(0, len(todo), step):
                if gap:
                    wire.wait(next_at, _never)
                    next_at += gap
                if wire.stopped():
                    break
                chunk = todo[at:at + step]
                when = wire.send([ns_frame(lnk, own or lnk.source_for(targets[i]), targets[i]) for i in chunk])
                for i in chunk:
                    run.sent_at[i] = when
                wire.drain()
            if wire.end_round(r, run.done):
                break
        duration = max(time.monotonic() - wire.t0, 1e-9)
        stats = SweepStats(targets=len(targets), sent=wire.sent, received=run.answers, duplicates=run.duplicates,
                           retries=resent, ignored=run.ignored, send_errors=wire.send_errors,
                           duration_s=round(duration, 6), pps=round(wire.sent / duration, 1), method="ndp")
    return SweepResult(hosts=run.hosts(), stats=stats)


# --- multicast echo ----------------------------------------------------------------------------


class _Echo(_Tally):
    """One multicast echo run: what was sent from which source in which round, and who answered."""

    def __init__(self, link: Link6, sources: list[bytes], group: bytes) -> None:
        self.link, self.sources, self.group = link, sources, group
        self.ident = int.from_bytes(os.urandom(2), "big")
        self.nonce = os.urandom(8)
        self.sent_at: dict[int, int] = {}  # seq (round << 8 | source index) → when (wall-clock ns)
        self.found: dict[bytes, HostResult] = {}  # responder → its row, built once as it answers (as _Solicit's)
        self.heard: set[tuple[bytes, int]] = set()  # (responder, seq): a second answer to one echo is a duplicate
        self.answers = self.duplicates = self.ignored = 0
        self.max_rtt = 0.0

    def frame(self, seq: int) -> bytes:
        return echo_frame(self.link, self.sources[seq & 0xFF], self.group, self.ident, seq, self.nonce)

    def handle(self, frame: bytes, when: int) -> None:
        reply = parse_echo_reply(frame)
        if reply is None:
            return
        src, dst, hops, ident, seq, payload = reply
        sent = self.sent_at.get(seq)
        if ident != self.ident or payload != self.nonce or sent is None or dst != self.sources[seq & 0xFF]:
            self.ignored += 1
            return
        self.answers += 1
        if (src, seq) in self.heard:
            self.duplicates += 1
            return
        self.heard.add((src, seq))
        if src not in self.found:  # a later round's echo is answered again: the first answer stays
            rtt = (when - sent) / 1e6
            self.max_rtt = max(self.max_rtt, rtt / 1000)
            mac = frame[6:12].hex(":")
            self.found[src] = HostResult(self.link.show(src), "up", round(rtt, 3), hops, ECHO_REASON, mac, vendor(mac),
                                         reason=ECHO_REASON)

    def hosts(self) -> tuple[HostResult, ...]:
        rows = dict(self.found)
        for own in self.sources:  # we are on the link too (ping ff02::1 hears itself); the wire does not echo us
            rows.setdefault(own, HostResult(self.link.show(own), "up", 0.0, None, LOCAL_REASON, self.link.mac_str,
                                            vendor(self.link.mac_str), reason=LOCAL_REASON))
        return tuple(rows[a] for a in sorted(rows))


def multicast_echo(iface: str, *, transport: Transport | None = None, timeout: float = 1.0,
                   group: str = ALL_NODES, retries: int | None = 1, tap: Tap | None = None,
                   every_source: bool = False, source: str | None = None, found: Found | None = None,
                   stopped: Stopped | None = None) -> SweepResult:
    """Send an ICMPv6 echo to multicast ``group`` on Ethernet interface ``iface`` from its link-local address,
    as ping does (members answer from theirs), and with ``every_source`` from each of its other addresses too
    (members answer from the address of the same scope, so their global addresses show as well); return every
    responder (``reason`` echo-reply, with the MAC of its frame, vendor, hop limit) and our own addresses
    used (``self``), in address order. ``source`` (one of the interface's addresses) is the only one echoed
    from, as ``ping -I ADDR ff02::1%IF`` does.

    Each round waits ``timeout`` seconds; a retry round echoes again (to hear who lost the first),
    and ``retries=None`` goes on while the last round found someone new, at most 6 times. ``found`` gets each
    responder's row as soon as it answers. Once ``stopped()`` the waits end within ``STOP_SLICE`` and no round
    follows.
    """
    return _echo(iface, group, every_source, _checked(transport, timeout, retries, None, tap, source, found, stopped))


def _echo(iface: str, group: str, every_source: bool, part: _Part) -> SweepResult:
    try:
        target = ipaddress.IPv6Address(group.split("%")[0])
    except ValueError:
        raise InvalidTarget(group, "not an IPv6 multicast group") from None
    if not target.is_multicast:
        raise InvalidTarget(group, "not an IPv6 multicast group", hint="ff02::1 is every node on the link")
    lnk = link6(iface, part.transport)
    source = part.source
    run = _Echo(lnk, [lnk.own(source)] if source else lnk.sources() if every_source else [lnk.link_local], target.packed)

    with _Wire(lnk, part, "recon sweep (multicast echo)", _tapped(run, part)) as wire:
        for r in part.rounds.each(run):
            seqs = [r.number << 8 | k for k in range(len(run.sources))]  # one echo from each source: one sendmmsg(2)
            when = wire.send([run.frame(seq) for seq in seqs])
            for seq in seqs:
                run.sent_at[seq] = when
            wire.drain()
            if wire.end_round(r, _never):
                break
        duration = max(time.monotonic() - wire.t0, 1e-9)
        hosts = run.hosts()
        stats = SweepStats(targets=len(hosts), sent=wire.sent, received=run.answers, duplicates=run.duplicates,
                           retries=wire.sent - len(run.sources), ignored=run.ignored, send_errors=wire.send_errors,
                           duration_s=round(duration, 6), pps=round(wire.sent / duration, 1), method="mcast-echo")
    return SweepResult(hosts=hosts, stats=stats)


# --- scoped targets and --local ----------------------------------------------------------------


def merge(results: Sequence[SweepResult]) -> SweepResult:
    """Several results as one: a host once (up wins over down, the first answer over later ones), in address
    order; the counters added up, the methods joined (``mcast-echo+ndp``)."""
    rows: dict[str, HostResult] = {}
    for result in results:
        for h in result.hosts:
            have = rows.get(h.address)
            if have is None or (have.status != "up" and h.status == "up"):
                rows[h.address] = h
    total = SweepStats()
    methods: list[str] = []
    for result in results:
        s = result.stats
        total = replace(total, sent=total.sent + s.sent, received=total.received + s.received,
                        duplicates=total.duplicates + s.duplicates, late=total.late + s.late, retries=total.retries + s.retries,
                        unreachable=total.unreachable + s.unreachable, ignored=total.ignored + s.ignored,
                        send_errors=total.send_errors + s.send_errors, duration_s=total.duration_s + s.duration_s)
        methods += [m for m in s.method.split("+") if m not in methods]
    hosts = tuple(rows[a] for a in sorted(rows, key=address_key))
    pps = round(total.sent / total.duration_s, 1) if total.duration_s else 0.0
    return SweepResult(hosts=hosts, stats=replace(total, targets=len(hosts), pps=pps, method="+".join(methods) or "ndp"))


def discover(scoped: Sequence[ScopedTarget] = (), local: Sequence[str] = (), *, transport: Transport | None = None,
             timeout: float = 1.0, retries: int | None = 1, rate: float | None = None, tap: Tap | None = None,
             limit: int = LOCAL_PREFIX_LIMIT, source: str | None = None, stopped: Stopped | None = None,
             found: Found | None = None) -> SweepResult:
    """On-link IPv6 discovery for a sweep (``discover_parts``), its parts merged into one result; ``found`` gets
    each host's row as soon as it answers."""
    return merge(list(discover_parts(scoped, local, transport=transport, timeout=timeout, retries=retries, rate=rate,
                                     tap=tap, limit=limit, source=source, stopped=stopped, found=found)))


def discover_parts(scoped: Sequence[ScopedTarget] = (), local: Sequence[str] = (), *, transport: Transport | None = None,
                   timeout: float = 1.0, retries: int | None = 1, rate: float | None = None, tap: Tap | None = None,
                   limit: int = LOCAL_PREFIX_LIMIT, source: str | None = None, found: Found | None = None,
                   stopped: Stopped | None = None) -> Iterator[SweepResult]:
    """On-link IPv6 discovery: scoped unicast targets (``fe80::1%eth0``) by Neighbor Discovery, scoped groups
    (``ff02::1%eth0``) by multicast echo from the link-local address (as ping), and each ``local`` interface
    (``sweep --local``) by an echo to ff02::1 from each of its addresses plus a solicitation of every address of
    its on-link prefixes that hold at most ``limit`` addresses. Each part's result as soon as that part ends (an
    address may come in several: ``merge`` keeps one row). ``source`` (``--source``, an address of each
    interface asked on) is what every probe is sent from; ``found`` gets each host's row as soon as it answers
    (the part's result still holds it). Once ``stopped()`` (Ctrl-C) the running part ends within ``STOP_SLICE``
    with what answered, and no part starts after it. The options and interfaces are checked here, before the
    first part sends anything."""
    part = _checked(transport, timeout, retries, rate, tap, source, found, stopped)
    for iface in local:
        lnk = link6(iface, transport, option="--local")  # every interface checked before anything is sent
        if source:
            lnk.own(source)
    for s in scoped:
        try:
            lnk = link6(s.interface, transport)
        except InvalidOption as exc:
            raise InvalidTarget(str(s), exc.allowed, hint="the name after % is the interface to ask on") from None
        if source:
            lnk.own(source)
    return _parts(scoped, local, part, limit)


def _parts(scoped: Sequence[ScopedTarget], local: Sequence[str], part: _Part, limit: int) -> Iterator[SweepResult]:
    """Each part's result in turn; none starts once ``stopped()``."""
    stopped = part.stopped
    by_iface: dict[str, list[ScopedTarget]] = {}
    for s in scoped:
        by_iface.setdefault(s.interface, []).append(s)
    for iface, group in by_iface.items():
        unicast = [s.address for s in group if not s.multicast]
        if unicast and not stopped():
            yield _solicit(iface, unicast, part)
        for g in dict.fromkeys(s.address for s in group if s.multicast):
            if stopped():
                return
            yield _echo(iface, g, False, part)
    for iface in dict.fromkeys(local):
        if stopped():
            return
        yield _echo(iface, ALL_NODES, True, part)
        small = [n for n in link6(iface, part.transport).prefixes() if n.num_addresses <= limit]
        if small and not stopped():
            yield _solicit(iface, [int(a) for n in small for a in n], part)
