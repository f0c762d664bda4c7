"""The sweep engine in-process, without root: its sockets come from ReplayTransport, whose answers
are the replies and errors recorded in captures/ (fitted to each probe as the real hosts did).
Classification, duplicates, late replies, foreign ICMP and retries under loss, all from real bytes."""

from __future__ import annotations

import errno
import socket
import struct
from array import array

import pytest

from recon.engine import ERROR, FOREIGN, LATE, REPLY, IcmpMatcher, Prober, sweep
from recon.packets import inet_checksum, ipv4_header
from recon.targets import build_targets, ip_to_int
from recon.transport import Recording, ReplaySocket, ReplayTransport, Sent, fit_reply
from tests.conftest import CAPTURES

ROUTER = "198.18.0.1"


def _recording() -> Recording:
    """sweep.pcap's echo replies (198.18.1.17, .31 and 198.18.2.0-7) and ping-errors.pcap's router
    host-unreachable for 198.18.3.7 and the reply of 198.18.2.9, in one recording."""
    rec = Recording.from_pcap(CAPTURES / "sweep.pcap")
    errors = Recording.from_pcap(CAPTURES / "ping-errors.pcap")
    rec.replies.update(errors.replies)
    rec.errors["198.18.3.7"] = errors.errors["198.18.3.7"]
    return rec


REC = _recording()
UP = {"198.18.1.17", "198.18.1.31", "198.18.2.9", *(f"198.18.2.{i}" for i in range(8))}
TARGETS = ["198.18.1.0/27", "198.18.2.0/28", "198.18.3.7"]


def _rows(result) -> dict[str, tuple[str, str | None]]:
    return {h.address: (h.status, h.reply) for h in result.hosts}


def test_up_down_and_unreachable_come_from_the_recorded_answers() -> None:
    """Every recorded replier is up with its recorded TTL, the router's host-unreachable makes 198.18.3.7
    unreachable (reporter: the router), the rest is down; the silent get one retry each."""
    transport = ReplayTransport(REC)
    result = sweep(build_targets(TARGETS), method="icmp", timeout=0.05, retries=1, transport=transport)
    rows = _rows(result)
    assert len(rows) == 32 + 16 + 1
    assert {a for a, (st, _) in rows.items() if st == "up"} == UP
    assert all(reply == "echo-reply" for st, reply in rows.values() if st == "up")
    assert rows["198.18.3.7"] == ("unreachable", "host-unreachable")
    unreachable = next(h for h in result.hosts if h.address == "198.18.3.7")
    assert unreachable.reporter == ROUTER
    ttl = {h.address: h.ttl for h in result.up}
    assert ttl["198.18.1.17"] == REC.replies["198.18.1.17"][0][8]
    assert ttl["198.18.2.9"] == REC.replies["198.18.2.9"][0][8]
    silent = 49 - len(UP) - 1
    s = result.stats
    assert (s.targets, s.sent, s.retries, s.unreachable) == (49, 49 + silent, silent, 1)
    assert (s.received, s.duplicates, s.late, s.ignored) == (len(UP) + 1, 0, 0, 0)
    probes = [p for p in transport.sent if p.kind == "icmp4"]
    assert len(probes) == s.sent and all(inet_checksum(p.data) == 0 for p in probes)


def test_duplicate_answers_are_counted_once() -> None:
    """A host that answers every probe twice is one host; the second copy is a duplicate."""
    def twice(sock: ReplaySocket, sent: Sent) -> list[bytes]:
        return REC(sock, sent) * 2

    result = sweep(build_targets(["198.18.2.0/29"]), method="icmp", timeout=0.05, retries=0,
                   transport=ReplayTransport(twice))
    assert {h.address for h in result.up} == {f"198.18.2.{i}" for i in range(8)}
    assert result.stats.duplicates == 8 and result.stats.received == 16


