"""Packet building that does not need Scapy: checksums and hand-built headers.

Scapy builds probe templates (``scapy.layers.inet``, imported lazily by callers);
this module holds the byte-level pieces shared by sweep, ping and craft.
"""

from __future__ import annotations

import socket
import struct

from recon.errors import InvalidOption
from recon.icmp import TYPES4
from recon.models import ChecksumCheck, CraftedPacket, CraftField, CraftSpec
from recon.protocols import CRAFT_NAMES, EXPERIMENTAL, ICMP, TCP, UDP

__all__ = [
    "DEFAULT_PROTO",
    "FIELD_RANGES",
    "TCP_FLAGS",
    "allowed",
    "build_packet",
    "check_spec",
    "inet_checksum",
    "ipv4_header",
    "verify_checksums",
]


def inet_checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum of ``data`` (odd length padded with a zero byte)."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF



# --- craft: hand-built IPv4 packets (struct, no Scapy) -------------------------------------------

TCP_FLAGS = "FSRPAUEC"  # bit 0 (0x01) first, as Scapy's FlagsField spells them
DEFAULT_PROTO = {"icmp": ICMP, "tcp": TCP, "udp": UDP, "raw": EXPERIMENTAL}

FIELD_RANGES = {  # attribute: (option name, lowest, highest)
    "tos": ("--tos", 0, 0xFF),
    "ident": ("--id", 0, 0xFFFF),
    "ttl": ("--ttl", 0, 0xFF),
    "frag_offset": ("--frag-offset", 0, 8191),
    "proto": ("--proto", 0, 0xFF),
    "checksum": ("--checksum", 0, 0xFFFF),
    "total_length": ("--len", 0, 0xFFFF),
    "icmp_type": ("--icmp-type", 0, 0xFF),
    "icmp_code": ("--icmp-code", 0, 0xFF),
    "icmp_id": ("--icmp-id", 0, 0xFFFF),
    "icmp_seq": ("--icmp-seq", 0, 0xFFFF),
    "sport": ("source port", 0, 0xFFFF),
    "dport": ("destination port", 0, 0xFFFF),
    "tcp_seq": ("--tcp-seq", 0, 0xFFFFFFFF),
    "tcp_ack": ("--tcp-ack", 0, 0xFFFFFFFF),
    "tcp_window": ("--window", 0, 0xFFFF),
}
_L4_HEADER = {"icmp": 8, "udp": 8, "tcp": 20, "raw": 0}


def ipv4_header(src: bytes, dst: bytes, payload_len: int, ttl: int, df: bool, proto: int = 1) -> bytes:
    """A plain 20-byte IPv4 header (id 0) with its checksum, for the synthetic headers in pcaps."""
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + payload_len, 0, 0x4000 if df else 0, ttl, proto, 0, src, dst)
    return hdr[:10] + inet_checksum(hdr).to_bytes(2, "big") + hdr[12:]


def allowed(lo: int, hi: int) -> str:
    """The range in InvalidOption messages: ``allowed 0..65535 (0xFFFF)``."""
    return f"allowed {lo}..{hi}" + (f" (0x{hi:X})" if hi > 255 else "")


def check_spec(spec: CraftSpec) -> None:
    """Raise InvalidOption naming the field and its allowed range for anything out of range."""
    for attr, (option, lo, hi) in FIELD_RANGES.items():
        value = getattr(spec, attr)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise InvalidOption(option, value, allowed(lo, hi))
    for option, addr in (("--src", spec.src), ("--dst", spec.dst)):
        try:
            socket.inet_pton(socket.AF_INET, addr)
        except (OSError, TypeError):
            raise InvalidOption(option, addr, "an IPv4 address in dotted quad form, e.g. 198.18.0.10") from None
    if len(spec.options) % 4 or len(spec.options) > 40:
        raise InvalidOption("--options", spec.options.hex(), "IP options are 0..40 bytes and a multiple of 4 "
                            f"(IHL counts 32-bit words; got {len(spec.options)} bytes; pad with 00 (EOL) or 01 (NOP))")
    if spec.payload not in _L4_HEADER:
        raise InvalidOption("payload", spec.payload, "one of icmp, udp, tcp, raw")
    bad = set(spec.tcp_flags.upper()) - set(TCP_FLAGS)
    if bad:
        raise InvalidOption("--flags", spec.tcp_flags, f"letters from {TCP_FLAGS} (FIN SYN RST PSH ACK URG ECE CWR)")
    size = 20 + len(spec.options) + _L4_HEADER[spec.payload] + len(spec.data)
    if size > 0xFFFF:
        raise InvalidOption("packet size", size, "at most 65535 bytes in all (IP header, payload header, data)")


def _flags_value(letters: str) -> int:
    return sum(1 << TCP_FLAGS.index(c) for c in set(letters.upper()))


def _flags_text(value: int) -> str:
    return "".join(c for i, c in enumerate(TCP_FLAGS) if value >> i & 1) or "none"


