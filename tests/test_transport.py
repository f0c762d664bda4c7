"""The packet-I/O seam: the replay transport feeds packets recorded in captures/ back, fitted to
the probe that was sent, with the ancillary data a kernel socket gives. No root, no lab."""

from __future__ import annotations

import errno
import select
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from recon import icmp
from recon import transport as transport_module
from recon.errors import PrivilegeError, ReconEnvironmentError
from recon.packets import inet_checksum
from recon.transport import (
    FAMILY4,
    FAMILY6,
    STAMP_SPACE,
    Recording,
    RecvBatch,
    ReplayTransport,
    SendBatch,
    SystemTransport,
    ancillary,
    received_ns,
    scope_word,
    stamp_receive_times,
)
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


# --- batched I/O ---------------------------------------------------------------------------------


def _fill(batch: SendBatch, k: int, data: bytes, address: str = "127.0.0.1", port: int = 0) -> None:
    """Slot k: sockaddr_in (family as FAMILY4, port, address) and the packet, as the engine writes them."""
    struct.pack_into("!HH4s8x", batch.area, k * batch.slot, FAMILY4, port, socket.inet_aton(address))
    batch.area[k * batch.slot + batch.head:k * batch.slot + batch.head + len(data)] = data
    batch.set_length(len(data), k, k + 1)


def test_sendmmsg_sends_each_slot_to_its_own_address_and_recvmmsg_reads_them_back() -> None:
    """Loopback UDP: one sendmmsg(2) call carries three datagrams of different lengths to two ports;
    one recvmmsg(2) per socket reads them back whole and in order; an empty queue reads as []."""
    rx = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for s in rx:
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
        ports = [s.getsockname()[1] for s in rx]
        batch = SendBatch(tx, 4)
        for k, (data, port) in enumerate([(b"one", ports[0]), (b"two!!", ports[1]), (b"three" * 9, ports[0])]):
            _fill(batch, k, data, port=port)
        assert batch.send(0, 3) == 3
        assert select.select(rx, [], [], 2)[0]
        got0, got1 = RecvBatch(rx[0], 8).recv(), RecvBatch(rx[1], 8).recv()
        assert got0 == [b"one", b"three" * 9] and got1 == [b"two!!"]
        assert RecvBatch(rx[0], 8).recv() == []
    finally:
        for s in (*rx, tx):
            s.close()


def test_a_batch_without_addresses_sends_on_a_connected_socket() -> None:
    """addressed=False (a bound AF_PACKET socket in the engine) ignores the slots' address part."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        b.setblocking(False)
        batch = SendBatch(a, 2, addressed=False)
        _fill(batch, 0, b"frame-1")
        _fill(batch, 1, b"frame-22")
        assert batch.send(0, 2) == 2
        assert RecvBatch(b, 1).recv() == [b"frame-1"]  # the batch reads at most its size
        assert RecvBatch(b, 4).recv() == [b"frame-22"]
    finally:
        a.close()
        b.close()


def test_a_failing_message_raises_as_sendto_would_after_the_ones_before_it_went() -> None:
    """sendmmsg(2) reports the messages before a failure as sent; the next call raises that failure's errno."""
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx.bind(("127.0.0.1", 0))
        port = rx.getsockname()[1]
        batch = SendBatch(tx, 3)
        _fill(batch, 0, b"ok", port=port)
        _fill(batch, 1, b"x", "255.255.255.255", port)  # broadcast without SO_BROADCAST: EACCES, sends nothing
        _fill(batch, 2, b"ok", port=port)
        assert batch.send(0, 3) == 1
        with pytest.raises(OSError) as err:
            batch.send(1, 2)
        assert err.value.errno == errno.EACCES
        assert batch.send(2, 1) == 1
    finally:
        tx.close()
        rx.close()


def test_replay_sockets_take_the_same_batches() -> None:
    """A SendBatch on a replay socket records each slot as one sent packet (data and address), and a
    RecvBatch reads what the responder queued, as the engine's in-process tests need."""
    rec = Recording.from_pcap(CAPTURES / "ping-errors.pcap")
    transport = ReplayTransport(rec)
    sock, _ = transport.icmp(socket.AF_INET, what="test")
    sock.setblocking(False)
    batch = SendBatch(sock, 2)
    _fill(batch, 0, _echo(0x1234, 1), "198.18.2.9")
    _fill(batch, 1, _echo(0x1234, 2), "198.18.2.9")
    assert batch.send(0, 2) == 2
    assert [(s.data, s.address) for s in transport.sent] == [(_echo(0x1234, 1), ("198.18.2.9", 0)),
                                                             (_echo(0x1234, 2), ("198.18.2.9", 0))]
    got = RecvBatch(sock, 8).recv()
    assert [icmp.parse(d, 4, ip_header=True).seq for d in got] == [1, 2]
    assert RecvBatch(sock, 8).recv() == []


