"""ping's matcher (ARCHITECTURE.md): is this ICMP message about one of our probes, and which one?

A pure function of bytes: ``icmp.parse`` reads the message, and the ``Matcher`` decides.
An echo reply is ours when its id (ours on raw sockets; the kernel demultiplexes datagram
sockets) and the 8-byte per-session nonce at the start of the payload are ours. An ICMP
error is ours when the datagram it quotes (``icmp.quoted_probe``) is one of our echo
requests to our destination: same id and, as far as it was quoted, the nonce.
"""

from __future__ import annotations

from dataclasses import dataclass

from recon import icmp

__all__ = ["ErrorMatch", "Matcher", "ReplyMatch"]


@dataclass(frozen=True, slots=True)
class ReplyMatch:
    seq: int
    source: str
    hops: int | None
    nbytes: int  # ICMP bytes received (header and payload)


@dataclass(frozen=True, slots=True)
class ErrorMatch:
    seq: int
    reporter: str | None
    icmp_type: int
    icmp_code: int
    info: int  # icmp.error_info: the MTU, the pointer, or the raw rest-of-header


@dataclass(frozen=True, slots=True)
class Matcher:
    """Matches what one echo socket reads against one session's probes."""

    version: int
    ident: int
    nonce: bytes  # empty when the payload is too short to carry it
    destination: str
    check_ident: bool  # raw sockets see every ping on the host; datagram sockets only their own
    multicast: bool = False  # replies come from every host on the link, not from ``destination``

    def _nonce_ok(self, payload: bytes) -> bool:
        return not self.nonce or len(payload) < len(self.nonce) or payload[:len(self.nonce)] == self.nonce

    def match(self, data: bytes, *, ip_header: bool, source: str = "", hops: int | None = None
              ) -> ReplyMatch | ErrorMatch | None:
        """What ``data`` (as the socket read it) says about our probes, or None when it is not ours."""
        msg = icmp.parse(data, self.version, ip_header=ip_header, src=source or None, ttl=hops)
        if msg is None:
            return None
        if msg.type == (icmp.ECHO_REPLY if self.version == 4 else icmp.ECHO6_REPLY):
            if self.check_ident and msg.ident != self.ident:
                return None
            if self.nonce and msg.payload[:len(self.nonce)] != self.nonce:
                return None
            return ReplyMatch(msg.seq, msg.src or source, msg.ttl, 8 + len(msg.payload))
        if not msg.is_error or msg.quoted is None:
            return None
        q = msg.quoted
        request = icmp.ECHO_REQUEST if self.version == 4 else icmp.ECHO6_REQUEST
        if q.proto != (1 if self.version == 4 else 58) or q.icmp_type != request or q.seq is None:
            return None
        if (q.dst != self.destination and not self.multicast) or q.ident != self.ident:
            return None
        if not self._nonce_ok(q.payload):
            return None
        info = icmp.error_info(msg.type, msg.code, msg.rest, self.version)
        return ErrorMatch(q.seq, msg.src or source or None, msg.type, msg.code, info)

    def match_quoted(self, quoted_icmp: bytes) -> int | None:
        """The seq of the probe an error-queue record quotes (from its ICMP header on), or None."""
        if len(quoted_icmp) < 8:
            return None
        if self.nonce and len(quoted_icmp) >= 8 + len(self.nonce) and quoted_icmp[8:8 + len(self.nonce)] != self.nonce:
            return None
        return int.from_bytes(quoted_icmp[6:8], "big")
