"""`recon ping` in-process: recorded lab packets (captures/) fed back through the replay transport.

No root, no lab: the Pinger sends through a ``ReplayTransport`` whose answers are the
replies and errors recorded in captures/ping-errors.pcap and captures/ipv6.pcap, rewritten
to fit each probe as the real peer would. The lab tests in test_ping.py stay: these add the
cases a lab cannot make on demand (exact loss, duplicates, error-queue records) and pin the
matcher and the statistics, so that breaking either fails here.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time

import pytest

from recon import render
from recon.errors import InvalidOption, InvalidTarget
from recon.models import PingError, PingPending, PingReply, PingStats
from recon.packets import inet_checksum
from recon.ping import Pinger
from recon.ping_stats import Statistics
from recon.transport import Recording, ReplaySocket, ReplayTransport, Sent, fit_reply
from tests.conftest import CAPTURES

Event = PingReply | PingError | PingPending | PingStats

_IP_RECVERR = getattr(socket, "IP_RECVERR", 11)


@pytest.fixture(scope="module")
def v4() -> Recording:
    return Recording.from_pcap(CAPTURES / "ping-errors.pcap")


@pytest.fixture(scope="module")
def v6() -> Recording:
    return Recording.from_pcap(CAPTURES / "ipv6.pcap")


def run(host: str, transport: ReplayTransport, **options: object) -> tuple[list[Event], PingStats]:
    options.setdefault("interval", 0.01)
    events = list(Pinger(host, transport=transport, **options))
    final = events[-1]
    assert isinstance(final, PingStats) and final.final
    return events[:-1], final


def replies(events: list[Event]) -> list[PingReply]:
    return [e for e in events if isinstance(e, PingReply)]


def errors(events: list[Event]) -> list[PingError]:
    return [e for e in events if isinstance(e, PingError)]


# --- replies and matching ---------------------------------------------------------------------------


def test_recorded_replies_are_matched_seq_by_seq(v4: Recording) -> None:
    """Three probes to 198.18.2.9: three replies, seqs 1-3, with the TTL the lab host answered with."""
    transport = ReplayTransport(v4)
    events, stats = run("198.18.2.9", transport, count=3)
    got = replies(events)
    assert [r.seq for r in got] == [1, 2, 3]
    assert {r.ttl for r in got} == {v4.replies["198.18.2.9"][0][8]}
    assert all(r.address == "198.18.2.9" and r.bytes == 64 and not r.duplicate and r.rtt_us is not None for r in got)
    assert (stats.transmitted, stats.received, stats.duplicates, stats.errors) == (3, 3, 0, 0)
    assert render.ping_summary(stats)[2].startswith("3 packets transmitted, 3 received, 0% packet loss")
    # what went out: echo requests with one id, seqs 1-3, valid checksums, the same 56-byte payload
    sent = [s.data for s in transport.sent]
    assert [struct.unpack("!BBHHH", p[:8])[4] for p in sent] == [1, 2, 3]
    assert len({p[4:6] for p in sent}) == 1 and all(inet_checksum(p) == 0 and len(p) == 64 for p in sent)


def test_ipv6_replies_and_hop_limit_exceeded(v6: Recording) -> None:
    events, stats = run("2001:db8:2::1", ReplayTransport(v6), count=2)
    assert [(r.seq, r.address, r.ttl) for r in replies(events)] == [(1, "2001:db8:2::1", 63), (2, "2001:db8:2::1", 63)]
    assert stats.received == 2
    events, stats = run("2001:db8:2::5", ReplayTransport(v6), count=2)
    assert [render.ping_error(e)[0] for e in errors(events)] == [
        "From 2001:db8::1 icmp_seq=1 Time exceeded: Hop limit", "From 2001:db8::1 icmp_seq=2 Time exceeded: Hop limit"]
    assert (stats.received, stats.errors) == (0, 2)


def _tamper(rec: Recording, offset: int) -> object:
    """A responder that flips one byte of each answer's ICMP message at ``offset`` (from the ICMP header)."""
    def answer(sock: ReplaySocket, sent: Sent) -> list[bytes]:
        out = []
        for packet in rec(sock, sent):
            b = bytearray(packet)
            b[20 + offset] ^= 0xFF
            out.append(bytes(b))
        return out
    return answer