def _fill6(batch: SendBatch, k: int, data: bytes, address: str, port: int = 0, scope: int = 0) -> None:
    """Slot k of an IPv6 batch: sockaddr_in6 (family as FAMILY6, port, flow 0, address, scope id) and the packet."""
    struct.pack_into("!HHI16sI", batch.area, k * batch.slot, FAMILY6, port, 0, socket.inet_pton(socket.AF_INET6, address),
                     scope_word(scope))
    batch.put(k, data)


@pytest.fixture
def udp6() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A loopback UDP pair over IPv6: the receiver bound to ::1, non-blocking, with the hop limit asked for."""
    rx = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        rx.bind(("::1", 0))
        rx.setblocking(False)
        rx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
        yield rx, tx
    finally:
        rx.close()
        tx.close()


def test_an_ipv6_batch_carries_sockaddr_in6_and_recv_msgs_reads_source_and_hop_limit(udp6: tuple[socket.socket, socket.socket]) -> None:
    """Loopback UDP over IPv6: one sendmmsg(2) of sockaddr_in6 slots; one recvmmsg(2) reads each datagram with the
    source the kernel wrote (a sockaddr_in6) and the hop limit as a control message; the next read finds the
    buffers' sizes reset (the kernel writes the lengths back)."""
    rx, tx = udp6
    port = rx.getsockname()[1]
    batch = SendBatch(tx, 4, family=socket.AF_INET6)
    for k, data in enumerate([b"one", b"two!!", b"three" * 9]):
        _fill6(batch, k, data, "::1", port)
    assert batch.address(1) == ("::1", port, 0, 0)
    assert batch.send_all(3, lambda: None) == 0
    reader = RecvBatch(rx, 8, name=28, control=socket.CMSG_SPACE(4))
    for expected in ([b"one", b"two!!", b"three" * 9], [b"again"]):
        assert select.select([rx], [], [], 2)[0]
        got = reader.recv_msgs()
        assert [d for d, _, _ in got] == expected
        for _, name, control in got:
            assert socket.inet_ntop(socket.AF_INET6, name[8:24]) == "::1" and len(name) == 28
            assert [(level, kind) for level, kind, _ in ancillary(control)] == [(socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT)]
        tx.sendto(b"again", ("::1", port))


def test_received_ns_is_the_kernels_receive_time_wherever_it_lies(udp6: tuple[socket.socket, socket.socket]) -> None:
    """Loopback UDP over IPv6 with stamp_receive_times on: received_ns reads the kernel's receive time from the
    control buffer recvmmsg(2) filled (it lies before the hop limit); without it on, 0; a receive time after
    another control message is found too."""
    rx, tx = udp6
    reader = RecvBatch(rx, 8, name=28, control=STAMP_SPACE + socket.CMSG_SPACE(4))
    tx.sendto(b"unstamped", rx.getsockname())
    assert select.select([rx], [], [], 2)[0]
    ((_, _, control),) = reader.recv_msgs()
    assert received_ns(control) == 0 and len(ancillary(control)) == 1
    assert stamp_receive_times(rx)
    before = time.time_ns()
    tx.sendto(b"stamped", rx.getsockname())
    assert select.select([rx], [], [], 2)[0]
    ((_, _, control),) = reader.recv_msgs()
    assert before <= received_ns(control) <= time.time_ns()
    assert [kind for _, kind, _ in ancillary(control)] == [_SO_TIMESTAMPNS, socket.IPV6_HOPLIMIT]
    later = transport_module._control_bytes([(socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT, struct.pack("=i", 64)),
                                             (socket.SOL_SOCKET, _SO_TIMESTAMPNS, struct.pack("=qq", 5, 7))])
    assert received_ns(later) == 5_000_000_007


def test_replay_sockets_read_back_as_the_kernel_lays_messages_out() -> None:
    """recv_msgs on a replay socket: the source as a sockaddr_in6 and the hop limit as a control message, the
    layout the engine reads from the kernel's recvmmsg(2)."""
    transport = ReplayTransport(Recording.from_pcap(CAPTURES / "ipv6.pcap"))
    sock, _ = transport.icmp(socket.AF_INET6, what="test")
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
    batch = SendBatch(sock, 2, family=socket.AF_INET6)
    _fill6(batch, 0, struct.pack("!BBHHH", 128, 0, 0, 77, 3) + b"nonce123", "2001:db8:2::1")
    assert batch.send(0, 1) == 1 and transport.send_calls == 1
    assert transport.sent[0].address == ("2001:db8:2::1", 0, 0, 0)
    ((data, name, control),) = RecvBatch(sock, 8, name=28, control=socket.CMSG_SPACE(4)).recv_msgs()
    assert data[0] == 129 and socket.inet_ntop(socket.AF_INET6, name[8:24]) == "2001:db8:2::1"
    ((level, kind, hops),) = ancillary(control)
    recorded = Recording.from_pcap(CAPTURES / "ipv6.pcap").replies["2001:db8:2::1"][0]
    assert (level, kind, int.from_bytes(hops, sys.byteorder)) == (socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT, recorded[7])


