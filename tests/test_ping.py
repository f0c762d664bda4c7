"""`recon ping` against real packets in the lab, side by side with iputils ping(8).

Every lab test runs recon as a user does (a subprocess inside the scanner
namespace) and, where the answer is deterministic, runs iputils `ping` on the
same host in the same test: same number of replies, same line shapes.
"""

from __future__ import annotations

import json
import math
import re
import select
import signal
import statistics
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import pytest

from recon import render
from recon.models import PingError, PingReply, PingStats
from recon.ping import rtt_summary
from tests.conftest import NOBODY, need_tool, small_tmpfs

RECON = [sys.executable, "-m", "recon", "ping"]

SHAPES = [
    ("header4", re.compile(r"^PING \S+ \(\S+\)( from \S* \S*:)? \d+\(\d+\) bytes of data\.$")),
    ("header6", re.compile(r"^PING \S+\(.+\)( from \S* \S*:)? \d+ data bytes$")),
    ("reply", re.compile(r"^(\[\d+\.\d{6}\] )?\d+ bytes from \S+( \(\S+\))?: icmp_seq=\d+ ttl=\d+ time=\d+(\.\d+)? ms( \(DUP!\))?$")),
    ("from", re.compile(r"^(\[\d+\.\d{6}\] )?From \S+( \(\S+\))? icmp_seq=\d+ [A-Za-z].*$")),
    ("blank", re.compile(r"^$")),
    ("title", re.compile(r"^--- \S+ ping statistics ---$")),
    ("counts", re.compile(r"^\d+ packets transmitted, \d+ received(, \+\d+ duplicates)?(, \+\d+ errors)?, "
                          r"\d+(\.\d+)?% packet loss, time \d+ms$")),
    ("rtt", re.compile(r"^rtt min/avg/max/mdev = \d+\.\d{3}/\d+\.\d{3}/\d+\.\d{3}/\d+\.\d{3} ms(, pipe \d+)?$")),
    ("localerr", re.compile(r"^ping: local error: message too long, mtu(=|: )\d+$")),
    ("pattern", re.compile(r"^PATTERN: 0x[0-9a-f]*$")),
    ("pending", re.compile(r"^(\[\d+\.\d{6}\] )?no answer yet for icmp_seq=\d+$")),
]


def shapes(text: str) -> list[str]:
    """Name the shape of every line; an unknown line fails the test."""
    out = []
    for line in text.splitlines():
        name = next((n for n, rx in SHAPES if rx.match(line)), None)
        assert name is not None, f"line with no iputils shape: {line!r}"
        out.append(name)
    return out


def counts(text: str) -> tuple[int, int, int]:
    """(transmitted, received, errors) from a summary."""
    m = re.search(r"(\d+) packets transmitted, (\d+) received(?:, \+(\d+) duplicates)?(?:, \+(\d+) errors)?", text)
    assert m, text
    return int(m[1]), int(m[2]), int(m[4] or 0)


def duplicates(text: str) -> int:
    m = re.search(r", \+(\d+) duplicates", text)
    return int(m[1]) if m else 0


