"""Discovery probes, one class per kind (ARCHITECTURE.md): how each is built and which reply answers it.

Every probe has ``build(target, cookie) -> bytes`` and ``match(reply) -> Answer | None``,
Scapy's ``answers()``/``hashret()`` idea made stateless the way zmap does it: nothing is
remembered per probe. What identifies our probe travels in the packet and comes back in
the answer:

* ICMP echo / timestamp / mask: the id and seq carry the target's index in the sweep
  (the engine's ``IcmpMatcher`` decodes them); ``cookie`` is that 32-bit id/seq word.
* TCP SYN / ACK: the sequence number (SYN) or acknowledgment number (ACK) is a keyed
  cookie of (destination, port, kind). A SYN-ACK or RST acknowledges ``cookie + 1``
  (answer to a SYN); the RST to a bare ACK carries ``cookie`` as its sequence number
  (RFC 9293 3.10.7.1). A SYN to a port gets SYN-ACK (open) or RST (closed): either means
  the host is up. The kernel, which never opened a connection, answers a SYN-ACK with an
  RST by itself; nothing in recon has to.
* UDP: the source port and the payload carry the cookie; an answer is any UDP datagram
  back to that port from the target's port, or an ICMP port unreachable *from the target
  itself* quoting our datagram (a router's unreachable makes the target unreachable).
* ARP: the who-has of the engine's ARP path; a reply is keyed by the sender's address.

Cookies (``Cookies``) are blake2s keyed with a random key per sweep, so nobody can forge
an answer, and a reply is accepted only when its cookie checks. Scapy builds each
template once; ``build`` patches bytes.

The TCP/UDP probes have IPv6 twins (``Syn6``, ``Ack6``, ``Udp6``, ``family = 6``): the same
cookies over 128-bit addresses, the RFC 8200 section 8.1 pseudo-header in the checksum, and
``match6(segment, source, hops)`` because raw IPv6 sockets read no IP header (the source and
hop limit come from ``recvmsg``). ICMPv6 echo is recon/engine6.py's, with the id/seq scheme above.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import socket
import struct
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from recon import scapyload
from recon.errors import InvalidOption
from recon.icmp import Quoted, icmp_name
from recon.transport import FAMILY4, FAMILY6

__all__ = [
    "DEFAULT_PROBES",
    "ICMP_KINDS",
    "L4_KINDS",
    "Ack",
    "Ack6",
    "Answer",
    "Arp",
    "Cookies",
    "Echo",
    "IcmpProbe",
    "L4Probe",
    "Mask",
    "Probe",
    "ProbeSpec",
    "Syn",
    "Syn6",
    "TcpProbe",
    "Timestamp",
    "Udp",
    "Udp6",
    "csum_fold",
    "l4_probes6",
    "parse_probes",
]

ICMP_KINDS = ("echo", "timestamp", "mask")
L4_KINDS = ("syn", "ack", "udp")
DEFAULT_PROBES = ("echo", "syn:443", "ack:80", "timestamp")  # nmap -sn's host discovery for routed targets
_HELP = "echo, timestamp, mask, syn:PORTS, ack:PORTS or udp:PORTS (e.g. syn:443,80)"
_TCP_SYN, _TCP_RST, _TCP_ACK = 0x02, 0x04, 0x10


@dataclass(frozen=True, slots=True)
class Answer:
    """What a reply says about a target: ``up`` (answered) or not (an error from a router)."""

    address: int  # the target as int (IPv4: 32 bits, IPv6: 128 bits)
    reason: str  # echo-reply, timestamp-reply, syn-ack, rst, udp-reply, port-unreachable, arp-reply, or an ICMP error name
    ttl: int
    up: bool = True
    reporter: str | None = None  # who sent an error about the target


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    """One probe kind and port as given on the command line: ``syn:443`` → ``ProbeSpec("syn", 443)``."""

    kind: str
    port: int = 0

    def __str__(self) -> str:
        return f"{self.kind}:{self.port}" if self.kind in L4_KINDS else self.kind


def parse_probes(specs: str | Iterable[str] | None) -> tuple[ProbeSpec, ...]:
    """``["echo", "syn:443,80", "udp:53"]`` → one ProbeSpec per kind and port, in order, no repeats.

    ``None`` is the default set (``DEFAULT_PROBES``); a bad spec is InvalidOption naming ``--probe``.
    """
    if specs is None:
        specs = DEFAULT_PROBES
    elif isinstance(specs, str):
        specs = [specs]
    out: dict[ProbeSpec, None] = {}
    for spec in specs:
        kind, sep, ports = spec.strip().lower().partition(":")
        if kind in ICMP_KINDS and not sep:
            out[ProbeSpec(kind)] = None
            continue
        if kind not in L4_KINDS or not ports:
            raise InvalidOption("--probe", spec, _HELP)
        for text in ports.split(","):
            if not text.isascii() or not text.isdigit() or len(text) > 5 or not 1 <= int(text) <= 65535:  # int() of 5,000 digits raises
                raise InvalidOption("--probe", spec, "ports are numbers from 1 to 65535, comma-separated")
            out[ProbeSpec(kind, int(text))] = None
    if not out:
        raise InvalidOption("--probe", ",".join(specs), _HELP)
    return tuple(out)


_COOKIE_INPUT = struct.Struct("!IHB")
_TCP_HEADER = struct.Struct("!HHIIHHHH")  # ports, seq, ack, data offset and flags, window, checksum, urgent pointer
_UDP_PROBE = struct.Struct("!HHHHI")  # ports, length, checksum, and the cookie as the payload
# a send batch's slot (transport.SendBatch): the sockaddr_in (family, port, address, 8 zero bytes), then the probe;
# over IPv6 the sockaddr_in6 (family, port, flow info 0, the 16-byte address, scope id 0: TCP/UDP go to unscoped targets)
_TCP_SLOT = struct.Struct("!HHI8x" + _TCP_HEADER.format[1:])
_UDP_SLOT = struct.Struct("!HHI8x" + _UDP_PROBE.format[1:])
_TCP_SLOT6 = struct.Struct("!HH4x16s4x" + _TCP_HEADER.format[1:])
_UDP_SLOT6 = struct.Struct("!HH4x16s4x" + _UDP_PROBE.format[1:])


class Cookies:
    """Keyed 32-bit cookies of (destination, port, kind): blake2s with a random key per sweep."""

    __slots__ = ("_base",)

    def __init__(self, key: bytes | None = None) -> None:
        self._base = hashlib.blake2s(key=key or os.urandom(16), digest_size=4)

    def batch(self, dsts: Iterable[int], port: int, kind: int) -> list[int]:
        """The cookies of destinations ``dsts`` (IPv4 or IPv6) for one (port, kind): ``[self(d, port, kind) for d in
        dsts]``, without a call per destination (a sweep's TCP/UDP pass asks for a batch at a time)."""
        base, pack, tail, out = self._base, _COOKIE_INPUT.pack, struct.pack("!HB", port, kind), []
        for dst in dsts:
            h = base.copy()
            h.update(pack(dst, port, kind) if dst <= 0xFFFFFFFF else dst.to_bytes(16, "big") + tail)  # as __call__
            out.append(int.from_bytes(h.digest(), "big"))
        return out

    def __call__(self, dst: int, port: int, kind: int) -> int:
        h = self._base.copy()
        if dst <= 0xFFFFFFFF:
            h.update(_COOKIE_INPUT.pack(dst, port, kind))
        else:  # IPv6 (an IPv4-sized IPv6 address shares IPv4's cookie: harmless, the key is per sweep)
            h.update(dst.to_bytes(16, "big") + struct.pack("!HB", port, kind))
        return int.from_bytes(h.digest(), "big")


def csum_fold(total: int) -> int:
    """A one's-complement checksum from the sum of its 16-bit words (carries folded in twice, then inverted): the
    probes' checksums from a template's partial sum plus the words that change (RFC 1624 style)."""
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return total ^ 0xFFFF


def _words(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    return sum(struct.unpack(f"!{len(data) // 2}H", data))


def _sockaddrs(family: int, dsts: list[int]) -> tuple[int, list[int] | list[bytes]]:
    """A send batch's sockaddr family word and the address field of each of ``dsts`` (for ``_TCP_SLOT`` and
    ``_UDP_SLOT``: the int; for their IPv6 forms: 16 bytes)."""
    return (FAMILY6, [a.to_bytes(16, "big") for a in dsts]) if family == 6 else (FAMILY4, dsts)


def _address_int(text: str) -> int:
    """A quoted destination (IPv4 or IPv6 text) as the int the cookies are keyed by."""
    return int(ipaddress.ip_address(text))


class Probe:
    """A probe kind: its template, how to build one for a target, and which reply answers it."""

    kind: ClassVar[str] = ""
    family: ClassVar[int] = 4

    def build(self, target: int, cookie: int) -> bytes:
        raise NotImplementedError

    def match(self, data: bytes) -> Answer | None:
        raise NotImplementedError


class IcmpProbe(Probe):
    """ICMP request whose id/seq word is ``cookie`` (the engine puts the target's index there)."""

    request: ClassVar[int] = 8
    reply: ClassVar[int] = 0

    def __init__(self) -> None:
        icmp = scapyload.inet().ICMP(type=self.request, code=0, id=0, seq=0, chksum=0)
        if self.kind == "timestamp":
            icmp.ts_ori = icmp.ts_rx = icmp.ts_tx = 0
        raw = bytes(icmp)
        if self.kind == "echo":
            raw += b"\0" * 8  # payload: byte 0 is the attempt number
        elif self.kind == "mask":
            raw = raw[:8] + b"\0" * 4  # the address mask field
        self.template = raw
        self.partial = _words(raw)

    def build(self, target: int, cookie: int) -> bytes:
        msg = bytearray(self.template)
        struct.pack_into("!HHI", msg, 0, self.request << 8, csum_fold(self.partial + (cookie >> 16) + (cookie & 0xFFFF)), cookie)
        return bytes(msg)

    def match(self, data: bytes) -> Answer | None:
        """The reply kind to this request from any source (the engine's IcmpMatcher also checks id/seq)."""
        ihl = (data[0] & 15) * 4
        if len(data) < ihl + 8 or data[9] != socket.IPPROTO_ICMP or data[ihl] != self.reply:
            return None
        return Answer(int.from_bytes(data[12:16], "big"), icmp_name(self.reply, 0), data[8])


class Echo(IcmpProbe):
    kind, request, reply = "echo", 8, 0


class Timestamp(IcmpProbe):
    kind, request, reply = "timestamp", 13, 14


class Mask(IcmpProbe):
    kind, request, reply = "mask", 17, 18


class L4Probe(Probe):
    """TCP/UDP probes: sent on a raw IP socket (the kernel adds the IP header), checksummed for ``source``."""

    proto: ClassVar[int] = 0
    tag: ClassVar[int] = 0  # the kind byte in the cookie, so a SYN's cookie never checks for an ACK

    def __init__(self, port: int, cookies: Cookies, source: int, sport: int) -> None:
        self.port, self.cookies, self.source, self.sport = port, cookies, source, sport
        self.template = self._template()
        # pseudo-header (source, protocol, length) + the template with checksum 0. An address's 16-bit words sum to
        # the address itself mod 0xFFFF (2**16 is 1 there), so ``% 0xFFFF`` is its share for IPv4 and IPv6 alike
        # (RFC 1071: the one's complement sum is the sum mod 0xFFFF; the total is never 0, so it folds the same)
        self.partial = source % 0xFFFF + self.proto + len(self.template) + _words(self.template)

    def _template(self) -> bytes:
        raise NotImplementedError

    def build(self, target: int, cookie: int | None = None) -> bytes:
        buf = bytearray(len(self.template))
        self.build_into(buf, 0, target, cookie)
        return bytes(buf)

    def build_into(self, buf: bytearray, offset: int, target: int, cookie: int | None = None) -> None:
        """Write the probe for ``target`` into ``buf`` at ``offset`` (a send batch's slot) with one ``pack_into``
        of the whole header: the sweep calls this once per probe, and a bytes object per probe costs speed."""
        raise NotImplementedError

    def write_slots(self, area: bytearray, slot: int, addrs: Sequence[int], held: array[int], count: int) -> None:
        """Write the probes to ``addrs[held[k]]`` for k < ``count`` into the first ``count`` slots of a send batch
        (``write_targets``)."""
        self.write_targets(area, slot, [addrs[held[k]] for k in range(count)])

    def write_targets(self, area: bytearray, slot: int, dsts: list[int]) -> None:
        """Write the probe to ``dsts[k]`` into slot k of a send batch (``transport.SendBatch``: ``slot`` bytes each,
        the sockaddr_in, or sockaddr_in6 for an IPv6 probe, then the probe), each with one ``pack_into``. A sweep's
        hot loop, for either family: one call per batch, because a call per probe costs speed."""
        raise NotImplementedError

    def cookie(self, target: int) -> int:
        return self.cookies(target, self.port, self.tag)

    def answers_quote(self, quoted: Quoted) -> bool:
        """True when an ICMP error's quoted datagram is this probe (to ``quoted.dst``, cookie checked)."""
        raise NotImplementedError


class TcpProbe(L4Probe):
    proto = socket.IPPROTO_TCP
    flags: ClassVar[int] = _TCP_SYN

    def __init__(self, port: int, cookies: Cookies, source: int, sport: int) -> None:
        super().__init__(port, cookies, source, sport)
        self._flags_word, self._window = struct.unpack_from("!HH", self.template, 12)  # as Scapy built them

    def _template(self) -> bytes:
        return bytes(scapyload.inet().TCP(sport=self.sport, dport=self.port, seq=0, ack=0, flags=self.flags, window=1024, chksum=0))

    def build_into(self, buf: bytearray, offset: int, target: int, cookie: int | None = None) -> None:
        c = self.cookie(target) if cookie is None else cookie
        seq, ack = (c, 0) if self.flags == _TCP_SYN else (0, c)
        total = self.partial + target % 0xFFFF + (c >> 16) + (c & 0xFFFF)  # target: IPv4 or IPv6 (see partial)
        _TCP_HEADER.pack_into(buf, offset, self.sport, self.port, seq, ack, self._flags_word, self._window, csum_fold(total), 0)

    def write_targets(self, area: bytearray, slot: int, dsts: list[int]) -> None:
        # build_into's arithmetic inline (tests/test_probes.py holds the two to the same bytes)
        sport, port, flags_word, window, partial = self.sport, self.port, self._flags_word, self._window, self.partial
        syn, pack_into = self.flags == _TCP_SYN, (_TCP_SLOT6 if self.family == 6 else _TCP_SLOT).pack_into
        fam, where = _sockaddrs(self.family, dsts)
        for k, (a, w, c) in enumerate(zip(dsts, where, self.cookies.batch(dsts, port, self.tag), strict=True)):
            total = partial + a % 0xFFFF + (c >> 16) + (c & 0xFFFF)
            total = (total & 0xFFFF) + (total >> 16)
            total = (total & 0xFFFF) + (total >> 16)
            pack_into(area, k * slot, fam, 0, w, sport, port, c if syn else 0, 0 if syn else c, flags_word, window,
                      total ^ 0xFFFF, 0)

    def match(self, data: bytes) -> Answer | None:
        """A SYN-ACK or RST from ``port`` to our source port whose acknowledgment (or sequence) checks."""
        ihl = (data[0] & 15) * 4
        if len(data) < ihl + 20 or data[9] != socket.IPPROTO_TCP:
            return None
        return self._answer(data, ihl, int.from_bytes(data[12:16], "big"), data[8])

    def _answer(self, data: bytes, at: int, src: int, ttl: int) -> Answer | None:
        """The TCP segment at ``data[at:]`` from ``src``: an answer to this probe when its cookie checks."""
        sport, dport, seq, ack, flags = struct.unpack_from("!HHIIxB", data, at)
        if sport != self.port or dport != self.sport:
            return None
        c = self.cookie(src)
        if self.flags == _TCP_SYN:
            if flags & _TCP_ACK and (ack - 1) & 0xFFFFFFFF == c:
                if flags & _TCP_SYN:
                    return Answer(src, "syn-ack", ttl)
                if flags & _TCP_RST:
                    return Answer(src, "rst", ttl)
            return None
        if flags & _TCP_RST and seq == c:
            return Answer(src, "rst", ttl)
        return None

    def answers_quote(self, quoted: Quoted) -> bool:
        if quoted.proto != socket.IPPROTO_TCP or len(quoted.l4) < 8 or quoted.ports != (self.sport, self.port):
            return False
        seq = int.from_bytes(quoted.l4[4:8], "big")
        if self.flags != _TCP_SYN:
            return True  # an ACK probe's cookie is in the acknowledgment, beyond the 8 bytes routers must quote
        return seq == self.cookie(_address_int(quoted.dst))


class Syn(TcpProbe):
    kind, flags, tag = "syn", _TCP_SYN, 1


class Ack(TcpProbe):
    kind, flags, tag = "ack", _TCP_ACK, 2


class Udp(L4Probe):
    """A UDP datagram from a cookie-chosen port (32768-65535) with the cookie as payload."""

    kind, proto, tag = "udp", socket.IPPROTO_UDP, 3

    def _template(self) -> bytes:
        return bytes(scapyload.inet().UDP(sport=0, dport=self.port, chksum=0) / (b"\0" * 4))

    def source_port(self, cookie: int) -> int:
        return 0x8000 | (cookie >> 17)

    def build_into(self, buf: bytearray, offset: int, target: int, cookie: int | None = None) -> None:
        c = self.cookie(target) if cookie is None else cookie
        sport = self.source_port(c)
        total = self.partial + target % 0xFFFF + sport + (c >> 16) + (c & 0xFFFF)  # target: IPv4 or IPv6 (see partial)
        # 0 is "no checksum": allowed over IPv4, forbidden over IPv6 (RFC 8200 8.1); 0xFFFF is the same sum for both
        _UDP_PROBE.pack_into(buf, offset, sport, self.port, len(self.template), csum_fold(total) or 0xFFFF, c)

    def write_targets(self, area: bytearray, slot: int, dsts: list[int]) -> None:
        # build_into's arithmetic inline (tests/test_probes.py holds the two to the same bytes)
        port, length, partial = self.port, len(self.template), self.partial
        pack_into = (_UDP_SLOT6 if self.family == 6 else _UDP_SLOT).pack_into
        fam, where = _sockaddrs(self.family, dsts)
        for k, (a, w, c) in enumerate(zip(dsts, where, self.cookies.batch(dsts, port, self.tag), strict=True)):
            sport = 0x8000 | (c >> 17)  # source_port(c)
            total = partial + a % 0xFFFF + sport + (c >> 16) + (c & 0xFFFF)
            total = (total & 0xFFFF) + (total >> 16)
            total = (total & 0xFFFF) + (total >> 16)
            pack_into(area, k * slot, fam, 0, w, sport, port, length, (total ^ 0xFFFF) or 0xFFFF, c)

    def match(self, data: bytes) -> Answer | None:
        """Any UDP datagram from ``port`` of the target back to the source port its cookie chose."""
        ihl = (data[0] & 15) * 4
        if len(data) < ihl + 8 or data[9] != socket.IPPROTO_UDP:
            return None
        return self._answer(data, ihl, int.from_bytes(data[12:16], "big"), data[8])

    def _answer(self, data: bytes, at: int, src: int, ttl: int) -> Answer | None:
        sport, dport = struct.unpack_from("!HH", data, at)
        if sport != self.port or dport != self.source_port(self.cookie(src)):
            return None
        return Answer(src, "udp-reply", ttl)

    def answers_quote(self, quoted: Quoted) -> bool:
        if quoted.proto != socket.IPPROTO_UDP or quoted.ports is None:
            return False
        c = self.cookie(_address_int(quoted.dst))
        if quoted.ports != (self.source_port(c), self.port):
            return False
        return len(quoted.payload) < 4 or quoted.payload[:4] == c.to_bytes(4, "big")  # checked when quoted


class _Over6:
    """What makes a TCP/UDP probe an IPv6 one: a reply is read without its IP header (raw IPv6 sockets strip it;
    the caller passes source and hop limit). Built as the IPv4 probe is (``build_into``, and ``write_targets``
    with a sockaddr_in6 in each slot: the pseudo-header's addresses are summed for either width), with 128-bit
    source and target."""

    family: ClassVar[int] = 6
    proto: ClassVar[int]

    if TYPE_CHECKING:
        def _answer(self, data: bytes, at: int, src: int, ttl: int) -> Answer | None: ...  # TcpProbe's or Udp's

    def match6(self, data: bytes, src: int, hops: int) -> Answer | None:
        """``data`` is the segment (or datagram) a raw IPv6 socket read from ``src`` with hop limit ``hops``."""
        return self._answer(data, 0, src, hops) if len(data) >= (20 if self.proto == socket.IPPROTO_TCP else 8) else None


class TcpProbe6(_Over6, TcpProbe):
    pass


class Syn6(TcpProbe6):
    kind, flags, tag = "syn", _TCP_SYN, 1


class Ack6(TcpProbe6):
    kind, flags, tag = "ack", _TCP_ACK, 2


class Udp6(_Over6, Udp):
    pass


class Arp(Probe):
    """ARP who-has from the engine's link; a reply from the target's address answers it."""

    kind = "arp"

    def __init__(self, template: bytes, my_address: int) -> None:
        self.template, self.my_address = template, my_address

    def build(self, target: int, cookie: int = 0) -> bytes:
        frame = bytearray(self.template)
        frame[38:42] = target.to_bytes(4, "big")
        return bytes(frame)

    def match(self, data: bytes) -> Answer | None:
        if len(data) < 42 or data[12:14] != b"\x08\x06" or data[20:22] != b"\x00\x02":
            return None
        if int.from_bytes(data[38:42], "big") != self.my_address:
            return None
        return Answer(int.from_bytes(data[28:32], "big"), "arp-reply", 0)


def icmp_probes(specs: Sequence[ProbeSpec]) -> tuple[IcmpProbe, ...]:
    """The ICMP probe objects for the ICMP kinds among ``specs``, in order."""
    classes: dict[str, type[IcmpProbe]] = {"echo": Echo, "timestamp": Timestamp, "mask": Mask}
    return tuple(classes[s.kind]() for s in specs if s.kind in classes)


def l4_probes(specs: Sequence[ProbeSpec], cookies: Cookies, source: int, sport: int) -> tuple[L4Probe, ...]:
    """The TCP/UDP probe objects for ``specs``, sharing one cookie key, source address and TCP source port."""
    classes: dict[str, type[L4Probe]] = {"syn": Syn, "ack": Ack, "udp": Udp}
    return tuple(classes[s.kind](s.port, cookies, source, sport) for s in specs if s.kind in classes)


def l4_probes6(specs: Sequence[ProbeSpec], cookies: Cookies, source: int, sport: int) -> tuple[TcpProbe6 | Udp6, ...]:
    """The IPv6 TCP/UDP probe objects for ``specs`` (``source``: the 128-bit address the checksums are for)."""
    classes: dict[str, type[TcpProbe6 | Udp6]] = {"syn": Syn6, "ack": Ack6, "udp": Udp6}
    return tuple(classes[s.kind](s.port, cookies, source, sport) for s in specs if s.kind in classes)
