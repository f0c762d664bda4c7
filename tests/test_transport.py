"""The packet-I/O seam: the replay transport feeds packets recorded in captures/ back, fitted to
the probe that was sent, with the ancillary data a kernel socket gives. No root, no lab."""

from __future__ import annotations

import select
import socket
import struct

import pytest

from recon import icmp
from recon.errors import PrivilegeError
from recon.packets import inet_checksum
from recon.transport import Recording, ReplayTransport, SystemTransport
from tests.conftest import CAPTURES

_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


def _echo(ident: int, seq: int, payload: bytes = b"recon-probe!") -> bytes:
    head = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    csum = inet_checksum(head + payload)
    return head[:2] + struct.pack("!H", csum) + head[4:] + payload


def test_a_recorded_echo_reply_answers_the_probe_sent() -> None:
    """A probe to an address the capture saw answer gets that recorded reply, with our id, seq and payload,
    the recorded TTL and source, and valid checksums; readiness shows through select()."""
    rec = Recording.from_pcap(CAPTURES / "ping-errors.pcap")
    transport = ReplayTransport(rec)
    sock, kind = transport.icmp(socket.AF_INET, what="test")
    sock.setblocking(False)
    assert kind == "raw"
    with pytest.raises(BlockingIOError):
        sock.recv(65535)
    sock.sendto(_echo(0x1234, 7), ("198.18.2.9", 0))
    assert select.select([sock], [], [], 0)[0]
    data = sock.recv(65535)
    recorded = rec.replies["198.18.2.9"][0]
    msg = icmp.parse(data, 4, ip_header=True)
    assert msg is not None and (msg.type, msg.ident, msg.seq) == (0, 0x1234, 7)
    assert msg.payload == b"recon-probe!"
    assert msg.src == "198.18.2.9" and msg.ttl == recorded[8]
    ihl = (data[0] & 15) * 4
    assert inet_checksum(data[:ihl]) == 0 and inet_checksum(data[ihl:]) == 0
    assert transport.sent[0].address == ("198.18.2.9", 0)


def test_an_address_never_recorded_stays_silent() -> None:
    transport = ReplayTransport(Recording.from_pcap(CAPTURES / "ping-errors.pcap"))
    sock, _ = transport.icmp(socket.AF_INET, what="test")
    sock.setblocking(False)
    sock.sendto(_echo(1, 1), ("198.18.1.200", 0))
    with pytest.raises(BlockingIOError):
        sock.recv(65535)


def test_a_recorded_error_quotes_the_probe_that_was_sent() -> None:
    """The router's recorded host-unreachable comes back quoting our probe (destination, id, seq)."""
    transport = ReplayTransport(Recording.from_pcap(CAPTURES / "ping-errors.pcap"))
    sock, _ = transport.icmp(socket.AF_INET, what="test")
    sock.setblocking(False)
    sock.sendto(_echo(0x4321, 9), ("198.18.3.7", 0))
    msg = icmp.parse(sock.recv(65535), 4, ip_header=True)
    assert msg is not None and msg.is_error and icmp.icmp_name(msg.type, msg.code) == "host-unreachable"
    assert msg.src == "198.18.0.1"
    assert msg.quoted is not None
    assert (msg.quoted.dst, msg.quoted.icmp_type, msg.quoted.ident, msg.quoted.seq) == ("198.18.3.7", 8, 0x4321, 9)


def test_datagram_sockets_read_from_the_icmp_header_with_ttl_and_kernel_time() -> None:
    """Where raw sockets are refused, ICMP datagram sockets: the reply starts at the ICMP header,
    the TTL and the receive time arrive as ancillary data when asked for."""
    transport = ReplayTransport(Recording.from_pcap(CAPTURES / "ping-errors.pcap"), dgram_only=True)
    with pytest.raises(PrivilegeError):
        transport.icmp(socket.AF_INET, what="recon sweep")
    sock, kind = transport.icmp(socket.AF_INET, what="recon ping", allow_dgram=True)
    assert kind == "dgram"
    sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    sock.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_RECVTTL", 12), 1)
    sock.sendto(_echo(5, 1), ("198.18.2.9", 0))
    data, anc, _flags, addr = sock.recvmsg(65535, 512, socket.MSG_DONTWAIT)
    assert data[0] == 0 and addr[0] == "198.18.2.9"
    kinds = {(level, ctype) for level, ctype, _ in anc}
    assert (socket.SOL_SOCKET, _SO_TIMESTAMPNS) in kinds and (socket.IPPROTO_IP, socket.IP_TTL) in kinds