@pytest.mark.parametrize("offset,what", [(4, "echo id"), (8, "payload nonce"), (15, "payload nonce's last byte")])
def test_a_reply_for_another_ping_is_not_ours(v4: Recording, offset: int, what: str) -> None:
    """Raw sockets see every ping on the host: a reply with another id or another nonce is ignored."""
    events, stats = run("198.18.2.9", ReplayTransport(_tamper(v4, offset)), count=2, timeout=0.2)  # type: ignore[arg-type]
    assert replies(events) == [], what
    assert (stats.transmitted, stats.received) == (2, 0)


def test_an_error_quoting_another_probe_is_not_ours(v4: Recording) -> None:
    """The router's unreachable is ours only when it quotes our probe: another id (byte 4 of the quoted
    ICMP header, at 8 + 20 + 4 from the error's ICMP header) means another ping's error."""
    events, stats = run("198.18.3.7", ReplayTransport(_tamper(v4, 8 + 20 + 4)), count=2, timeout=0.2)  # type: ignore[arg-type]
    assert errors(events) == [] and stats.errors == 0


def test_duplicates_are_marked_and_counted_as_iputils(v4: Recording) -> None:
    """Every reply arrives twice: the second of each seq is (DUP!), counted as +N duplicates, not received."""
    def twice(sock: ReplaySocket, sent: Sent) -> list[bytes]:
        return list(v4(sock, sent)) * 2

    events, stats = run("198.18.2.9", ReplayTransport(twice), count=3)
    got = replies(events)
    assert [(r.seq, r.duplicate) for r in got] == [(1, False), (1, True), (2, False), (2, True), (3, False)]
    assert render.ping_reply(got[1]).endswith(" (DUP!)") and not render.ping_reply(got[0]).endswith(" (DUP!)")
    assert (stats.received, stats.duplicates) == (3, 2)
    assert render.ping_summary(stats)[2].startswith("3 packets transmitted, 3 received, +2 duplicates, 0% packet loss")


# --- errors --------------------------------------------------------------------------------------------


def test_host_unreachable_from_the_router(v4: Recording) -> None:
    events, stats = run("198.18.3.7", ReplayTransport(v4), count=3)
    errs = errors(events)
    assert [(e.seq, e.kind, e.reporter, e.icmp_type, e.icmp_code) for e in errs] == [
        (s, "host-unreachable", "198.18.0.1", 3, 1) for s in (1, 2, 3)]
    assert render.ping_error(errs[0]) == ("From 198.18.0.1 icmp_seq=1 Destination Host Unreachable", False)
    assert (stats.transmitted, stats.received, stats.errors) == (3, 0, 3)
    assert render.ping_summary(stats) == ["", "--- 198.18.3.7 ping statistics ---",
                                          f"3 packets transmitted, 0 received, +3 errors, 100% packet loss, time {stats.time_ms}ms", ""]


def test_ttl_1_gets_time_exceeded(v4: Recording) -> None:
    events, stats = run("198.18.2.9", ReplayTransport(v4), count=2, ttl=1)
    assert [render.ping_error(e)[0] for e in errors(events)] == [
        "From 198.18.0.1 icmp_seq=1 Time to live exceeded", "From 198.18.0.1 icmp_seq=2 Time to live exceeded"]
    assert all(e.kind == "time-exceeded" for e in errors(events))
    assert (stats.received, stats.errors) == (0, 2)


# --- datagram sockets (no CAP_NET_RAW) --------------------------------------------------------------