# --- the one send policy (transport.SEND_AGAIN, SEND_REFUSED, INTERFACE_LOST) ----------------------------


@pytest.fixture
def udp4() -> Iterator[tuple[socket.socket, socket.socket, int]]:
    """A loopback UDP sender, and a non-blocking receiver bound to 127.0.0.1 with its port."""
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx.bind(("127.0.0.1", 0))
        rx.setblocking(False)
        yield tx, rx, rx.getsockname()[1]
    finally:
        tx.close()
        rx.close()


def _refused_between(tx: socket.socket, port: int, first: bytes, third: bytes) -> SendBatch:
    """Three datagrams to ``port``, the middle one a broadcast without SO_BROADCAST (EACCES: refused alone)."""
    batch = SendBatch(tx, 3)
    _fill(batch, 0, first, port=port)
    _fill(batch, 1, b"x", "255.255.255.255", port)
    _fill(batch, 2, third, port=port)
    return batch


def test_send_all_skips_a_refused_probe_counts_it_and_sends_the_rest(udp4: tuple[socket.socket, socket.socket, int]) -> None:
    """A broadcast without SO_BROADCAST is refused (EACCES) for that probe alone: the ones after it still go."""
    tx, rx, port = udp4
    assert _refused_between(tx, port, b"first", b"third").send_all(3, lambda: None) == 1
    assert select.select([rx], [], [], 2)[0]
    got = RecvBatch(rx, 8).recv()
    if len(got) < 2:
        select.select([rx], [], [], 2)
        got += RecvBatch(rx, 8).recv()
    assert got == [b"first", b"third"]


def _replay_batch(refuse, count: int = 3) -> tuple[ReplayTransport, SendBatch]:
    transport = ReplayTransport(refuse=refuse)
    sock, _ = transport.icmp(socket.AF_INET, what="test")
    batch = SendBatch(sock, count)
    for k in range(count):
        _fill(batch, k, _echo(1, k), f"198.18.1.{k + 1}")
    return transport, batch


def test_send_all_drains_and_tries_again_while_the_queue_is_full() -> None:
    """ENOBUFS (a full device queue) and EAGAIN are waited out: the caller's drain runs, and every probe goes once."""
    refusals = [errno.ENOBUFS, errno.ENOBUFS, errno.EAGAIN]
    transport, batch = _replay_batch(lambda sock, data, address: refusals.pop() if refusals else 0)
    drains: list[int] = []
    assert batch.send_all(3, lambda: drains.append(1)) == 0
    assert len(drains) == 3 and [s.data for s in transport.sent] == [_echo(1, k) for k in range(3)]


@pytest.mark.parametrize("code", [errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES, errno.EPERM, errno.EADDRNOTAVAIL,
                                  errno.EINVAL])
def test_each_refusal_of_one_destination_counts_as_sent_and_failed(code: int) -> None:
    transport, batch = _replay_batch(lambda sock, data, address: code if address[0] == "198.18.1.2" else 0)
    assert batch.send_all(3, lambda: None) == 1
    assert [s.address[0] for s in transport.sent] == ["198.18.1.1", "198.18.1.3"]


@pytest.mark.parametrize("code", [errno.ENETDOWN, errno.ENODEV, errno.ENXIO])
def test_an_interface_gone_mid_send_is_one_environment_error(code: int) -> None:
    _, batch = _replay_batch(lambda sock, data, address: code)
    with pytest.raises(ReconEnvironmentError, match="went away or down"):
        batch.send_all(3, lambda: None)


