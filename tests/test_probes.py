"""TCP/UDP discovery probes without root: specs and nmap aliases, cookies that check, and a sweep through
ReplayTransport whose network answers TCP and UDP as a Linux kernel does (RFC 9293 3.10.7.1 resets)."""

from __future__ import annotations

import io
import socket
import struct
from array import array

import pytest

from recon.cli import nmap_probe_aliases, run
from recon.engine import sweep
from recon.errors import InvalidOption
from recon.packets import inet_checksum, ipv4_header
from recon.probes import DEFAULT_PROBES, Ack, Ack6, Cookies, ProbeSpec, Syn, Syn6, Udp, Udp6, l4_probes, parse_probes
from recon.targets import build_targets, ip_to_int
from recon.transport import FAMILY4, Recording, ReplaySocket, ReplayTransport, Sent
from tests.conftest import CAPTURES, offline

ME = "198.18.0.2"


def test_probe_specs_and_their_errors() -> None:
    assert parse_probes(["echo", "syn:443,80", "udp:53", "syn:443"]) == (
        ProbeSpec("echo"), ProbeSpec("syn", 443), ProbeSpec("syn", 80), ProbeSpec("udp", 53))
    assert [str(p) for p in parse_probes(None)] == list(DEFAULT_PROBES) == ["echo", "syn:443", "ack:80", "timestamp"]
    for bad in ("info", "syn", "syn:", "syn:0", "udp:65536", "ack:8o", "echo:1", "syn:٣", "syn:" + "9" * 5000):
        with pytest.raises(InvalidOption) as exc:
            parse_probes([bad])
        assert "--probe" in str(exc.value) and len(str(exc.value)) < 200  # a huge value is cut: one short line


def test_nmap_spellings_become_probe_options() -> None:
    argv = ["sweep", "198.18.7.0/24", "-PS443,80", "-PA", "-PU53", "-PE", "-PP", "--json", "--", "-PS1"]
    assert nmap_probe_aliases(argv) == [
        "sweep", "198.18.7.0/24", "--probe", "syn:443,80", "--probe", "ack:80", "--probe", "udp:53",
        "--probe", "echo", "--probe", "timestamp", "--json", "--", "-PS1"]
    assert nmap_probe_aliases(["ping", "-PS"]) == ["ping", "-PS"]


def test_a_bad_nmap_spelling_is_one_line_and_exit_2() -> None:
    out, err = io.StringIO(), io.StringIO()
    with offline():  # a lab address outside the lab: refused; were it not, nothing could leave
        assert run(["sweep", "198.18.7.1", "-PSx"], stdout=out, stderr=err) == 2
    assert "--probe" in err.getvalue() and len(err.getvalue().strip().splitlines()) == 1 and out.getvalue() == ""


def _tcp_of(probe: bytes) -> tuple[int, int, int, int, int]:
    sport, dport, seq, ack, flags = struct.unpack_from("!HHIIxB", probe)
    return sport, dport, seq, ack, flags


def _packet(src: str, dst: str, proto: int, l4: bytes) -> bytes:
    head = bytearray(ipv4_header(socket.inet_aton(src), socket.inet_aton(dst), len(l4), 64, False, proto))
    head[8] = 61
    head[10:12] = b"\0\0"
    head[10:12] = inet_checksum(bytes(head)).to_bytes(2, "big")
    return bytes(head) + l4


def _tcp(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int) -> bytes:
    seg = bytearray(struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 0, 0, 0))
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(seg))
    seg[16:18] = inet_checksum(pseudo + bytes(seg)).to_bytes(2, "big")
    return _packet(src, dst, socket.IPPROTO_TCP, bytes(seg))


def kernel(open_ports: dict[str, set[int]], udp_open: dict[str, set[int]] | None = None):
    """A responder that answers like the Linux hosts in ``open_ports`` (every other address is silent):
    SYN → SYN-ACK (open) or RST|ACK ack=seq+1 (closed); bare ACK → RST seq=ack; UDP to an open port → an
    echo of the datagram, to a closed one → port unreachable from the host quoting it. ICMP echo: none
    (these hosts drop ICMP echo, like the lab's 198.18.7.0/24)."""
    udp_open = udp_open or {}

    def respond(sock: ReplaySocket, sent: Sent) -> list[bytes]:
        if sent.kind != "raw4":
            return []
        dst, data = sent.address[0], sent.data
        if dst not in open_ports:
            return []
        if len(data) >= 20 and data[12] >> 4 == 5:  # a TCP header
            sport, dport, seq, ack, flags = _tcp_of(data)
            if flags == 0x02:
                if dport in open_ports[dst]:
                    return [_tcp(dst, ME, dport, sport, 0x1000, (seq + 1) & 0xFFFFFFFF, 0x12)]
                return [_tcp(dst, ME, dport, sport, 0, (seq + 1) & 0xFFFFFFFF, 0x14)]
            if flags == 0x10:
                return [_tcp(dst, ME, dport, sport, ack, 0, 0x04)]
            return []
        sport, dport = struct.unpack_from("!HH", data)
        if dport in udp_open.get(dst, set()):
            back = bytearray(struct.pack("!HHHH", dport, sport, len(data), 0) + data[8:])
            return [_packet(dst, ME, socket.IPPROTO_UDP, bytes(back))]
        quoted = _packet(ME, dst, socket.IPPROTO_UDP, data)
        msg = bytearray(struct.pack("!BBHI", 3, 3, 0, 0) + quoted)
        msg[2:4] = inet_checksum(bytes(msg)).to_bytes(2, "big")
        return to_icmp_socket(sock, _packet(dst, ME, socket.IPPROTO_ICMP, bytes(msg)))

    return respond