def test_replies_to_a_previous_sweep_are_late_never_hosts() -> None:
    """A Prober keeps its socket between sweeps (watch): answers held back during the first sweep and
    delivered afterwards count as late in the second, and do not make the second sweep's targets up."""
    held: list[tuple[ReplaySocket, bytes]] = []
    hold = True

    def slow(sock: ReplaySocket, sent: Sent) -> list[bytes]:
        answers = REC(sock, sent)
        if hold:
            held.extend((sock, a) for a in answers)
            return []
        return answers

    with Prober(method="icmp", transport=ReplayTransport(slow)) as prober:
        first = prober.sweep(build_targets(["198.18.2.0/29"]), timeout=0, retries=0)
        for sock, answer in held:
            sock.deliver(answer)
        hold = False
        second = prober.sweep(build_targets(["198.18.1.16/28"]), timeout=0.05, retries=0)
    assert first.up == () and len(held) == 8
    assert second.stats.late == 8 and second.stats.ignored == 0
    assert {h.address for h in second.up} == {"198.18.1.17", "198.18.1.31"}


def _foreign_echo_reply(src: str, dst: str, ident: int, seq: int) -> bytes:
    msg = bytearray(struct.pack("!BBHHH", 0, 0, 0, ident, seq) + b"ping(8)!")
    msg[2:4] = inet_checksum(bytes(msg)).to_bytes(2, "big")
    return ipv4_header(socket.inet_aton(src), socket.inet_aton(dst), len(msg), 64, False) + bytes(msg)


def test_other_processes_icmp_is_ignored() -> None:
    """Another process's echo replies (even from a swept address) and errors about another process's
    traffic reach the raw socket too: they are ignored, not hosts and not duplicates."""
    other_error = REC.errors["198.18.3.7"][0]

    def noisy(sock: ReplaySocket, sent: Sent) -> list[bytes]:
        noise = [_foreign_echo_reply("198.18.2.200", "198.18.0.2", 0x0BAD, 1),
                 _foreign_echo_reply(sent.address[0], "198.18.0.2", 0x0BAD, 2),
                 other_error]  # quotes someone else's probe to 198.18.3.7 (recorded id/seq)
        return noise + REC(sock, sent)

    result = sweep(build_targets(["198.18.2.0/29", "198.18.1.16/30"]), method="icmp", timeout=0.05, retries=1,
                   transport=ReplayTransport(noisy))
    assert {h.address for h in result.up} == {f"198.18.2.{i}" for i in range(8)} | {"198.18.1.17"}
    assert all(h.status != "unreachable" for h in result.hosts)
    s = result.stats
    assert s.duplicates == 0 and s.received == 9 and s.ignored == 3 * s.sent


def test_retries_recover_what_loss_drops() -> None:
    """30 % of answers lost (seeded): no retry misses hosts, retries find every one of them."""
    targets = ["198.18.1.0/27", "198.18.2.0/29", "198.18.2.9"]
    truth = UP
    lossy = sweep(build_targets(targets), method="icmp", timeout=0.02, retries=0,
                  transport=ReplayTransport(REC, loss=0.3, seed=3))
    assert {h.address for h in lossy.up} < truth
    recovered = sweep(build_targets(targets), method="icmp", timeout=0.02, retries=8,
                      transport=ReplayTransport(REC, loss=0.3, seed=3))
    assert {h.address for h in recovered.up} == truth
    assert recovered.stats.retries > 0


def test_timestamp_probes_are_matched_by_their_reply_type() -> None:
    """--probe timestamp: the recorded hosts answer with timestamp replies (type 14), which match; an
    echo reply to the same id/seq would not."""
    def timestamps(sock: ReplaySocket, sent: Sent) -> list[bytes]:
        dst = sent.address[0]
        recorded = REC.replies.get(dst)
        if not recorded:
            return []
        as_ts = bytearray(recorded[0])
        ihl = (as_ts[0] & 15) * 4
        as_ts[ihl] = 14
        return [fit_reply(bytes(as_ts), sent.data, "198.18.0.2") or b""]

    result = sweep(build_targets(["198.18.2.0/30"]), method="icmp", probe="timestamp", timeout=0.05, retries=0,
                   transport=ReplayTransport(timestamps))
    assert {(h.address, h.reply) for h in result.up} == {(f"198.18.2.{i}", "timestamp-reply") for i in range(4)}
    echo_only = sweep(build_targets(["198.18.2.0/30"]), method="icmp", probe="timestamp", timeout=0.02, retries=0,
                      transport=ReplayTransport(REC))
    assert echo_only.up == ()


# --- the matcher alone: bytes in, verdict out ------------------------------------------------------