def test_a_queue_that_never_empties_ends_in_an_environment_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a hang: after SEND_STALL seconds without one probe accepted, one line (exit 3)."""
    monkeypatch.setattr(transport_module, "SEND_STALL", 0.02)
    _, batch = _replay_batch(lambda sock, data, address: errno.ENOBUFS)
    with pytest.raises(ReconEnvironmentError, match="refused to queue"):
        batch.send_all(3, lambda: None)


def test_an_unexpected_errno_is_raised_as_it_is() -> None:
    _, batch = _replay_batch(lambda sock, data, address: errno.EMSGSIZE)
    with pytest.raises(OSError) as err:
        batch.send_all(3, lambda: None)
    assert err.value.errno == errno.EMSGSIZE


# --- SendPool: batches sent by threads, each through a twin socket -----------------------------


class _Twins:
    """A SendPool's twin factory over loopback UDP: each twin it opened, to look at."""

    def __init__(self) -> None:
        self.opened: list[socket.socket] = []

    def __call__(self, sock: object) -> socket.socket:
        self.opened.append(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        return self.opened[-1]


def test_a_send_pool_sends_every_batch_once_from_its_threads_and_marks_each_just_before(
        udp4: tuple[socket.socket, socket.socket, int]) -> None:
    """Loopback UDP: 12 batches of 4 datagrams (two lengths) through a 2-thread pool. Every datagram arrives
    once, as written, from a twin's port; each batch's ``before()`` ran on a pool thread, not the caller's; the
    caller's batch was free again at once (it is rewritten for the next batch while earlier ones may be queued)."""
    tx, rx, port = udp4
    twins = _Twins()
    marked: list[tuple[int, int]] = []
    pool = transport_module.SendPool(twins, 2)
    try:
        batch = SendBatch(tx, 4)
        for n in range(12):
            for k in range(4):
                _fill(batch, k, f"batch {n} slot {k}".encode() + b"!" * (n % 2), port=port)
            pool.submit(batch, 4, lambda n=n: marked.append((n, threading.get_ident())), lambda: None)
        assert pool.finish(lambda: None) == 0
        got: list[bytes] = []
        ports: set[int] = set()
        while len(got) < 48 and select.select([rx], [], [], 1)[0]:
            data, source = rx.recvfrom(2048)
            got.append(data)
            ports.add(source[1])
        expected = sorted(f"batch {n} slot {k}".encode() + b"!" * (n % 2) for n in range(12) for k in range(4))
        assert sorted(got) == expected
        assert ports <= {t.getsockname()[1] for t in twins.opened} and tx.getsockname()[1] not in ports
        assert sorted(n for n, _ in marked) == list(range(12))
        assert threading.get_ident() not in {t for _, t in marked}
        assert len(twins.opened) == 2  # one twin of tx for each thread, opened at its first batch
    finally:
        pool.close()
    assert all(t.fileno() == -1 for t in twins.opened)  # close() closed them


def test_a_send_pool_counts_refused_probes_and_raises_a_senders_error_at_finish(
        udp4: tuple[socket.socket, socket.socket, int]) -> None:
    """The one send policy on the pool's threads: a probe the kernel refuses (broadcast without SO_BROADCAST,
    EACCES) is counted and the rest go; an errno outside the policy (a twin whose descriptor is gone: EBADF)
    is raised in the caller's thread at finish(), as it is."""
    tx, rx, port = udp4
    twins = _Twins()
    pool = transport_module.SendPool(twins, 1)
    try:
        batch = _refused_between(tx, port, b"ok", b"ok too")
        pool.submit(batch, 3, lambda: None, lambda: None)
        assert pool.finish(lambda: None) == 1
        assert select.select([rx], [], [], 1)[0] and sorted(RecvBatch(rx, 8).recv()) == [b"ok", b"ok too"]
        twins.opened[0].close()  # the thread's twin: its next sendmmsg fails with EBADF
        pool.submit(batch, 1, lambda: None, lambda: None)
        with pytest.raises(OSError) as err:
            pool.finish(lambda: None)
        assert err.value.errno == errno.EBADF
    finally:
        pool.close()


def test_a_send_pool_closed_early_does_not_send_what_is_still_queued(udp4: tuple[socket.socket, socket.socket, int]) -> None:
    """close() (a sweep ended by an error or a stop mid-pass): the batch a thread has begun goes; the batches still
    queued behind it do not."""
    tx, rx, port = udp4
    pool = transport_module.SendPool(_Twins(), 1)
    begun, release = threading.Event(), threading.Event()
    try:
        batch = SendBatch(tx, 2)
        for n in range(3):
            for k in range(2):
                _fill(batch, k, f"batch {n}".encode(), port=port)
            pool.submit(batch, 2, (lambda: (begun.set(), release.wait(5))) if n == 0 else (lambda: None), lambda: None)
        assert begun.wait(5)
        threading.Timer(0.2, release.set).start()
        assert pool.close() == 4  # the two queued batches' probes, left unsent
        got = []
        while select.select([rx], [], [], 0.5)[0]:
            got.append(rx.recv(2048))
        assert got == [b"batch 0", b"batch 0"]
    finally:
        release.set()
        pool.close()