def _pseudo_header(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    return src + dst + struct.pack("!BBH", 0, proto, length)


def _transport(spec: CraftSpec, src: bytes, dst: bytes, pseudo_len: int) -> bytes:
    """The IP payload: ICMP/UDP/TCP header with its checksum, then the data.

    ``pseudo_len`` is the length in the UDP/TCP pseudo-header: what the IP header claims
    (total length - header length), as a receiver derives it and as Scapy computes it.
    """
    if spec.payload == "icmp":
        msg = struct.pack("!BBHHH", spec.icmp_type, spec.icmp_code, 0, spec.icmp_id, spec.icmp_seq) + spec.data
        return msg[:2] + struct.pack("!H", inet_checksum(msg)) + msg[4:]
    if spec.payload == "udp":
        length = 8 + len(spec.data)
        seg = struct.pack("!HHHH", spec.sport, spec.dport, length, 0) + spec.data
        csum = inet_checksum(_pseudo_header(src, dst, 17, pseudo_len) + seg) or 0xFFFF  # 0 means "no checksum"
        return seg[:6] + struct.pack("!H", csum) + seg[8:]
    if spec.payload == "tcp":
        seg = struct.pack("!HHIIBBHHH", spec.sport, spec.dport, spec.tcp_seq, spec.tcp_ack, 5 << 4,
                          _flags_value(spec.tcp_flags), spec.tcp_window, 0, 0) + spec.data
        csum = inet_checksum(_pseudo_header(src, dst, 6, pseudo_len) + seg)
        return seg[:16] + struct.pack("!H", csum) + seg[18:]
    return spec.data


def _hex(value: int, nbytes: int) -> str:
    return f"0x{value:0{nbytes * 2}x}"


def build_packet(spec: CraftSpec) -> CraftedPacket:
    """Build the IPv4 packet of ``spec`` byte by byte with ``struct`` and describe every field.

    Wrong values are built as given (``checksum``, ``total_length``): that is the point of
    crafting. Each checksum is reported with the value that would be correct.
    """
    check_spec(spec)
    src, dst = socket.inet_aton(spec.src), socket.inet_aton(spec.dst)
    proto = DEFAULT_PROTO[spec.payload] if spec.proto is None else spec.proto
    ihl = 5 + len(spec.options) // 4
    hlen = ihl * 4
    l4_len = _L4_HEADER[spec.payload] + len(spec.data)
    l4 = _transport(spec, src, dst, l4_len if spec.total_length is None else max(spec.total_length - hlen, 0))
    total = hlen + len(l4)
    tot_len = total if spec.total_length is None else spec.total_length
    flags = (2 if spec.df else 0) | (1 if spec.mf else 0)
    header = struct.pack("!BBHHHBBH4s4s", 4 << 4 | ihl, spec.tos, tot_len, spec.ident, flags << 13 | spec.frag_offset,
                         spec.ttl, proto, 0, src, dst) + spec.options
    ip_csum = inet_checksum(header) if spec.checksum is None else spec.checksum
    header = header[:10] + struct.pack("!H", ip_csum) + header[12:]
    data = header + l4

    checks = verify_checksums(data, spec.payload)  # recomputed from the bytes: the table shows what is really there
    f = CraftField
    flag_text = "+".join(n for n, on in (("DF", spec.df), ("MF", spec.mf)) if on) or "none"
    fields = [
        f("ip", "version", "4", 4, "0x4", 0, 1, "0-3"),
        f("ip", "ihl", f"{ihl} ({hlen} bytes)", ihl, f"0x{ihl:x}", 0, 1, "4-7"),
        f("ip", "tos", str(spec.tos), spec.tos, _hex(spec.tos, 1), 1, 1),
        f("ip", "total length", f"{tot_len}" + ("" if tot_len == total else f" (actual {total})"), tot_len, _hex(tot_len, 2), 2, 2),
        f("ip", "id", str(spec.ident), spec.ident, _hex(spec.ident, 2), 4, 2),
        f("ip", "flags", flag_text, flags, f"0x{flags:x}", 6, 1, "0-2"),
        f("ip", "fragment offset", f"{spec.frag_offset} ({spec.frag_offset * 8} bytes)", spec.frag_offset,
          _hex(spec.frag_offset, 2), 6, 2, "3-15"),
        f("ip", "ttl", str(spec.ttl), spec.ttl, _hex(spec.ttl, 1), 8, 1),
        f("ip", "protocol", f"{proto} ({CRAFT_NAMES.get(proto, 'other')})", proto, _hex(proto, 1), 9, 1),
        f("ip", "header checksum", _csum_text(checks[0]), ip_csum, _hex(ip_csum, 2), 10, 2),
        f("ip", "source", spec.src, None, src.hex(), 12, 4),
        f("ip", "destination", spec.dst, None, dst.hex(), 16, 4),
    ]
    if spec.options:
        fields.append(f("ip", "options", f"{len(spec.options)} bytes", None, spec.options.hex(), 20, len(spec.options)))
    at = hlen
    if spec.payload == "icmp":
        kind = TYPES4.get(spec.icmp_type, "other")  # the one ICMP name table (recon/icmp.py)
        fields += [
            f("icmp", "type", f"{spec.icmp_type} ({kind})", spec.icmp_type, _hex(spec.icmp_type, 1), at, 1),
            f("icmp", "code", str(spec.icmp_code), spec.icmp_code, _hex(spec.icmp_code, 1), at + 1, 1),
            f("icmp", "checksum", _csum_text(checks[1]), checks[1].value, _hex(checks[1].value, 2), at + 2, 2),
            f("icmp", "id", str(spec.icmp_id), spec.icmp_id, _hex(spec.icmp_id, 2), at + 4, 2),
            f("icmp", "seq", str(spec.icmp_seq), spec.icmp_seq, _hex(spec.icmp_seq, 2), at + 6, 2),
        ]
    elif spec.payload == "udp":
        fields += [
            f("udp", "source port", str(spec.sport), spec.sport, _hex(spec.sport, 2), at, 2),
            f("udp", "destination port", str(spec.dport), spec.dport, _hex(spec.dport, 2), at + 2, 2),
            f("udp", "length", str(len(l4)), len(l4), _hex(len(l4), 2), at + 4, 2),
            f("udp", "checksum", _csum_text(checks[1]), checks[1].value, _hex(checks[1].value, 2), at + 6, 2),
        ]
    elif spec.payload == "tcp":
        flag_bits = _flags_value(spec.tcp_flags)
        fields += [
            f("tcp", "source port", str(spec.sport), spec.sport, _hex(spec.sport, 2), at, 2),
            f("tcp", "destination port", str(spec.dport), spec.dport, _hex(spec.dport, 2), at + 2, 2),
            f("tcp", "seq", str(spec.tcp_seq), spec.tcp_seq, _hex(spec.tcp_seq, 4), at + 4, 4),
            f("tcp", "ack", str(spec.tcp_ack), spec.tcp_ack, _hex(spec.tcp_ack, 4), at + 8, 4),
            f("tcp", "data offset", "5 (20 bytes)", 5, "0x5", at + 12, 1, "0-3"),
            f("tcp", "flags", _flags_text(flag_bits), flag_bits, _hex(flag_bits, 1), at + 13, 1),
            f("tcp", "window", str(spec.tcp_window), spec.tcp_window, _hex(spec.tcp_window, 2), at + 14, 2),
            f("tcp", "checksum", _csum_text(checks[1]), checks[1].value, _hex(checks[1].value, 2), at + 16, 2),
            f("tcp", "urgent pointer", "0", 0, "0x0000", at + 18, 2),
        ]
    if spec.data:
        start = hlen + _L4_HEADER[spec.payload]
        fields.append(f("data", "data", f"{len(spec.data)} bytes", None, spec.data.hex(), start, len(spec.data)))
    return CraftedPacket(data, tuple(fields), tuple(checks), spec.src, spec.dst, proto, hlen)


def verify_checksums(data: bytes, proto_hint: str | None = None) -> tuple[ChecksumCheck, ...]:
    """Re-verify the checksums of IPv4 ``data`` from the bytes alone (IP header, then ICMP/UDP/TCP)."""
    hlen = (data[0] & 0x0F) * 4
    header = bytearray(data[:hlen])
    value = int.from_bytes(header[10:12], "big")
    header[10:12] = b"\0\0"
    checks = [ChecksumCheck("ip", 10, value, inet_checksum(bytes(header)))]
    proto, l4 = data[9], bytearray(data[hlen:])
    at = {1: 2, 17: 6, 6: 16}.get(proto) if proto_hint is None else {"icmp": 2, "udp": 6, "tcp": 16}.get(proto_hint)
    fragment = int.from_bytes(data[6:8], "big") & 0x3FFF  # MF or an offset: the header may be elsewhere
    if proto_hint is None and fragment:
        at = None
    layer = proto_hint or CRAFT_NAMES.get(proto)
    if at is None or len(l4) < at + 2:
        return tuple(checks)
    value = int.from_bytes(l4[at:at + 2], "big")
    l4[at:at + 2] = b"\0\0"
    if layer == "icmp":
        correct = inet_checksum(bytes(l4))
    else:
        claimed = max(int.from_bytes(data[2:4], "big") - hlen, 0)
        pseudo = _pseudo_header(data[12:16], data[16:20], 17 if layer == "udp" else 6, claimed)
        correct = inet_checksum(pseudo + bytes(l4))
        if layer == "udp" and correct == 0:
            correct = 0xFFFF
    checks.append(ChecksumCheck(layer or "?", hlen + at, value, correct))
    return tuple(checks)


def _csum_text(check: ChecksumCheck) -> str:
    """The value as built; render adds the verdict from ``CraftedPacket.checksums``."""
    return f"0x{check.value:04x}"