def side_by_side(lab, args: list[str], host: str, *, ping_host: str | None = None, timeout: float = 30):
    """Run recon ping and iputils ping at once (same options) and return both results."""
    need_tool("ping")
    ours = lab.popen([*RECON, *args, host], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    theirs = lab.popen(["ping", *args, ping_host or host], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    o_out, o_err = ours.communicate(timeout=timeout)
    t_out, t_err = theirs.communicate(timeout=timeout)
    return (ours.returncode, o_out, o_err), (theirs.returncode, t_out, t_err)


# --- pure: statistics and formatting ------------------------------------------------------


def test_mdev_is_iputils_arithmetic() -> None:
    """min/avg/max/mdev follow iputils: integer µs, mdev = sqrt(mean(rtt²) − mean(rtt)²) truncated."""
    # iputils printed 0.075/0.332/0.589/0.257 for these two samples in the lab.
    assert rtt_summary([75, 589]) == (75, 332, 589, 257)
    samples = [50286, 50490, 50688, 50412, 50301, 50555]
    tmin, tavg, tmax, mdev = rtt_summary(samples)
    mean = sum(samples) / len(samples)
    exact = math.sqrt(sum(s * s for s in samples) / len(samples) - mean * mean)
    assert (tmin, tmax, tavg) == (50286, 50688, int(mean))
    assert abs(mdev - exact) <= 1
    assert rtt_summary([100, 100, 100]) == (100, 100, 100, 0)


def test_reply_time_precision_steps_like_iputils() -> None:
    """time= shows 3 decimals under 1 ms, 2 under 10 ms, 1 under 100 ms, none above (rounded as iputils)."""
    def line(us: int) -> str:
        r = PingReply(seq=1, address="198.18.0.10", hostname=None, bytes=64, ttl=64, rtt_ms=us / 1000, rtt_us=us,
                      duplicate=False, truncated=False, timestamp=0.0)
        return render.ping_reply(r)

    assert line(123).endswith("time=0.123 ms")
    assert line(1234).endswith("time=1.23 ms")
    assert line(50286).endswith("time=50.3 ms")
    assert line(123456).endswith("time=123 ms")
    dup = PingReply(seq=2, address="198.18.0.10", hostname="phone.lab", bytes=64, ttl=64, rtt_ms=0.1, rtt_us=100,
                    duplicate=True, truncated=False, timestamp=1.5)
    assert render.ping_reply(dup, timestamps=True) == \
        "[1.500000] 64 bytes from phone.lab (198.18.0.10): icmp_seq=2 ttl=64 time=0.100 ms (DUP!)"


def test_summary_lines_like_iputils() -> None:
    """The summary has ping's blank line, title, counts with +errors/+duplicates and a %g loss."""
    stats = PingStats(host="h", address="198.18.0.10", transmitted=167, received=158, duplicates=0, errors=9,
                      time_ms=791, rtt_min_us=330, rtt_avg_us=1511202, rtt_max_us=9886157, rtt_mdev_us=2799059,
                      rtt_ewma_us=500, pipe=10)
    assert render.ping_summary(stats) == [
        "", "--- h ping statistics ---",
        "167 packets transmitted, 158 received, +9 errors, 5.38922% packet loss, time 791ms",
        "rtt min/avg/max/mdev = 0.330/1511.202/9886.157/2799.059 ms, pipe 10",
    ]
    err = PingError(seq=3, kind="host-unreachable", reporter="198.18.0.1",
                    reporter_name=None, icmp_type=3, icmp_code=1, mtu=None, local=False, timestamp=0.0)
    assert render.ping_error(err) == ("From 198.18.0.1 icmp_seq=3 Destination Host Unreachable", False)


# --- lab: compared with iputils -------------------------------------------------------------


def test_ipv4_echo_same_as_iputils(lab) -> None:
    """A LAN host answers every probe; recon and ping print the same line shapes and counts."""
    (rc, out, err), (prc, pout, _perr) = side_by_side(lab, ["-c", "3", "-i", "0.05"], "198.18.0.10")
    assert rc == prc == 0, err
    assert shapes(out) == shapes(pout) == ["header4", "reply", "reply", "reply", "blank", "title", "counts", "rtt"]
    assert counts(out) == counts(pout) == (3, 3, 0)
    assert [int(s) for s in re.findall(r"icmp_seq=(\d+)", out)] == [1, 2, 3]
    assert out.splitlines()[0] == pout.splitlines()[0] == "PING 198.18.0.10 (198.18.0.10) 56(84) bytes of data."


@pytest.mark.parametrize("args,host", [(["-D"], "198.18.0.11"), (["-I", "eth0"], "198.18.0.11"),
                                       (["-I", "198.18.0.2"], "198.18.0.11"), (["-I", "eth0"], "2001:db8::11")])
def test_timestamps_and_source_header_like_iputils(lab, args, host) -> None:
    """-D prefixes [epoch.micro] to replies; -I (interface or address) shows 'from SRC IF:' in the header, as ping."""
    (rc, out, _err), (prc, pout, _perr) = side_by_side(lab, ["-c", "2", "-i", "0.05", *args], host)
    assert rc == prc == 0
    assert out.splitlines()[0] == pout.splitlines()[0]
    assert shapes(out) == shapes(pout)
    if "-D" in args:
        stamps = [float(x) for x in re.findall(r"^\[(\d+\.\d{6})\] ", out, re.M)]
        assert len(stamps) == 2 and all(abs(t - time.time()) < 60 for t in stamps)


@pytest.mark.parametrize("host", ["2001:db8::10", "2001:db8:2::1"])
def test_ipv6_echo_same_as_iputils(lab, host) -> None:
    """IPv6 echo on the LAN and through the router: ping6's header shape, same replies."""
    (rc, out, err), (prc, pout, _perr) = side_by_side(lab, ["-c", "2", "-i", "0.05"], host)
    assert rc == prc == 0, err
    assert shapes(out) == shapes(pout) == ["header6", "reply", "reply", "blank", "title", "counts", "rtt"]
    assert out.splitlines()[0] == pout.splitlines()[0]
    assert counts(out) == counts(pout) == (2, 2, 0)
    hops = {int(t) for t in re.findall(r"ttl=(\d+)", out)}
    assert hops == {int(t) for t in re.findall(r"ttl=(\d+)", pout)}


def test_ttl_1_through_the_router_is_time_exceeded(lab) -> None:
    """--ttl 1 to a routed address: the router (198.18.0.1) reports time exceeded for each probe; exit 1."""
    (rc, out, err), (prc, pout, _perr) = side_by_side(lab, ["-c", "2", "-i", "0.05", "-t", "1"], "198.18.2.5")
    assert rc == prc == 1, err
    assert shapes(out) == shapes(pout)
    froms = [line for line in out.splitlines() if line.startswith("From")]
    assert froms == ["From 198.18.0.1 icmp_seq=1 Time to live exceeded", "From 198.18.0.1 icmp_seq=2 Time to live exceeded"]
    assert counts(out) == counts(pout) == (2, 0, 2)


def test_ttl_1_ipv6_is_hop_limit_exceeded(lab) -> None:
    """The IPv6 router answers hop-limit exceeded, worded as ping6 does."""
    (rc, out, _err), (prc, pout, _perr) = side_by_side(lab, ["-c", "1", "-t", "1"], "2001:db8:2::1")
    assert rc == prc == 1
    assert "From 2001:db8::1 icmp_seq=1 Time exceeded: Hop limit" in out.splitlines()
    assert shapes(out) == shapes(pout)


def test_unreachable_range(lab) -> None:
    """198.18.3.x: the router answers Destination Host Unreachable; errors are counted, nothing received, exit 1."""
    need_tool("ping")
    res = lab.recon("ping", "-c", "3", "-i", "0.2", "-W", "1", "198.18.3.40")
    ref = lab.run(["ping", "-c", "3", "-i", "0.2", "-W", "1", "198.18.3.41"])
    (rc, out, err), (prc, pout) = (res.returncode, res.stdout, res.stderr), (ref.returncode, ref.stdout)
    assert rc == prc == 1, err
    for text in (out, pout):
        froms = [line for line in text.splitlines() if line.startswith("From")]
        assert len(froms) == 3 and all(re.match(r"^From 198\.18\.0\.1 icmp_seq=[1-3] Destination Host Unreachable$", f) for f in froms)
        assert counts(text) == (3, 0, len(froms))
        assert shapes(text) == ["header4"] + ["from"] * len(froms) + ["blank", "title", "counts", "blank"]


@pytest.mark.parametrize("host,mtu", [("198.18.0.10", "mtu=1500"), ("2001:db8::10", "mtu: 1500")])
def test_df_over_the_mtu_is_a_local_error(lab, host, mtu) -> None:
    """--df with 2000 bytes on a 1500-byte link: 'ping: local error: message too long, mtu=1500' per probe."""
    need_tool("ping")
    res = lab.recon("ping", "-c", "2", "-i", "0.05", "--df", "-s", "2000", host)
    ref = lab.run(["ping", "-c", "2", "-i", "0.05", "-M", "do", "-s", "2000", host])
    assert res.returncode == ref.returncode == 1
    assert res.stderr.splitlines() == [f"ping: local error: message too long, {mtu}"] * 2
    assert shapes(res.stderr) == shapes(ref.stderr)
    assert shapes(res.stdout) == shapes(ref.stdout)
    assert counts(res.stdout) == counts(ref.stdout) == (2, 0, 2)
    # Without --df the same size is fragmented and answered.
    ok = lab.recon("ping", "-c", "1", "-s", "2000", host)
    assert ok.returncode == 0 and "2008 bytes from" in ok.stdout


def test_duplicates_marked_and_counted_like_iputils(lab) -> None:
    """When the host's replies are duplicated (nft 'dup' in its namespace), each copy says (DUP!) and is
    counted as +N duplicates, not as received; recon and ping agree line for line."""
    need_tool("nft")
    phone = lab.host("phone").netns
    rule = ('table ip recondup {\n chain out {\n  type filter hook output priority 0;\n'
            '  icmp type echo-reply dup to 198.18.0.2 device "eth0"\n }\n}\n')
    added = lab.run(["nft", "-f", "-"], ns=phone, input=rule)
    assert added.returncode == 0, added.stderr
    try:
        (rc, out, err), (prc, pout, _perr) = side_by_side(lab, ["-c", "3", "-i", "0.05"], "198.18.0.10")
    finally:
        lab.run(["nft", "delete", "table", "ip", "recondup"], ns=phone)
    assert rc == prc == 0, err
    assert shapes(out) == shapes(pout)
    assert [line.endswith("(DUP!)") for line in out.splitlines() if "bytes from" in line] == [False, True] * 2 + [False]
    assert counts(out) == counts(pout) == (3, 3, 0)
    assert duplicates(out) == duplicates(pout) == 2


# --- lab: measurement -----------------------------------------------------------------------


def test_loss_within_binomial_bounds(lab) -> None:
    """Under 20 % loss, 100 probes get between 60 and 95 replies, and the loss % is what it says."""
    with lab.impaired(loss=20):
        res = lab.recon("ping", "-q", "-c", "100", "-i", "0.05", "-W", "1", "198.18.0.10", "--json")
    summary = json.loads(res.stdout.splitlines()[-1])
    assert summary["transmitted"] == 100
    assert 60 <= summary["received"] <= 95, summary
    assert summary["loss_percent"] == pytest.approx(100 - summary["received"])
    assert res.returncode == 0


def test_rtt_follows_a_50ms_delay(lab) -> None:
    """With 50 ms of delay on the wan link, recon's RTTs start at the delay and read what iputils ping reads
    on the same path at the same moment.

    The delay is made by the lab's relay (recon/labrelay.py), a process that wakes to forward each packet:
    on a loaded machine it wakes late, so RTTs can exceed 50 ms by whatever the scheduler adds (52.1 ms on
    average once, in a full run). That makes 50 ms a floor, not a centre. Above, recon is held to ping run
    beside it (the first reply of ours is ping's start signal, so ping's probes go out inside our run and
    cross the same late relay): medians, which a descheduled moment or two cannot move, within 3 ms. A real
    fault crosses that: an RTT taken when Python reads the reply instead of the kernel's time, a send time
    from the probe before (+50 ms, the interval), a unit slip.
    """
    need_tool("ping")
    with lab.impaired(delay_ms=50):
        ours = lab.popen([*RECON, "-c", "20", "-i", "0.05", "--json", "198.18.5.7"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        first = ours.stdout.readline()  # our first reply: ping starts now, inside our second of probes
        ref = lab.run(["ping", "-c", "10", "-i", "0.05", "198.18.5.8"])
        rest, err = ours.communicate(timeout=30)
    lines = [json.loads(x) for x in (first + rest).splitlines()]
    assert ours.returncode == 0, err
    rtts = [x["rtt_ms"] for x in lines if x["type"] == "reply"]
    theirs = [float(t) for t in re.findall(r"time=([\d.]+) ms", ref.stdout)]
    assert len(rtts) == 20 and len(theirs) == 10 == counts(ref.stdout)[1], (rtts, ref.stdout)
    # The relay holds each packet 50 ms after reading it, which is after our send time was taken: nothing can
    # come back sooner (a tenth of a millisecond for the wall and monotonic clocks' slew, no more).
    assert min(rtts) >= 49.9 and min(theirs) >= 49.9, (rtts, theirs)
    assert statistics.median(rtts) <= statistics.median(theirs) + 3, (rtts, theirs)
    summary = lines[-1]  # the summary is the replies' own arithmetic, whatever the load did to them
    assert summary["rtt_min_ms"] == pytest.approx(min(rtts), abs=0.001)
    assert summary["rtt_max_ms"] == pytest.approx(max(rtts), abs=0.001)
    assert summary["rtt_avg_ms"] == pytest.approx(statistics.fmean(rtts), abs=0.002)


def test_json_schema(lab) -> None:
    """--json: one object per reply, then one summary object; nothing else on stdout."""
    res = lab.recon("ping", "-c", "2", "-i", "0.05", "--json", "198.18.0.11")
    assert res.returncode == 0, res.stderr
    objs = [json.loads(line) for line in res.stdout.splitlines()]
    assert [o["type"] for o in objs] == ["reply", "reply", "summary"]
    reply_keys = {"type", "seq", "address", "hostname", "bytes", "ttl", "rtt_ms", "duplicate", "truncated", "timestamp"}
    for seq, o in enumerate(objs[:2], 1):
        assert set(o) == reply_keys
        assert o["seq"] == seq and o["address"] == "198.18.0.11" and o["bytes"] == 64 and o["ttl"] == 64
        assert isinstance(o["rtt_ms"], float) and 0 < o["rtt_ms"] < 1000 and o["duplicate"] is False
    s = objs[2]
    assert set(s) == {"type", "host", "address", "transmitted", "received", "duplicates", "errors", "loss_percent",
                      "time_ms", "rtt_min_ms", "rtt_avg_ms", "rtt_max_ms", "rtt_mdev_ms", "pipe"}
    assert (s["transmitted"], s["received"], s["errors"], s["loss_percent"]) == (2, 2, 0, 0.0)
    assert s["rtt_min_ms"] <= s["rtt_avg_ms"] <= s["rtt_max_ms"]
    err = lab.recon("ping", "-c", "1", "-t", "1", "--json", "198.18.2.9")
    e = json.loads(err.stdout.splitlines()[0])
    assert e["type"] == "error" and e["kind"] == "time-exceeded" and e["reporter"] == "198.18.0.1" and e["seq"] == 1
    assert err.returncode == 1


def test_two_concurrent_pings_never_see_each_others_replies(lab) -> None:
    """Two recon pings to one host at once: each gets exactly its own seqs 1..N, no duplicates, no extras."""
    procs = [lab.popen([*RECON, "-c", "30", "-i", "0.05", "--json", "198.18.0.12"], stdout=subprocess.PIPE)
             for _ in range(2)]
    for p in procs:
        out, _ = p.communicate(timeout=30)
        objs = [json.loads(line) for line in out.splitlines()]
        replies = [o for o in objs if o["type"] == "reply"]
        assert [o["seq"] for o in replies] == list(range(1, 31))
        assert not any(o["duplicate"] for o in replies)
        assert (objs[-1]["received"], objs[-1]["duplicates"]) == (30, 0)
        assert p.returncode == 0


def test_pcap_holds_every_request_and_reply(lab, tmp_path) -> None:
    """--pcap writes each echo request and reply (raw IP), readable by tshark."""
    tshark = need_tool("tshark")
    path = tmp_path / "ping.pcap"
    res = lab.recon("ping", "-c", "3", "-i", "0.05", "--pcap", str(path), "198.18.0.10")
    assert res.returncode == 0
    fields = subprocess.run([tshark, "-r", str(path), "-T", "fields", "-e", "ip.src", "-e", "icmp.type", "-e", "icmp.seq",
                             "-e", "icmp.checksum.status"], capture_output=True, text=True, timeout=60).stdout.split("\n")
    rows = [line.split("\t") for line in fields if line.strip()]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("198.18.0.2", "8", "1"), ("198.18.0.10", "0", "1"), ("198.18.0.2", "8", "2"), ("198.18.0.10", "0", "2"),
        ("198.18.0.2", "8", "3"), ("198.18.0.10", "0", "3")]
    assert {r[3] for r in rows} == {"1"}  # every checksum is good


# --- names and bad input ----------------------------------------------------------------------


def test_names_resolve_in_the_lab(lab) -> None:
    """phone.lab and far6.lab resolve (like ping: first address, -4 forces IPv4); the name shows on replies."""
    need_tool("ping")
    res = lab.recon("ping", "-c", "1", "-4", "phone.lab")
    assert res.returncode == 0
    assert res.stdout.splitlines()[0] == "PING phone.lab (198.18.0.10) 56(84) bytes of data."
    assert "64 bytes from phone.lab (198.18.0.10): icmp_seq=1" in res.stdout
    v6 = lab.recon("ping", "-c", "1", "far6.lab")
    ref = lab.run(["ping", "-c", "1", "far6.lab"])
    assert v6.returncode == ref.returncode == 0
    assert v6.stdout.splitlines()[0] == ref.stdout.splitlines()[0] == "PING far6.lab(far6.lab (2001:db8:2::1)) 56 data bytes"
    assert shapes(v6.stdout) == shapes(ref.stdout)
    te = lab.recon("ping", "-c", "1", "-t", "1", "far.lab")
    te_ref = lab.run(["ping", "-c", "1", "-t", "1", "far.lab"])
    assert te.stdout.splitlines()[:2] == te_ref.stdout.splitlines()[:2] == [
        "PING far.lab (198.18.2.1) 56(84) bytes of data.", "From router.lab (198.18.0.1) icmp_seq=1 Time to live exceeded"]


def test_unresolvable_host_is_one_line_exit_2(lab) -> None:
    """A name that does not resolve: one line on stderr, nothing on stdout, exit 2."""
    res = lab.recon("ping", "-c", "1", "no-such-host.lab")
    assert res.returncode == 2
    assert res.stdout == ""
    assert len(res.stderr.splitlines()) == 1 and "no-such-host.lab" in res.stderr


@pytest.mark.parametrize("host", ["240.0.0.1", "3fff::1"])  # reserved / RFC 9637 documentation: never real hosts, and unrouted in the lab
def test_no_route_is_exit_2_like_ping(lab, host) -> None:
    """A target the scanner has no route to: one line and exit 2 before sending, as ping's 'connect' error."""
    need_tool("ping")
    res = lab.recon("ping", "-c", "1", host)
    ref = lab.run(["ping", "-c", "1", host])
    assert res.returncode == ref.returncode == 2
    assert res.stdout == "" and len(res.stderr.splitlines()) == 1 and "Network is unreachable" in res.stderr


@pytest.mark.parametrize("args", [["-t", "0"], ["-s", "70000"], ["-c", "0"], ["-i", "0"], ["-I", "nosuch0"],
                                  ["-4", "2001:db8::10"], ["--source", "not-an-ip"]])
def test_bad_options_exit_2_before_sending(lab, args) -> None:
    """Out-of-range options are refused with one line and exit 2."""
    host = [] if any(":" in a for a in args) else ["198.18.0.10"]
    res = lab.recon("ping", *args, *host)
    assert res.returncode == 2, res.stdout + res.stderr
    assert len(res.stderr.splitlines()) == 1 and res.stdout == ""


# --- privileges ----------------------------------------------------------------------------


@contextmanager
def ping_group_range(lab, value: str):
    old = lab.run(["sysctl", "-n", "net.ipv4.ping_group_range"]).stdout.split()
    lab.run(["sysctl", "-qw", f"net.ipv4.ping_group_range={value}"])
    try:
        yield
    finally:
        lab.run(["sysctl", "-qw", f"net.ipv4.ping_group_range={old[0]} {old[1]}"])


def test_unprivileged_uses_icmp_datagram_sockets(lab) -> None:
    """As nobody with ping_group_range open, recon pings over SOCK_DGRAM: replies, TTL, errors, IPv6."""
    need_tool("setpriv")
    with ping_group_range(lab, "0 2147483647"):
        res = lab.run([*NOBODY, *RECON, "-c", "2", "-i", "0.2", "198.18.0.10"])
        v6 = lab.run([*NOBODY, *RECON, "-c", "1", "2001:db8:2::1"])
        ttl = lab.run([*NOBODY, *RECON, "-c", "1", "-t", "1", "198.18.2.7"])
        fast = lab.run([*NOBODY, *RECON, "-c", "1", "-i", "0.05", "198.18.0.10"])
    assert res.returncode == 0, res.stderr
    assert shapes(res.stdout) == ["header4", "reply", "reply", "blank", "title", "counts", "rtt"]
    assert "ttl=64" in res.stdout and counts(res.stdout) == (2, 2, 0)
    assert v6.returncode == 0 and "64 bytes from 2001:db8:2::1: icmp_seq=1 ttl=63" in v6.stdout
    assert ttl.returncode == 1 and "From 198.18.0.1 icmp_seq=1 Time to live exceeded" in ttl.stdout
    assert fast.returncode == 2 and "need root" in fast.stderr


def test_unprivileged_without_ping_group_is_exit_3(lab) -> None:
    """As nobody with ping_group_range closed: one line of advice, exit 3, nothing sent."""
    need_tool("setpriv")
    with ping_group_range(lab, "1 0"):
        res = lab.run([*NOBODY, *RECON, "-c", "1", "198.18.0.10"])
    assert res.returncode == 3
    assert len(res.stderr.splitlines()) == 1
    assert "CAP_NET_RAW" in res.stderr and "ping_group_range" in res.stderr
    assert res.stdout == ""


# --- signals ---------------------------------------------------------------------------------


def _wait_for_lines(proc: subprocess.Popen, n: int, timeout: float = 10) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while len(lines) < n and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
    return lines


def _interrupted(lab, host: str, wait_lines: int, *, quit_first: bool = False) -> tuple[list[str], str, str, int]:
    """Start `recon ping HOST`, read WAIT_LINES lines, (SIGQUIT,) then SIGINT; return what it printed."""
    proc = lab.popen([*RECON, "-i", "0.2", host], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    watchdog = threading.Timer(30, proc.kill)  # a hung ping must fail the test, not hang the run
    watchdog.start()
    try:
        head = _wait_for_lines(proc, wait_lines)
        # a few more probes go out (-i 0.2) before the signal; to a dead address nothing is printed
        # after the header, so no line could say they went: time is the only signal there is
        time.sleep(0.5)
        quit_line = ""
        if quit_first:
            proc.send_signal(signal.SIGQUIT)
            ready, _, _ = select.select([proc.stderr], [], [], 10)  # SIGQUIT's own signal: its statistics line
            quit_line = proc.stderr.readline() if ready else ""
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        err = quit_line + err
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
    return head, out, err, proc.returncode


def test_sigint_prints_the_summary_and_exits_0(lab) -> None:
    """Ctrl-C (SIGINT) ends a running ping with its summary and exit 0 (replies came); SIGQUIT prints running stats."""
    head, out, err, rc = _interrupted(lab, "198.18.0.10", 3, quit_first=True)
    assert len(head) == 3 and head[2].startswith("64 bytes from 198.18.0.10: icmp_seq=2")
    assert rc == 0
    assert shapes("\n".join(head) + "\n" + out)[-4:] == ["blank", "title", "counts", "rtt"]
    assert re.search(r"^\d+/\d+ packets, \d+% loss, min/avg/ewma/max = [\d.]+/[\d.]+/[\d.]+/[\d.]+ ms$", err, re.M), err
    assert "Traceback" not in err


def test_sigint_with_no_replies_exits_1(lab) -> None:
    """Ctrl-C on a ping to a dead address: summary with 100% loss, exit 1 (not 130)."""
    head, out, _err, rc = _interrupted(lab, "198.18.1.250", 1)
    assert head[0].startswith("PING 198.18.1.250")
    assert rc == 1
    tx, rx, _ = counts(out)
    assert tx >= 2 and rx == 0


def test_router_frag_needed_is_reported(lab) -> None:
    """--df over the wan link's 1400-byte MTU: the router's 'Frag needed' is shown with the MTU; under it, replies.

    198.18.5.201 is used by no other test: the scanner caches the learned path MTU per destination.
    """
    res = lab.recon("ping", "-c", "2", "-i", "0.2", "-W", "1", "--df", "-s", "1400", "198.18.5.201")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "From 198.18.0.1 icmp_seq=1 Frag needed and DF set (mtu = 1400)" in res.stdout, res.stdout
    assert "2 packets transmitted, 0 received" in res.stdout
    fits = lab.recon("ping", "-c", "1", "-W", "1", "--df", "-s", "1300", "198.18.5.201")
    assert fits.returncode == 0 and "1308 bytes from 198.18.5.201" in fits.stdout


# --- iputils flags: -w -n -M -O -p -f -a ------------------------------------------------------------


def test_deadline_like_iputils(lab) -> None:
    """-w ends a ping to a silent address at the deadline (exit 1); with -c, replies end it early (exit 0)."""
    (rc, out, err), (prc, pout, _perr) = side_by_side(lab, ["-w", "1", "-i", "0.2"], "198.18.1.250")
    assert rc == prc == 1, err
    assert shapes(out) == shapes(pout) == ["header4", "blank", "title", "counts", "blank"]
    assert abs(counts(out)[0] - counts(pout)[0]) <= 1 and counts(out)[1] == 0
    (rc, out, err), (prc, pout, _perr) = side_by_side(lab, ["-w", "5", "-c", "2", "-i", "0.2"], "198.18.0.10")
    assert rc == prc == 0, err
    assert counts(out) == counts(pout) == (2, 2, 0)
    # with -w, the first ICMP error ends the run (iputils main_loop: deadline && nerrors)
    (rc, out, err), (prc, pout, _perr) = side_by_side(lab, ["-w", "8", "-i", "0.2"], "198.18.3.9")
    assert rc == prc == 1, err
    assert shapes(out) == shapes(pout) == ["header4", "from", "blank", "title", "counts", "blank"]
    assert counts(out) == counts(pout) == (1, 0, 1)


def test_numeric_output_like_iputils(lab) -> None:
    """-n: no reverse lookups; the reply lines carry the bare address, and ping6's header the address."""
    need_tool("ping")
    for args in (["-4", "far.lab"], ["-6", "phone.lab"]):
        res = lab.recon("ping", "-n", "-c", "1", *args)
        ref = lab.run(["ping", "-n", "-c", "1", *args])
        assert res.returncode == ref.returncode == 0, res.stderr
        assert res.stdout.splitlines()[0] == ref.stdout.splitlines()[0]
        ours, theirs = (re.sub(r"time=\S+", "", t.splitlines()[1]) for t in (res.stdout, ref.stdout))
        assert ours == theirs and ".lab" not in ours


@pytest.mark.parametrize("mode", ["do", "dont", "want"])
def test_pmtu_modes_like_iputils(lab, mode) -> None:
    """-M do refuses 2000 bytes on a 1500 link (local error), dont and want fragment and get answers."""
    need_tool("ping")
    res = lab.recon("ping", "-c", "2", "-i", "0.05", "-M", mode, "-s", "2000", "198.18.0.10")
    ref = lab.run(["ping", "-c", "2", "-i", "0.05", "-M", mode, "-s", "2000", "198.18.0.10"])
    assert res.returncode == ref.returncode == (1 if mode == "do" else 0)
    assert counts(res.stdout) == counts(ref.stdout)
    assert shapes(res.stdout) == shapes(ref.stdout) and shapes(res.stderr) == shapes(ref.stderr)
    if mode == "do":  # --df is kept as the old spelling of -M do
        assert lab.recon("ping", "-c", "2", "-i", "0.05", "--df", "-s", "2000", "198.18.0.10").stderr == res.stderr


def test_outstanding_like_iputils(lab) -> None:
    """-O: before each send, 'no answer yet for icmp_seq=N' when the previous probe is unanswered."""
    (rc, out, _err), (prc, pout, _perr) = side_by_side(lab, ["-O", "-c", "3", "-i", "0.2", "-W", "1"], "198.18.1.250")
    assert rc == prc == 1
    pending = [line for line in out.splitlines() if line.startswith("no answer")]
    assert pending == [line for line in pout.splitlines() if line.startswith("no answer")] == [
        "no answer yet for icmp_seq=1", "no answer yet for icmp_seq=2"]
    assert shapes(out) == shapes(pout)
    answered = lab.recon("ping", "-O", "-c", "2", "-i", "0.2", "198.18.0.10")
    assert answered.returncode == 0 and "no answer" not in answered.stdout


def test_pattern_like_iputils(lab, tmp_path) -> None:
    """-p: 'PATTERN: 0x..' first, and the payload on the wire is the pattern repeated (after our 8-byte nonce)."""
    (rc, out, _err), (prc, pout, _perr) = side_by_side(lab, ["-p", "ff000a", "-s", "20", "-c", "1"], "198.18.0.10")
    assert rc == prc == 0
    assert out.splitlines()[:2] == pout.splitlines()[:2] == [
        "PATTERN: 0xff000a", "PING 198.18.0.10 (198.18.0.10) 20(48) bytes of data."]
    assert shapes(out) == shapes(pout)
    from recon.pcap import read_frames

    path = tmp_path / "p.pcap"
    assert lab.recon("ping", "-p", "ff000a", "-s", "20", "-c", "1", "--pcap", str(path), "198.18.0.10").returncode == 0
    request = bytes(next(iter(read_frames(str(path)))).data)
    assert request[20] == 8 and request[28 + 8:] == bytes(bytes.fromhex("ff000a")[i % 3] for i in range(8, 20))
    bad = lab.recon("ping", "-p", "xyz", "-c", "1", "198.18.0.10")
    ref = lab.run(["ping", "-p", "xyz", "-c", "1", "198.18.0.10"])
    assert bad.returncode == ref.returncode == 2 and len(bad.stderr.splitlines()) == 1 and bad.stdout == ""


def test_flood_like_iputils(lab) -> None:
    """-f: a '.' per probe and a backspace per reply, as fast as replies come; ipg/ewma in the summary.
    As a user, -f is refused (exit 2), as ping refuses it."""
    (rc, out, err), (prc, pout, _perr) = side_by_side(lab, ["-f", "-c", "100"], "198.18.0.10")
    assert rc == prc == 0, err
    for text in (out, pout):
        dots = text.splitlines()[1]
        assert dots.count(".") == 100 and dots.count("\b \b") == 100 and set(dots) <= {".", "\b", " "}
        assert re.search(r"^rtt min/avg/max/mdev = [\d./]+ ms(, pipe \d+)?, ipg/ewma \d+\.\d{3}/\d+\.\d{3} ms$", text, re.M), text
    assert counts(out) == counts(pout) == (100, 100, 0)
    need_tool("setpriv")
    user = lab.run([*NOBODY, *RECON, "-f", "-c", "1", "198.18.0.10"])
    assert user.returncode == 2 and len(user.stderr.splitlines()) == 1 and "root" in user.stderr


def test_audible_like_iputils(lab) -> None:
    """-a: each reply line ends with a bell (BEL), as ping prints it."""
    (rc, out, _err), (prc, pout, _perr) = side_by_side(lab, ["-a", "-c", "2", "-i", "0.2"], "198.18.0.10")
    assert rc == prc == 0
    for text in (out, pout):
        replies = [line for line in text.splitlines() if "bytes from" in line]
        assert len(replies) == 2 and all(line.endswith(" ms\a") for line in replies)
    assert out.count("\a") == pout.count("\a") == 2


# --- scoped IPv6 (issue 11) --------------------------------------------------------------------------


def _link_local(lab, name: str) -> str:
    text = lab.run(["ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link"], ns=lab.host(name).netns).stdout
    return re.search(r"inet6 (fe80::[0-9a-f:]+)/", text)[1]


def test_link_local_with_scope_like_iputils(lab) -> None:
    """fe80::...%eth0 works (it was a traceback): same header and reply lines as ping, sources with %eth0."""
    host = _link_local(lab, "phone") + "%eth0"
    (rc, out, err), (prc, pout, _perr) = side_by_side(lab, ["-c", "2", "-i", "0.2"], host)
    assert rc == prc == 0, err
    assert "Traceback" not in err
    assert out.splitlines()[0] == pout.splitlines()[0] == f"PING {host}({host}) 56 data bytes"
    assert shapes(out) == shapes(pout)
    assert re.sub(r"time=\S+", "", out.splitlines()[1]) == re.sub(r"time=\S+", "", pout.splitlines()[1])
    assert f"64 bytes from {host}: icmp_seq=1 ttl=64" in out


def test_multicast_all_nodes_like_iputils(lab) -> None:
    """ff02::1%eth0: every host on the link answers each probe; the first counts as received and the rest
    as duplicates, printed without (DUP!) as ping does for multicast."""
    (rc, out, err), (prc, pout, _perr) = side_by_side(lab, ["-c", "2", "-i", "0.3"], "ff02::1%eth0")
    assert rc == prc == 0, err
    assert out.splitlines()[0] == pout.splitlines()[0] == "PING ff02::1%eth0(ff02::1%eth0) 56 data bytes"
    assert shapes(out) == shapes(pout)

    def first_round(text: str) -> set[str]:
        return set(re.findall(r"^64 bytes from (\S+): icmp_seq=1 ", text, re.M))

    assert len(first_round(out)) >= 5 and first_round(out) == first_round(pout)
    assert all(a.startswith("fe80::") and a.endswith("%eth0") for a in first_round(out))
    assert "(DUP!)" not in out and "(DUP!)" not in pout
    assert counts(out)[:2] == counts(pout)[:2] == (2, 2)
    assert duplicates(out) >= len(first_round(out)) - 1


def test_unknown_scope_is_one_line_exit_2(lab) -> None:
    need_tool("ping")
    res = lab.recon("ping", "-c", "1", "fe80::1%nosuch0")
    ref = lab.run(["ping", "-c", "1", "fe80::1%nosuch0"])
    assert res.returncode == ref.returncode == 2
    assert res.stdout == "" and len(res.stderr.splitlines()) == 1 and "nosuch0" in res.stderr


# --- hostile environments (issue 14) ------------------------------------------------------------------


def test_pcap_on_a_full_disk_is_one_line_exit_3_with_the_statistics(lab, tmp_path) -> None:
    """--pcap onto a full filesystem: the ping ends, the statistics are printed, then one error line, exit 3;
    the file holds only whole records."""
    from recon.pcap import read_frames

    with small_tmpfs(tmp_path / "full", "8k") as full:
        res = lab.recon("ping", "-c", "300", "-i", "0.01", "--pcap", str(full / "p.pcap"), "198.18.0.10")
        records = list(read_frames(str(full / "p.pcap")))
    assert res.returncode == 3, res.stdout + res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.splitlines()) == 1 and "pcap" in res.stderr
    sent, received, _ = counts(res.stdout)
    assert 0 < sent < 300 and received > 0
    assert shapes(res.stdout)[-4:] == ["blank", "title", "counts", "rtt"]
    assert len(records) in (sent + received - 1, sent + received)  # every packet before the one that did not fit


def test_closed_pipe_is_a_normal_end(lab) -> None:
    """`recon ping ... | head -1` exits 0: the reader went away, nothing failed."""
    res = lab.run(["bash", "-c", f"{sys.executable} -m recon ping -i 0.2 -c 5 198.18.0.10 | head -1; "
                                 "echo \"status=${PIPESTATUS[0]}\""])
    assert res.stdout.splitlines() == ["PING 198.18.0.10 (198.18.0.10) 56(84) bytes of data.", "status=0"], res.stderr
    assert "Traceback" not in res.stderr