def to_icmp_socket(sock: ReplaySocket, packet: bytes) -> list[bytes]:
    """ICMP errors reach the raw ICMP socket, as the kernel delivers them, not the socket that sent."""
    next(s for s in sock.transport.sockets if s.kind == "icmp4").deliver(packet)
    return []


HOSTS = {"198.18.7.13": {443}, "198.18.7.15": set(), "198.18.7.19": {80}}


def test_tcp_probes_find_hosts_that_drop_icmp_and_say_what_answered() -> None:
    """nmap's default set against hosts that drop ICMP: SYN 443 gets SYN-ACK (open) or RST (closed), and
    the reason says which; every probe went out with a valid checksum."""
    transport = ReplayTransport(kernel(HOSTS))
    result = sweep(build_targets(["198.18.7.0/27"]), method="icmp", probe=None, timeout=0.05, retries=0,
                   transport=transport)
    got = {h.address: (h.reason, h.reply) for h in result.up}
    assert got == {"198.18.7.13": ("syn-ack", "syn-ack/syn:443"), "198.18.7.15": ("rst", "rst/syn:443"),
                   "198.18.7.19": ("rst", "rst/syn:443")}
    tcp = [s for s in transport.sent if s.kind == "raw4"]
    # kind after kind in one pass: who answered the SYN is not sent the ACK and the timestamp
    assert len(tcp) == 32 + 29 and result.stats.sent == 32 + 32 + 29 + 29
    for s in tcp:
        pseudo = socket.inet_aton(ME) + socket.inet_aton(s.address[0]) + struct.pack("!BBH", 0, 6, len(s.data))
        assert inet_checksum(pseudo + s.data) == 0


def test_an_ack_probe_is_answered_by_rst_with_its_cookie_as_sequence() -> None:
    result = sweep(build_targets(["198.18.7.0/27"]), method="icmp", probe="ack:80", timeout=0.05, retries=0,
                   transport=ReplayTransport(kernel(HOSTS)))
    assert {(h.address, h.reason, h.reply) for h in result.up} == {
        (a, "rst", "rst/ack:80") for a in HOSTS}


def test_answers_whose_cookie_does_not_check_are_ignored() -> None:
    """A reset that does not acknowledge our cookie (a blind spoof, or a stale answer) is not a host."""
    def forged(sock: ReplaySocket, sent: Sent) -> list[bytes]:
        sport, dport, seq, _, _ = _tcp_of(sent.data)
        return [_tcp(sent.address[0], ME, dport, sport, 0, (seq + 2) & 0xFFFFFFFF, 0x14),
                _tcp(sent.address[0], ME, dport, sport + 1, 0, (seq + 1) & 0xFFFFFFFF, 0x14)]

    result = sweep(build_targets(["198.18.7.0/28"]), method="icmp", probe="syn:443", timeout=0.05, retries=0,
                   transport=ReplayTransport(forged))
    assert result.up == () and result.stats.ignored == 32

    def forged_ack(sock: ReplaySocket, sent: Sent) -> list[bytes]:
        sport, dport, _, ack, _ = _tcp_of(sent.data)
        return [_tcp(sent.address[0], ME, dport, sport, (ack + 1) & 0xFFFFFFFF, 0, 0x04)]

    result = sweep(build_targets(["198.18.7.0/28"]), method="icmp", probe="ack:80", timeout=0.05, retries=0,
                   transport=ReplayTransport(forged_ack))
    assert result.up == () and result.stats.ignored == 16

    def forged_unreachable(sock: ReplaySocket, sent: Sent) -> list[bytes]:
        dst, data = sent.address[0], bytearray(sent.data)
        data[0:2] = (int.from_bytes(data[0:2], "big") ^ 1).to_bytes(2, "big")  # not the port our cookie chose
        msg = bytearray(struct.pack("!BBHI", 3, 3, 0, 0) + _packet(ME, dst, socket.IPPROTO_UDP, bytes(data)))
        msg[2:4] = inet_checksum(bytes(msg)).to_bytes(2, "big")
        return to_icmp_socket(sock, _packet(dst, ME, socket.IPPROTO_ICMP, bytes(msg)))

    result = sweep(build_targets(["198.18.7.0/28"]), method="icmp", probe="udp:53", timeout=0.05, retries=0,
                   transport=ReplayTransport(forged_unreachable))
    assert result.up == () and result.stats.ignored == 16