def _probe(ident: int, seq: int, attempt: int = 0) -> bytes:
    msg = bytearray(struct.pack("!BBHHH", 8, 0, 0, ident, seq) + bytes([attempt]) + b"\0" * 7)
    msg[2:4] = inet_checksum(bytes(msg)).to_bytes(2, "big")
    return bytes(msg)


@pytest.mark.parametrize("index", [0, 5, 70000])
def test_matcher_decodes_the_index_from_id_and_seq(index: int) -> None:
    """The reply to probe i (id = base + i >> 16, seq = i & 0xffff) from addrs[i] is REPLY i with the
    attempt byte; the same reply from another source, or to another seq, is foreign."""
    addrs = array("I", range(ip_to_int("198.18.0.0"), ip_to_int("198.18.0.0") + 70001))
    base = 0xFFF0
    m = IcmpMatcher(addrs, base, 0)
    ident, seq = (base + (index >> 16)) & 0xFFFF, index & 0xFFFF
    src = socket.inet_ntoa(addrs[index].to_bytes(4, "big"))
    reply = fit_reply(REC.replies["198.18.2.1"][0], _probe(ident, seq, 3), "198.18.0.2")
    assert reply is not None
    reply = reply[:12] + socket.inet_aton(src) + reply[16:]
    assert m(reply) == (REPLY, index, 3)
    wrong_src = reply[:12] + socket.inet_aton("198.18.255.255") + reply[16:]
    assert m(wrong_src)[0] == FOREIGN
    ihl = (reply[0] & 15) * 4
    wrong_seq = bytearray(reply)
    wrong_seq[ihl + 7] ^= 1
    assert m(bytes(wrong_seq))[0] == FOREIGN or m(bytes(wrong_seq))[1] != index


def test_matcher_reads_errors_through_the_quoted_probe_and_knows_previous_sweeps() -> None:
    """An error quoting our probe to addrs[i] is ERROR i; quoting it to another destination, foreign.
    A reply whose id belongs to a previous sweep's base is LATE."""
    from recon.transport import fit_error

    addrs = array("I", [ip_to_int("198.18.3.6"), ip_to_int("198.18.3.7")])
    m = IcmpMatcher(addrs, 0x1000, 0, previous=[0x2000])
    recorded = REC.errors["198.18.3.7"][0]
    assert m(fit_error(recorded, _probe(0x1000, 1), "198.18.3.7", "198.18.0.2")) == (ERROR, 1, -1)
    assert m(fit_error(recorded, _probe(0x1000, 1), "198.18.3.6", "198.18.0.2"))[0] == FOREIGN
    assert m(fit_error(recorded, _probe(0x1001, 1), "198.18.3.7", "198.18.0.2"))[0] == FOREIGN
    udp = bytearray(fit_error(recorded, _probe(0x1000, 1), "198.18.3.7", "198.18.0.2"))
    udp[(udp[0] & 15) * 4 + 8 + 9] = 17  # the same 8 bytes, but the quoted datagram was UDP: not our probe
    assert m(bytes(udp))[0] == FOREIGN
    old = fit_reply(REC.replies["198.18.2.1"][0], _probe(0x2000, 0), "198.18.0.2")
    assert old is not None and m(old)[0] == LATE
    assert m(b"\x45" + b"\0" * 10)[0] == FOREIGN


def test_a_probe_the_kernel_refuses_counts_as_sent_and_failed_and_the_sweep_goes_on() -> None:
    """The one send policy (transport.SEND_REFUSED): EADDRNOTAVAIL for one destination (its source address went
    away) is that probe's failure, counted in sent and send_errors; the other targets are still probed and found.
    Before, only four errnos were per-probe and this one ended the sweep with an OSError."""
    transport = ReplayTransport(REC, refuse=lambda sock, data, address: errno.EADDRNOTAVAIL if address[0] == "198.18.2.3" else 0)
    result = sweep(build_targets(["198.18.2.0/29"]), method="icmp", probe="echo", timeout=0.05, retries=0, transport=transport)
    assert {h.address for h in result.up} == {f"198.18.2.{i}" for i in range(8)} - {"198.18.2.3"}
    assert (result.stats.sent, result.stats.send_errors) == (8, 1)
    assert "198.18.2.3" not in {p.address[0] for p in transport.sent}