def _errqueue_record(sent: Sent, *, icmp_type: int, code: int, info: int = 0,
                     reporter: str = "198.18.0.1") -> tuple[bytes, list[tuple[int, int, bytes]]]:
    """What recvmsg(MSG_ERRQUEUE) gives after an ICMP error: our probe, and sock_extended_err + the offender."""
    ee = struct.pack("=IBBBxII", 113, 2, icmp_type, code, info, 0)  # EHOSTUNREACH, SO_EE_ORIGIN_ICMP
    offender = struct.pack("=HH4s8x", socket.AF_INET, 0, socket.inet_aton(reporter))
    return sent.data, [(socket.IPPROTO_IP, _IP_RECVERR, ee + offender)]


def test_datagram_socket_replies_carry_the_ttl_from_ancillary_data(v4: Recording) -> None:
    transport = ReplayTransport(v4, dgram_only=True)
    pinger = Pinger("198.18.2.9", transport=transport, count=2, interval=0.2)
    assert pinger.kind == "dgram" and pinger.start.socket_kind == "dgram"
    events = list(pinger)
    got = replies(events)
    assert [r.seq for r in got] == [1, 2] and {r.ttl for r in got} == {63}
    assert all(struct.unpack("!H", s.data[4:6])[0] == transport.dgram_ident for s in transport.sent)


def test_datagram_socket_errors_come_through_the_error_queue(v4: Recording) -> None:
    """Datagram ICMP sockets read no ICMP errors as data: IP_RECVERR queues them; each is matched to its seq
    by the quoted probe, and a record quoting someone else's payload is ignored."""
    def unreachable(sock: ReplaySocket, sent: Sent) -> list[bytes]:
        seq = struct.unpack("!H", sent.data[6:8])[0]
        data, anc = _errqueue_record(sent, icmp_type=3, code=1)
        if seq == 2:  # this record quotes another session's payload: not ours
            data = data[:8] + bytes(8) + data[16:]
        sock.deliver_error(data, anc)
        return []

    events, stats = run("198.18.3.7", ReplayTransport(unreachable, dgram_only=True), count=3, timeout=0.2)
    errs = errors(events)
    assert [(e.seq, e.kind, e.reporter) for e in errs] == [(1, "host-unreachable", "198.18.0.1"),
                                                           (3, "host-unreachable", "198.18.0.1")]
    assert render.ping_error(errs[0]) == ("From 198.18.0.1 icmp_seq=1 Destination Host Unreachable", False)
    assert (stats.transmitted, stats.received, stats.errors) == (3, 0, 2)


def test_datagram_frag_needed_reports_the_mtu(v4: Recording) -> None:
    def too_big(sock: ReplaySocket, sent: Sent) -> list[bytes]:
        sock.deliver_error(*_errqueue_record(sent, icmp_type=3, code=4, info=1400))
        return []

    events, _ = run("198.18.5.201", ReplayTransport(too_big, dgram_only=True), count=1, pmtu="do", timeout=0.2)
    (err,) = errors(events)
    assert (err.kind, err.mtu) == ("frag-needed", 1400)
    assert render.ping_error(err)[0] == "From 198.18.0.1 icmp_seq=1 Frag needed and DF set (mtu = 1400)"


# --- statistics, loss and ending -------------------------------------------------------------------------


