"""ICMP and ICMPv6 knowledge in one place (ARCHITECTURE.md): type and code names, which
reply answers which request, and the one parser for a reply or an error that quotes our probe.

Names here are machine names (``echo-reply``, ``host-unreachable``): they appear in
JSON and in sweep's ``reply`` column. The phrases people read (iputils' "Destination
Host Unreachable") live in render.py.

Matching follows Scapy's ``answers()``/``hashret()`` idea: a reply answers a probe when
its id/seq (and our payload nonce) are the probe's; an error answers a probe when the
datagram it quotes is the probe (destination, protocol, id, seq).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

__all__ = [
    "ECHO6_REPLY",
    "ECHO6_REQUEST",
    "ECHO_REPLY",
    "ECHO_REQUEST",
    "ERROR_TYPES4",
    "ERROR_TYPES6",
    "REPLY_TO",
    "IcmpMessage",
    "Quoted",
    "error_info",
    "error_kind",
    "icmp_name",
    "parse",
    "quoted_probe",
]

ECHO_REPLY, ECHO_REQUEST = 0, 8
ECHO6_REQUEST, ECHO6_REPLY = 128, 129
REPLY_TO = {8: 0, 13: 14, 17: 18, 128: 129}  # request type → its reply type
ERROR_TYPES4 = frozenset((3, 4, 5, 11, 12))
ERROR_TYPES6 = frozenset((1, 2, 3, 4))

TYPES4 = {0: "echo-reply", 3: "dest-unreach", 4: "source-quench", 5: "redirect", 8: "echo-request",
          9: "router-advertisement", 10: "router-solicitation", 11: "time-exceeded",
          12: "parameter-problem", 13: "timestamp-request", 14: "timestamp-reply", 15: "info-request",
          16: "info-reply", 17: "mask-request", 18: "mask-reply"}
CODES4 = {
    3: {0: "net-unreachable", 1: "host-unreachable", 2: "protocol-unreachable", 3: "port-unreachable",
        4: "fragmentation-needed", 5: "source-route-failed", 6: "net-unknown", 7: "host-unknown",
        8: "source-host-isolated", 9: "net-prohibited", 10: "host-prohibited", 11: "net-tos-unreachable",
        12: "host-tos-unreachable", 13: "admin-prohibited", 14: "precedence-violation", 15: "precedence-cutoff"},
    5: {0: "redirect-net", 1: "redirect-host", 2: "redirect-tos-net", 3: "redirect-tos-host"},
    11: {0: "ttl-exceeded", 1: "reassembly-time-exceeded"},
    12: {0: "pointer-indicates-error", 1: "missing-option", 2: "bad-length"},
}
TYPES6 = {1: "dest-unreach", 2: "packet-too-big", 3: "time-exceeded", 4: "parameter-problem",
          128: "echo-request", 129: "echo-reply", 130: "mld-query", 131: "mld-report", 132: "mld-done",
          133: "router-solicitation", 134: "router-advertisement", 135: "neighbor-solicitation",
          136: "neighbor-advertisement", 137: "redirect", 143: "mldv2-report"}
CODES6 = {
    1: {0: "no-route", 1: "admin-prohibited", 2: "beyond-scope", 3: "address-unreachable", 4: "port-unreachable",
        5: "source-policy-failed", 6: "reject-route"},
    3: {0: "hop-limit-exceeded", 1: "reassembly-time-exceeded"},
}


def icmp_name(icmp_type: int, code: int, version: int = 4) -> str:
    """``echo-request``, ``host-unreachable`` (the code's name where it says more), or ``type-N/code-M``."""
    types, codes = (TYPES4, CODES4) if version == 4 else (TYPES6, CODES6)
    name = types.get(icmp_type)
    if name is None:
        return f"type-{icmp_type}/code-{code}"
    by_code = codes.get(icmp_type)
    if by_code is not None:
        return by_code.get(code, f"{name}/code-{code}")
    return name if code == 0 else f"{name}/code-{code}"


_KIND4 = {(3, 0): "net-unreachable", (3, 1): "host-unreachable", (3, 3): "port-unreachable"}
_KIND6 = {(1, 0): "net-unreachable", (1, 3): "host-unreachable", (1, 4): "port-unreachable"}


def error_kind(icmp_type: int, code: int, version: int = 4) -> str:
    """The coarse class of an ICMP error, as ping reports it (``PingError.kind``)."""
    if version == 4:
        if icmp_type == 3:
            return "frag-needed" if code == 4 else _KIND4.get((3, code), "unreachable")
        return {11: "time-exceeded", 4: "source-quench", 5: "redirect", 12: "parameter-problem"}.get(icmp_type, "icmp")
    if icmp_type == 1:
        return _KIND6.get((1, code), "unreachable")
    return {2: "frag-needed", 3: "time-exceeded", 4: "parameter-problem"}.get(icmp_type, "icmp")


def error_info(icmp_type: int, code: int, rest: int, version: int = 4) -> int:
    """The useful part of an error's 4 'rest of header' bytes: the next-hop MTU, the pointer, else all of it."""
    if version == 4 and icmp_type == 3 and code == 4:
        return rest & 0xFFFF
    if version == 4 and icmp_type == 12:
        return rest >> 24
    return rest


@dataclass(frozen=True, slots=True)
class Quoted:
    """The datagram an ICMP error quotes: our probe, as far as it was quoted."""

    dst: str
    proto: int
    l4: bytes  # the first (up to 8) bytes of the quoted transport header
    payload: bytes  # what follows it, if the error quoted more (Linux quotes up to 576/1280 bytes)

    @property
    def icmp_type(self) -> int | None:
        return self.l4[0] if len(self.l4) >= 1 else None

    @property
    def ident(self) -> int | None:
        return int.from_bytes(self.l4[4:6], "big") if len(self.l4) >= 6 else None

    @property
    def seq(self) -> int | None:
        return int.from_bytes(self.l4[6:8], "big") if len(self.l4) >= 8 else None

    @property
    def ports(self) -> tuple[int, int] | None:
        """(source port, destination port) of a quoted TCP/UDP header."""
        if len(self.l4) < 4:
            return None
        sport, dport = struct.unpack("!HH", self.l4[:4])
        return sport, dport


@dataclass(frozen=True, slots=True)
class IcmpMessage:
    """One ICMP/ICMPv6 message: a reply (id/seq/payload) or an error (with the probe it quotes)."""

    version: int
    type: int
    code: int
    ident: int
    seq: int
    rest: int  # header bytes 4-7 as one number (id/seq for echo, MTU or pointer for errors)
    payload: bytes
    src: str | None = None
    ttl: int | None = None
    quoted: Quoted | None = None

    @property
    def is_error(self) -> bool:
        return self.type in (ERROR_TYPES4 if self.version == 4 else ERROR_TYPES6)


def quoted_probe(body: bytes, version: int) -> Quoted | None:
    """The probe quoted after an error's 8-byte ICMP header (``body`` starts at the quoted IP header)."""
    if version == 4:
        if len(body) < 20 or body[0] >> 4 != 4:
            return None
        ihl = (body[0] & 15) * 4
        if ihl < 20 or len(body) < ihl:
            return None
        l4 = body[ihl:ihl + 8]
        return Quoted(socket.inet_ntoa(body[16:20]), body[9], bytes(l4), bytes(body[ihl + 8:]))
    if len(body) < 40 or body[0] >> 4 != 6:
        return None
    return Quoted(socket.inet_ntop(socket.AF_INET6, body[24:40]), body[6], bytes(body[40:48]), bytes(body[48:]))


def parse(data: bytes, version: int, *, ip_header: bool, src: str | None = None, ttl: int | None = None) -> IcmpMessage | None:
    """Parse what an ICMP socket read; None when it is too short or not ICMP.

    ``ip_header``: the bytes start with the IPv4 header (IPv4 raw sockets); then the source
    and TTL come from it. Otherwise they start at the ICMP header (datagram sockets, ICMPv6)
    and the caller passes the source and TTL it got from the socket.
    """
    if ip_header:
        if len(data) < 20 or data[0] >> 4 != 4 or data[9] != 1:
            return None
        ihl = (data[0] & 15) * 4
        src, ttl = socket.inet_ntoa(data[12:16]), data[8]
        data = data[ihl:]
    if len(data) < 8:
        return None
    icmp_type, code, _csum, ident, seq = struct.unpack_from("!BBHHH", data)
    rest = (ident << 16) | seq
    errors = ERROR_TYPES4 if version == 4 else ERROR_TYPES6
    quoted = quoted_probe(data[8:], version) if icmp_type in errors else None
    return IcmpMessage(version, icmp_type, code, ident, seq, rest, bytes(data[8:]), src, ttl, quoted)