def test_ipv6_replies_and_errors_are_fitted_too() -> None:
    transport = ReplayTransport(Recording.from_pcap(CAPTURES / "ipv6.pcap"))
    sock, _ = transport.icmp(socket.AF_INET6, what="test")
    sock.setblocking(False)
    probe = struct.pack("!BBHHH", 128, 0, 0, 77, 3) + b"nonce123"
    sock.sendto(probe, ("2001:db8:2::1", 0, 0, 0))
    msg = icmp.parse(sock.recv(65535), 6, ip_header=False)
    assert msg is not None and (msg.type, msg.ident, msg.seq, msg.payload) == (129, 77, 3, b"nonce123")
    sock.sendto(probe, ("2001:db8:2::5", 0, 0, 0))
    err = icmp.parse(sock.recv(65535), 6, ip_header=False)
    assert err is not None and err.is_error and icmp.icmp_name(err.type, err.code, 6) == "hop-limit-exceeded"
    assert err.quoted is not None and (err.quoted.dst, err.quoted.ident, err.quoted.seq) == ("2001:db8:2::5", 77, 3)


def test_recorded_arp_replies_answer_a_who_has_on_a_packet_socket() -> None:
    rec = Recording.from_pcap(CAPTURES / "ip-options.pcap")
    target = sorted(rec.arp)[0]
    transport = ReplayTransport(rec)
    sock = transport.packet("eth0", 0x0806, what="test")
    sock.setblocking(False)
    me = bytes.fromhex("025245430002")
    who_has = (b"\xff" * 6 + me + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + me
               + socket.inet_aton("198.18.0.2") + b"\0" * 6 + socket.inet_aton(target))
    sock.send(who_has)
    frame = sock.recv(65535)
    assert frame[20:22] == b"\x00\x02" and socket.inet_ntoa(frame[28:32]) == target
    assert frame[0:6] == me and socket.inet_ntoa(frame[38:42]) == "198.18.0.2"


def test_loss_drops_that_share_of_answers_reproducibly() -> None:
    """Loss is seeded: the same seed loses the same answers, and about the asked-for share."""
    def run(seed: int) -> list[bool]:
        transport = ReplayTransport(Recording.from_pcap(CAPTURES / "ping-errors.pcap"), loss=0.3, seed=seed)
        sock, _ = transport.icmp(socket.AF_INET, what="test")
        sock.setblocking(False)
        got = []
        for seq in range(400):
            sock.sendto(_echo(9, seq), ("198.18.2.9", 0))
            try:
                sock.recv(65535)
                got.append(True)
            except BlockingIOError:
                got.append(False)
        return got

    first = run(1)
    assert first == run(1)
    assert 0.22 < first.count(False) / len(first) < 0.38


def test_the_system_transport_maps_refusal_to_a_privilege_error_with_advice(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without CAP_NET_RAW (simulated at the socket() call, the boundary) a raw socket is one PrivilegeError
    whose hint says how to fix it; with allow_dgram the ICMP datagram fallback is tried first."""
    real = socket.socket

    def refuse_raw(family: int = -1, kind: int = -1, proto: int = 0, *a: object) -> socket.socket:
        if kind == socket.SOCK_RAW:
            raise PermissionError(1, "Operation not permitted")
        return real(family, kind, proto)

    monkeypatch.setattr(socket, "socket", refuse_raw)
    with pytest.raises(PrivilegeError) as denied:
        SystemTransport().raw_ip(socket.AF_INET, socket.IPPROTO_TCP, what="recon sweep")
    assert "CAP_NET_RAW" in str(denied.value) and "setcap" in str(denied.value)


def test_a_ttl_too_small_to_reach_the_host_gets_the_recorded_time_exceeded() -> None:
    """198.18.2.9 answered one hop away and a TTL-1 probe got 'time exceeded' in the capture: the replay
    gives the reply or the error according to the TTL set on the socket, as the network did."""
    transport = ReplayTransport(Recording.from_pcap(CAPTURES / "ping-errors.pcap"))
    sock, _ = transport.icmp(socket.AF_INET, what="test")
    sock.setblocking(False)
    sock.sendto(_echo(3, 1), ("198.18.2.9", 0))
    first = icmp.parse(sock.recv(65535), 4, ip_header=True)
    assert first is not None and first.type == 0
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 1)
    sock.sendto(_echo(3, 2), ("198.18.2.9", 0))
    second = icmp.parse(sock.recv(65535), 4, ip_header=True)
    assert second is not None and icmp.icmp_name(second.type, second.code) == "ttl-exceeded"
    assert second.quoted is not None and second.quoted.seq == 2