def test_statistics_are_iputils_arithmetic() -> None:
    """The accumulator with plain numbers: iputils printed 0.075/0.332/0.589/0.257 for these two RTTs."""
    st = Statistics()
    st.sent(1, 1_000_000)
    st.sent(2, 2_000_000)
    assert st.reply(1, 1_000_000 + 75_000) == (75_000, False)
    assert st.reply(2, 2_000_000 + 589_000) == (589_000, False)
    snap = st.snapshot("h", "198.18.0.10")
    assert (snap.rtt_min_us, snap.rtt_avg_us, snap.rtt_max_us, snap.rtt_mdev_us) == (75, 332, 589, 257)
    assert snap.time_ms == 1 and snap.pipe == 2  # seq 1 was answered after seq 2 left
    assert snap.rtt_ewma_us == (75 * 8 + 589 - 75) // 8  # iputils: rtt += t - rtt/8
    # a duplicate counts toward min/avg/max/mdev, not toward received (iputils)
    assert st.reply(2, 2_000_000 + 1_000_000)[1] is True
    snap = st.snapshot("h", "198.18.0.10")
    assert (snap.received, snap.duplicates, snap.rtt_max_us, snap.rtt_avg_us) == (2, 1, 1000, (75 + 589 + 1000) // 3)
    # pipe: the most probes in flight when an answer came (3 sent, the answer to 1 arrives last)
    pipe = Statistics()
    for seq in (1, 2, 3):
        pipe.sent(seq, seq)
    pipe.reply(3, 10)
    pipe.reply(1, 10)
    assert pipe.snapshot("h", "a").pipe == 3 and pipe.in_flight() == 0


def test_rtt_follows_the_replay_delay(v4: Recording) -> None:
    """Answers held back 30 ms: every RTT is at least 30 ms and the summary agrees with the replies."""
    def late(sock: ReplaySocket, sent: Sent) -> list[bytes]:
        answers = list(v4(sock, sent))
        threading.Timer(0.03, lambda: [sock.deliver(a) for a in answers]).start()
        return []

    events, stats = run("198.18.2.9", ReplayTransport(late), count=4, interval=0.05)
    rtts = [r.rtt_us for r in replies(events)]
    assert len(rtts) == 4 and all(r is not None and 30_000 <= r < 200_000 for r in rtts), rtts
    assert (stats.rtt_min_us, stats.rtt_max_us) == (min(rtts), max(rtts))  # type: ignore[type-var]
    assert stats.rtt_avg_us == sum(rtts) // 4  # type: ignore[arg-type]


def test_loss_is_counted_probe_by_probe() -> None:
    """Seeded loss: exactly the answers the transport dropped are missing, and the loss % says so."""
    rec = Recording.from_pcap(CAPTURES / "ping-errors.pcap")
    events, stats = run("198.18.2.9", ReplayTransport(rec, loss=0.3, seed=11), count=40, interval=0.002, timeout=0.3)
    rng = random.Random(11)
    kept = [seq for seq in range(1, 41) if not rng.random() < 0.3]
    assert [r.seq for r in replies(events)] == kept
    assert (stats.transmitted, stats.received) == (40, len(kept))
    assert stats.loss_percent == pytest.approx((40 - len(kept)) * 100 / 40)
    assert 0 < len(kept) < 40


def test_count_stops_sending_and_deadline_stops_waiting(v4: Recording) -> None:
    """-c 3 sends 3 and ends once they are answered; -w ends a silent ping at its deadline."""
    transport = ReplayTransport(v4)
    _, stats = run("198.18.2.9", transport, count=3)
    assert len(transport.sent) == 3 and stats.received == 3
    silent = ReplayTransport(v4)
    began = time.monotonic()
    _, stats = run("198.18.1.200", silent, interval=0.05, deadline=0.5)
    took = time.monotonic() - began
    assert 0.45 <= took < 1.5, took
    assert stats.received == 0 and stats.transmitted == len(silent.sent) and 8 <= stats.transmitted <= 12


def test_deadline_with_count_waits_for_count_replies(v4: Recording) -> None:
    """-w with -c: ping keeps sending until COUNT replies came (iputils), so under loss it sends more."""
    transport = ReplayTransport(v4, loss=0.5, seed=3)
    _, stats = run("198.18.2.9", transport, count=5, deadline=10, interval=0.005)
    assert stats.received == 5 and stats.transmitted > 5


def test_outstanding_reports_each_unanswered_probe_before_the_next(v4: Recording) -> None:
    events, _ = run("198.18.1.200", ReplayTransport(v4), count=3, outstanding=True, timeout=0.1)
    pending = [e for e in events if isinstance(e, PingPending)]
    assert [p.seq for p in pending] == [1, 2]
    assert render.ping_pending(pending[0]) == "no answer yet for icmp_seq=1"
    events, _ = run("198.18.2.9", ReplayTransport(v4), count=3, outstanding=True)
    assert not any(isinstance(e, PingPending) for e in events)


def test_pattern_fills_the_payload_as_ping_p(v4: Recording) -> None:
    transport = ReplayTransport(v4)
    events, _ = run("198.18.2.9", transport, count=1, pattern=bytes.fromhex("ab01ff"), size=40)
    payload = transport.sent[0].data[8:]
    assert len(payload) == 40
    assert payload[8:] == bytes(bytes.fromhex("ab01ff")[i % 3] for i in range(8, 40))
    assert replies(events)[0].seq == 1  # the nonce still matches the reply


def test_flood_sends_as_replies_come(v4: Recording) -> None:
    """-f: interval 0; with answers at once, the next probe goes out as each reply arrives."""
    transport = ReplayTransport(v4)
    began = time.monotonic()
    _, stats = run("198.18.2.9", transport, count=50, flood=True, interval=None)
    assert time.monotonic() - began < 2
    assert (stats.transmitted, stats.received) == (50, 50) and stats.interval_us == 0
    assert render.ping_summary(stats)[3].startswith("rtt min/avg/max/mdev = ")
    assert ", ipg/ewma " in render.ping_summary(stats)[3]


def test_flood_without_answers_is_paced_at_100_per_second(v4: Recording) -> None:
    transport = ReplayTransport(v4)
    _, stats = run("198.18.1.200", transport, flood=True, interval=None, deadline=0.3)
    assert 20 <= stats.transmitted <= 35, stats.transmitted


# --- scoped IPv6 ---------------------------------------------------------------------------------------


def test_multicast_echo_gets_every_hosts_reply(v6: Recording) -> None:
    """ff02::1%lo: every host on the link answers each probe; the first per seq counts as received."""
    hosts = ["2001:db8::10", "2001:db8:2::1"]

    def everyone(sock: ReplaySocket, sent: Sent) -> list[bytes]:
        local = sock.transport.route_source("ff02::1")
        return [r for h in hosts if (r := fit_reply(v6.replies[h][0], sent.data, local)) is not None]

    transport = ReplayTransport(everyone)
    pinger = Pinger("ff02::1%lo", transport=transport, count=3)
    assert pinger.start.address == "ff02::1%lo"
    events = list(pinger)
    got = replies(events)
    # the third seq's second answer is not waited for: -c 3 ends at the third reply, as ping does
    assert [(r.seq, r.address, r.duplicate) for r in got] == [
        (1, hosts[0], False), (1, hosts[1], True), (2, hosts[0], False), (2, hosts[1], True), (3, hosts[0], False)]
    assert transport.sent[0].address == ("ff02::1", 0, 0, socket.if_nametoindex("lo"))
    stats = events[-1]
    assert isinstance(stats, PingStats) and (stats.received, stats.duplicates) == (3, 2)


def test_an_unknown_scope_is_bad_input(v6: Recording) -> None:
    with pytest.raises(InvalidTarget, match="unknown scope 'nosuch0'"):
        Pinger("fe80::1%nosuch0", transport=ReplayTransport(v6), count=1)


@pytest.mark.parametrize("options", [{"pmtu": "sometimes"}, {"pattern": bytes(17)}, {"deadline": 0},
                                     {"deadline": float("nan")}, {"count": 0}])
def test_bad_options_are_refused_before_anything_is_sent(v4: Recording, options: dict[str, object]) -> None:
    transport = ReplayTransport(v4)
    with pytest.raises(InvalidOption):
        Pinger("198.18.2.9", transport=transport, **options)
    assert transport.sent == [] and transport.sockets == []