def test_udp_reply_or_port_unreachable_from_the_host_means_up() -> None:
    transport = ReplayTransport(kernel({"198.18.7.13": set(), "198.18.7.15": set()}, {"198.18.7.13": {53}}))
    result = sweep(build_targets(["198.18.7.0/28"]), method="icmp", probe="udp:53", timeout=0.05, retries=0,
                   transport=transport)
    assert {(h.address, h.reason) for h in result.up} == {("198.18.7.13", "udp-reply"), ("198.18.7.15", "port-unreachable")}
    sent = [s.data for s in transport.sent]
    assert len({struct.unpack_from("!H", d)[0] for d in sent}) > 1, "the source port carries the cookie"


def test_a_routers_unreachable_about_a_tcp_probe_makes_the_target_unreachable() -> None:
    """198.18.3.7's recorded host-unreachable (from the router), quoting our SYN: unreachable, with the router."""
    rec = Recording.from_pcap(CAPTURES / "ping-errors.pcap")
    from recon.transport import fit_error

    def router(sock: ReplaySocket, sent: Sent) -> list[bytes]:
        if sent.address[0] != "198.18.3.7":
            return []
        error = bytearray(fit_error(rec.errors["198.18.3.7"][0], sent.data, "198.18.3.7", ME))
        error[(error[0] & 15) * 4 + 8 + 9] = socket.IPPROTO_TCP  # the recording quoted ICMP; this quotes our SYN
        return to_icmp_socket(sock, bytes(error))

    result = sweep(build_targets(["198.18.3.6-7"]), method="icmp", probe="syn:443", timeout=0.05, retries=0,
                   transport=ReplayTransport(router))
    (unreach,) = result.unreachable
    assert (unreach.address, unreach.reason, unreach.reporter) == ("198.18.3.7", "host-unreachable", "198.18.0.1")


def test_cookies_are_keyed_and_bind_destination_port_and_kind() -> None:
    key = bytes(16)
    c = Cookies(key)
    dst = ip_to_int("198.18.7.13")
    assert c(dst, 443, 1) == Cookies(key)(dst, 443, 1)
    assert len({c(dst, 443, 1), c(dst, 80, 1), c(dst, 443, 2), c(dst + 1, 443, 1), Cookies(b"k" * 16)(dst, 443, 1)}) == 5
    syn = Syn(443, c, ip_to_int(ME), 40000)
    probe = syn.build(dst)
    assert _tcp_of(probe)[2] == c(dst, 443, 1)
    reply = _tcp("198.18.7.13", ME, 443, 40000, 7, (c(dst, 443, 1) + 1) & 0xFFFFFFFF, 0x12)
    answer = syn.match(reply)
    assert answer is not None and answer.reason == "syn-ack" and answer.ttl == 61
    assert Ack(443, c, ip_to_int(ME), 40000).match(reply) is None
    assert Udp(53, c, ip_to_int(ME), 40000).match(reply) is None


def test_build_into_writes_at_the_slot_what_build_returns() -> None:
    """The sweep writes each TCP/UDP probe straight into its send batch's slot (build_into); the bytes at the
    offset are build()'s, and the bytes around the slot stay as they were (v4 and v6 probes alike)."""
    cookies = Cookies(b"k" * 16)
    v4 = l4_probes([ProbeSpec("syn", 443), ProbeSpec("ack", 80), ProbeSpec("udp", 53)], cookies, 0xC6120002, 45000)
    v6 = [cls(53 if cls is Udp6 else 443, cookies, 0x20010DB8 << 96 | 2, 45000) for cls in (Syn6, Ack6, Udp6)]
    for probe in (*v4, *v6):
        for target in (0xC6128001, 0xC6130000) if probe.family == 4 else (0x20010DB8 << 96 | 0x101, 0x20010DB8 << 96 | 7):
            area = bytearray(b"\xa5" * 80)
            probe.build_into(area, 16, target)
            want = probe.build(target)
            assert area[16:16 + len(want)] == want
            assert area[:16] == b"\xa5" * 16 and area[16 + len(want):] == b"\xa5" * (64 - len(want))


