"""recon.icmp, the one home of ICMP knowledge: its parser agrees with Scapy on every ICMP and ICMPv6
message recorded in captures/, and its names and error classes are what ping and sweep print.

No root, no lab: recorded bytes only. Scapy dissects the same bytes as the reference (nothing is sent).
"""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest

from recon import icmp
from recon.decode import decode
from recon.models import IPHeader, IPv6Header
from recon.packets import inet_checksum
from recon.pcap import read_frames
from tests.conftest import CAPTURES

ICMP_FILES = [CAPTURES / name for name in ("ping-errors.pcap", "ipv6.pcap", "wan-raw.pcap", "sweep.pcap",
                                           "ip-options.pcap", "crafted-spoofed.pcap", "fragments.pcapng")]


def _icmp_messages(path: Path) -> list[tuple[int, bytes]]:
    """(version, bytes) of every unfragmented ICMP/ICMPv6 message in ``path``: IPv4 from its IP header on
    (as a raw socket reads it), ICMPv6 from its ICMP header on (as an IPv6 socket reads it)."""
    found = []
    for frame in read_frames(str(path)):
        pkt = decode(frame.data, frame.linktype)
        ip, at = pkt.ip, pkt.l4_offset
        if at is None or pkt.icmp_type is None:
            continue
        if type(ip) is IPHeader and ip.proto == 1 and not ip.mf and ip.frag_offset == 0:
            start = at - ip.ihl * 4
            found.append((4, bytes(pkt.data[start:start + ip.total_length])))
        elif type(ip) is IPv6Header and ip.upper_proto == 58 and not ip.extensions:
            found.append((6, bytes(pkt.data[at:at + ip.payload_length])))
    return found


@pytest.mark.parametrize("path", ICMP_FILES, ids=lambda p: p.name)
def test_parse_agrees_with_scapy_on_every_recorded_message(path: Path) -> None:
    """Type, code, id/seq (echo), source and TTL (IPv4), and for errors the quoted probe's destination,
    protocol and echo id/seq: as Scapy dissects the same bytes."""
    from scapy.layers.inet import ICMP, IP, ICMPerror, IPerror
    from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPerror6

    messages = _icmp_messages(path)
    assert messages, f"{path.name} holds ICMP"
    for version, data in messages:
        msg = icmp.parse(data, version, ip_header=version == 4)
        assert msg is not None
        if version == 4:
            ref = IP(data)
            assert (msg.type, msg.code, msg.src, msg.ttl) == (ref[ICMP].type, ref[ICMP].code, ref.src, ref.ttl)
            if msg.type in (0, 8, 13, 14):
                assert (msg.ident, msg.seq) == (ref[ICMP].id, ref[ICMP].seq)
            if msg.is_error:
                assert msg.quoted is not None and IPerror in ref
                assert (msg.quoted.dst, msg.quoted.proto) == (ref[IPerror].dst, ref[IPerror].proto)
                if ICMPerror in ref:
                    assert (msg.quoted.icmp_type, msg.quoted.ident, msg.quoted.seq) == (
                        ref[ICMPerror].type, ref[ICMPerror].id, ref[ICMPerror].seq)
        else:
            assert (msg.type, msg.code) == (data[0], data[1])
            if msg.type in (128, 129):
                ref6 = (ICMPv6EchoRequest if msg.type == 128 else ICMPv6EchoReply)(data)
                assert (msg.ident, msg.seq) == (ref6.id, ref6.seq)
            if msg.is_error:
                quoted = IPerror6(data[8:])
                assert msg.quoted is not None and (msg.quoted.dst, msg.quoted.proto) == (quoted.dst, quoted.nh)


def test_the_recordings_hold_both_replies_and_errors() -> None:
    """The comparison above covers echo replies and errors of both families (else it would prove little)."""
    seen = set()
    for path in ICMP_FILES:
        for version, data in _icmp_messages(path):
            msg = icmp.parse(data, version, ip_header=version == 4)
            assert msg is not None
            seen.add((version, "error" if msg.is_error else msg.type))
    assert {(4, 0), (4, 8), (4, "error"), (6, 128), (6, 129), (6, "error")} <= seen


def test_a_datagram_socket_read_gives_the_source_and_ttl_it_was_handed() -> None:
    """ip_header=False (ICMP datagram sockets, ICMPv6): the bytes start at ICMP; source and TTL come from the caller."""
    _, data = next(m for m in _icmp_messages(CAPTURES / "ping-errors.pcap") if m[1][20] == 0)
    ihl = (data[0] & 15) * 4
    msg = icmp.parse(data[ihl:], 4, ip_header=False, src="198.18.2.9", ttl=61)
    whole = icmp.parse(data, 4, ip_header=True)
    assert msg is not None and whole is not None
    assert (msg.src, msg.ttl) == ("198.18.2.9", 61)
    assert (msg.type, msg.ident, msg.seq, msg.payload) == (whole.type, whole.ident, whole.seq, whole.payload)


@pytest.mark.parametrize(("data", "version", "ip_header"), [
    (b"", 4, True), (bytes(19), 4, True), (bytes.fromhex("4500001c00000000400600000a0000010a000002") + bytes(8), 4, True),
    (bytes.fromhex("6500001c00000000400100000a0000010a000002") + bytes(8), 4, True), (bytes(7), 4, False), (bytes(7), 6, False),
], ids=["empty", "short-ip", "tcp-not-icmp", "not-ipv4", "short-icmp", "short-icmp6"])
def test_what_is_not_an_icmp_message_parses_to_none(data: bytes, version: int, ip_header: bool) -> None:
    assert icmp.parse(data, version, ip_header=ip_header) is None