def test_write_slots_writes_each_slot_as_build_into_and_a_sockaddr() -> None:
    """A sweep's TCP/UDP pass writes a whole batch at its flush (write_slots, build_into's arithmetic inline): each slot
    is the target's sockaddr_in and build()'s bytes, for the targets the held indices name, and nothing else moves."""
    cookies = Cookies(b"k" * 16)
    addrs = array("I", [0xC6128001, 0xC6130000, 0xC612FFFF, 0xC6120101])
    held = array("I", [2, 0, 3, 1])
    slot = 16 + 48
    for probe in l4_probes([ProbeSpec("syn", 443), ProbeSpec("ack", 80), ProbeSpec("udp", 53)], cookies, 0xC6120002, 45000):
        area = bytearray(b"\xa5" * (5 * slot))
        probe.write_slots(area, slot, addrs, held, 3)
        for k in range(3):
            target = addrs[held[k]]
            want = probe.build(target)
            assert area[k * slot:k * slot + 16] == struct.pack("!HHI8x", FAMILY4, 0, target)
            assert area[k * slot + 16:k * slot + 16 + len(want)] == want
            assert area[k * slot + 16 + len(want):(k + 1) * slot] == b"\xa5" * (48 - len(want))
        assert area[3 * slot:] == b"\xa5" * (2 * slot)  # the fourth held target was not asked for


def test_ipv6_probes_write_a_batch_as_build_into_with_a_sockaddr_in6() -> None:
    """The IPv6 sweep writes a TCP/UDP batch with the same one implementation (write_targets): each slot is the target's
    sockaddr_in6 (no flow info, no scope) and build()'s bytes, whose cookie is the one match6 checks, for addresses of
    any width (an IPv4-sized one, ::198.18.128.1, is keyed as __call__ keys it); nothing past the batch moves."""
    cookies = Cookies(b"k" * 16)
    dsts = [0x20010DB8 << 96 | 0x101, (1 << 128) - 1, 0xC6128001, 0x20010DB8_0002 << 80 | 7]
    slot = 28 + 84
    for probe in (Syn6(443, cookies, 0x20010DB8 << 96 | 2, 45000), Ack6(80, cookies, 0x20010DB8 << 96 | 2, 45000),
                  Udp6(53, cookies, 0x20010DB8 << 96 | 2, 45000)):
        area = bytearray(b"\xa5" * (5 * slot))
        probe.write_targets(area, slot, dsts)
        for k, target in enumerate(dsts):
            want = probe.build(target)
            assert area[k * slot:k * slot + 28] == struct.pack("=H", socket.AF_INET6) + bytes(6) + target.to_bytes(16, "big") + bytes(4)
            assert area[k * slot + 28:k * slot + 28 + len(want)] == want
            assert area[k * slot + 28 + len(want):(k + 1) * slot] == b"\xa5" * (84 - len(want))
        assert area[4 * slot:] == b"\xa5" * slot
        assert cookies.batch(dsts, probe.port, probe.tag) == [probe.cookie(d) for d in dsts]

def test_ipv6_probes_carry_the_checksum_scapy_computes_over_the_ipv6_pseudo_header() -> None:
    """One build for both families: the IPv6 probes' checksums (TCP SYN/ACK, UDP) are what Scapy computes over the RFC
    8200 pseudo-header, for targets and sources whose words wrap the 16-bit sum; a UDP sum of 0 is sent as 0xFFFF."""
    import random

    from scapy.layers.inet6 import IPv6, in6_chksum

    rng = random.Random(7)
    cookies = Cookies(b"k" * 16)
    sources = [0x20010DB8 << 96 | 2, (1 << 128) - 2, 0xFE80 << 112 | rng.getrandbits(64)]
    for source in sources:
        probes = [cls(53 if cls is Udp6 else 443, cookies, source, 45000) for cls in (Syn6, Ack6, Udp6)]
        for target in [0x20010DB8 << 96 | 7, (1 << 128) - 1, *(rng.getrandbits(128) for _ in range(50))]:
            for probe in probes:
                data = bytearray(probe.build(target))
                at = 6 if probe.proto == socket.IPPROTO_UDP else 16
                sent = int.from_bytes(data[at:at + 2], "big")
                data[at:at + 2] = b"\0\0"
                src, dst = (socket.inet_ntop(socket.AF_INET6, a.to_bytes(16, "big")) for a in (source, target))
                want = in6_chksum(probe.proto, IPv6(src=src, dst=dst), bytes(data))
                assert sent == (want or 0xFFFF if probe.proto == socket.IPPROTO_UDP else want), (probe, hex(target))