def test_an_error_quoting_a_header_with_options_reads_the_probe_after_them() -> None:
    """The quoted IPv4 header's IHL decides where the probe's ICMP header starts (ping -R quotes options)."""
    probe = struct.pack("!BBHHH", 8, 0, 0, 0x1234, 7)
    quoted = bytearray(struct.pack("!BBHHHBBH4s4s", 0x46, 0, 24 + 8, 1, 0, 1, 1, 0, socket.inet_aton("198.18.0.2"),
                                   socket.inet_aton("198.18.3.7")) + bytes([7, 3, 4, 0]) + probe)
    error = bytearray(struct.pack("!BBHI", 11, 0, 0, 0)) + quoted
    error[2:4] = struct.pack("!H", inet_checksum(bytes(error)))
    msg = icmp.parse(bytes(error), 4, ip_header=False)
    assert msg is not None and msg.is_error and msg.quoted is not None
    assert (msg.quoted.dst, msg.quoted.proto, msg.quoted.ident, msg.quoted.seq) == ("198.18.3.7", 1, 0x1234, 7)


def test_a_quoted_header_cut_short_or_of_another_version_is_no_probe() -> None:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 1, 0, 1, 1, 0, bytes(4), socket.inet_aton("198.18.3.7"))
    assert icmp.quoted_probe(header[:19], 4) is None
    assert icmp.quoted_probe(b"\x60" + header[1:], 4) is None
    assert icmp.quoted_probe(header[:20], 6) is None
    short = icmp.quoted_probe(header + b"\x08\x00", 4)  # only 2 bytes of the probe quoted
    assert short is not None and short.icmp_type == 8 and short.ident is None and short.seq is None and short.ports is None


@pytest.mark.parametrize(("icmp_type", "code", "version", "name"), [
    (0, 0, 4, "echo-reply"), (8, 0, 4, "echo-request"), (3, 1, 4, "host-unreachable"), (3, 3, 4, "port-unreachable"),
    (3, 4, 4, "fragmentation-needed"), (3, 13, 4, "admin-prohibited"), (11, 0, 4, "ttl-exceeded"),
    (11, 1, 4, "reassembly-time-exceeded"), (13, 0, 4, "timestamp-request"), (14, 0, 4, "timestamp-reply"),
    (3, 99, 4, "dest-unreach/code-99"), (8, 1, 4, "echo-request/code-1"), (42, 7, 4, "type-42/code-7"),
    (128, 0, 6, "echo-request"), (129, 0, 6, "echo-reply"), (1, 4, 6, "port-unreachable"), (1, 3, 6, "address-unreachable"),
    (2, 0, 6, "packet-too-big"), (3, 0, 6, "hop-limit-exceeded"), (135, 0, 6, "neighbor-solicitation"), (8, 0, 6, "type-8/code-0"),
])
def test_names_are_the_machine_names_sweep_and_sniff_print(icmp_type: int, code: int, version: int, name: str) -> None:
    assert icmp.icmp_name(icmp_type, code, version) == name


@pytest.mark.parametrize(("icmp_type", "code", "version", "kind"), [
    (3, 0, 4, "net-unreachable"), (3, 1, 4, "host-unreachable"), (3, 3, 4, "port-unreachable"), (3, 4, 4, "frag-needed"),
    (3, 13, 4, "unreachable"), (11, 0, 4, "time-exceeded"), (5, 1, 4, "redirect"), (12, 0, 4, "parameter-problem"),
    (4, 0, 4, "source-quench"), (1, 0, 6, "net-unreachable"), (1, 3, 6, "host-unreachable"), (1, 4, 6, "port-unreachable"),
    (1, 1, 6, "unreachable"), (2, 0, 6, "frag-needed"), (3, 0, 6, "time-exceeded"), (4, 0, 6, "parameter-problem"),
])
def test_error_classes_are_what_ping_reports(icmp_type: int, code: int, version: int, kind: str) -> None:
    assert icmp.error_kind(icmp_type, code, version) == kind


def test_error_info_is_the_mtu_the_pointer_or_the_whole_field() -> None:
    assert icmp.error_info(3, 4, 0x0000_05DC, 4) == 1500  # frag needed: the next-hop MTU, low 16 bits
    assert icmp.error_info(12, 0, 0x1400_0000, 4) == 20  # parameter problem: the pointer, the top byte
    assert icmp.error_info(2, 0, 1280, 6) == 1280  # ICMPv6 packet too big: all 32 bits are the MTU
    assert icmp.error_info(11, 0, 0xDEAD_BEEF, 4) == 0xDEAD_BEEF


def test_every_request_answers_with_a_reply_that_is_no_error() -> None:
    for request, reply in icmp.REPLY_TO.items():
        version = 6 if request >= 128 else 4
        assert icmp.icmp_name(request, 0, version).endswith("request")
        assert icmp.icmp_name(reply, 0, version).endswith("reply")
        assert reply not in (icmp.ERROR_TYPES6 if version == 6 else icmp.ERROR_TYPES4)
