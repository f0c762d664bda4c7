"""What `recon ping` prints, in-process: a Pinger on the replay transport (answers recorded in
captures/ping-errors.pcap) and render.PingPrinter writing to captured streams, in each of ping's
output modes (default, -q, -D, -a, -f, -p, --json) and for ICMP errors. The lab tests in
test_ping.py compare the same lines with iputils ping itself; these need neither root nor the lab.
"""

from __future__ import annotations

import io
import json
import re
import time

import pytest

from recon import render
from recon.models import PingStart, PingStats
from recon.ping import Pinger
from recon.transport import Recording, ReplayTransport
from tests.conftest import CAPTURES

UP, UNREACHABLE = "198.18.2.9", "198.18.3.7"  # a host that answers, and one the router says is unreachable
REPLY = re.compile(r"^64 bytes from 198\.18\.2\.9: icmp_seq=(\d+) ttl=\d+ time=\d+(\.\d+)? ms$")
COUNTS = re.compile(r"^(\d+) packets transmitted, (\d+) received(, \+\d+ errors)?, (\d+)% packet loss, time \d+ms$")
# ", pipe N" follows when a reply came after the next probe left (iputils does the same; a loaded machine
# delays the replay's replies past the 10 ms interval)
RTT = re.compile(r"^rtt min/avg/max/mdev = \d+\.\d{3}/\d+\.\d{3}/\d+\.\d{3}/\d+\.\d{3} ms(, pipe [2-9]\d*)?$")


@pytest.fixture(scope="module")
def v4() -> Recording:
    return Recording.from_pcap(CAPTURES / "ping-errors.pcap")


def transcript(rec: Recording, host: str, *, printer: dict[str, bool] | None = None,
               **options: object) -> tuple[list[str], str]:
    """Run ping as cli.ping does (start, then each event) and return (stdout lines, stderr text)."""
    options.setdefault("interval", 0.01)
    options.setdefault("numeric", True)  # no reverse lookups: nothing leaves the process
    out, err = io.StringIO(), io.StringIO()
    pinger = Pinger(host, transport=ReplayTransport(rec), **options)
    show = render.PingPrinter(**(printer or {}))
    with render.console(render.Console(out, err)):
        show.start(pinger.start)
        final = None
        for event in pinger:
            final = show.event(event) or final
    assert final is not None and final.final
    return out.getvalue().split("\n")[:-1], err.getvalue()


def test_default_output_is_iputils_lines(v4: Recording) -> None:
    lines, err = transcript(v4, UP, count=3)
    assert lines[0] == "PING 198.18.2.9 (198.18.2.9) 56(84) bytes of data."
    assert [m.group(1) if m else line for line, m in ((line, REPLY.match(line)) for line in lines[1:4])] == ["1", "2", "3"]
    assert lines[4:6] == ["", "--- 198.18.2.9 ping statistics ---"]
    counts = COUNTS.match(lines[6])
    assert counts is not None and counts.group(1, 2, 4) == ("3", "3", "0")
    assert RTT.match(lines[7]) and len(lines) == 8
    assert err == ""


def test_quiet_prints_the_header_and_the_summary_only(v4: Recording) -> None:
    lines, _ = transcript(v4, UP, count=3, printer={"quiet": True})
    assert lines[0].startswith("PING ") and lines[1:3] == ["", "--- 198.18.2.9 ping statistics ---"]
    assert not any(REPLY.match(line) for line in lines) and COUNTS.match(lines[3]) and RTT.match(lines[4])


def test_timestamps_prefix_each_reply_with_the_receive_time(v4: Recording) -> None:
    began = time.time()
    lines, _ = transcript(v4, UP, count=2, printer={"timestamps": True})
    stamped = [re.match(r"^\[(\d+\.\d{6})\] (.*)$", line) for line in lines[1:3]]
    assert all(m is not None and REPLY.match(m.group(2)) for m in stamped), lines
    assert all(began - 1 <= float(m.group(1)) <= time.time() + 1 for m in stamped if m is not None)


def test_audible_rings_the_bell_after_each_reply(v4: Recording) -> None:
    lines, _ = transcript(v4, UP, count=2, printer={"audible": True})
    assert [line.endswith("\a") and REPLY.match(line[:-1]) is not None for line in lines[1:3]] == [True, True]
    assert "\a" not in "".join(lines[3:])


def test_flood_prints_a_dot_per_probe_and_takes_one_back_per_reply(v4: Recording) -> None:
    lines, _ = transcript(v4, UP, count=20, flood=True, interval=None, printer={"flood": True})
    dots = lines[1]
    assert dots.count(".") == 20 and dots.count("\b \b") == 20 and set(dots) <= {".", "\b", " "}
    assert "ipg/ewma " in lines[-1]


def test_pattern_line_comes_first_except_with_quiet(v4: Recording) -> None:
    lines, _ = transcript(v4, UP, count=1, pattern=bytes.fromhex("ab01ff"))
    assert lines[0] == "PATTERN: 0xab01ff" and lines[1].startswith("PING 198.18.2.9 ")
    quiet, _ = transcript(v4, UP, count=1, pattern=bytes.fromhex("ab01ff"), printer={"quiet": True})
    assert quiet[0].startswith("PING ")


def test_json_is_one_object_per_reply_then_the_summary(v4: Recording) -> None:
    lines, err = transcript(v4, UP, count=3, printer={"as_json": True})
    objects = [json.loads(line) for line in lines]
    assert [o["type"] for o in objects] == ["reply", "reply", "reply", "summary"] and err == ""
    assert [o["seq"] for o in objects[:3]] == [1, 2, 3] and all(o["address"] == UP and o["rtt_ms"] > 0 for o in objects[:3])
    assert (objects[3]["transmitted"], objects[3]["received"], objects[3]["loss_percent"]) == (3, 3, 0)


def test_icmp_errors_go_to_stdout_as_ping_prints_them(v4: Recording) -> None:
    lines, err = transcript(v4, UNREACHABLE, count=2)
    assert lines[1:3] == [f"From 198.18.0.1 icmp_seq={seq} Destination Host Unreachable" for seq in (1, 2)]
    counts = COUNTS.match(lines[5])
    assert counts is not None and counts.group(1, 2, 3, 4) == ("2", "0", ", +2 errors", "100")
    assert lines[6] == "" and err == ""


def test_json_errors_say_what_iputils_says(v4: Recording) -> None:
    lines, _ = transcript(v4, UNREACHABLE, count=1, printer={"as_json": True})
    error = json.loads(lines[0])
    assert (error["type"], error["kind"], error["reporter"], error["message"]) == (
        "error", "host-unreachable", "198.18.0.1", "Destination Host Unreachable")


def _stats(**kw: object) -> PingStats:
    base: dict[str, object] = {"host": "phone.lab", "address": "198.18.0.10", "transmitted": 4, "received": 3, "duplicates": 0,
                               "errors": 0, "time_ms": 3004, "rtt_min_us": 41, "rtt_avg_us": 1052, "rtt_max_us": 3003,
                               "rtt_mdev_us": 1200, "rtt_ewma_us": 900, "pipe": 1, "final": False}
    return PingStats(**{**base, **kw})


def test_sigquit_status_goes_to_stderr_and_the_session_goes_on() -> None:
    """A non-final statistics event (SIGQUIT) is one stderr line in iputils' words; nothing is returned."""
    out, err = io.StringIO(), io.StringIO()
    with render.console(render.Console(out, err)):
        assert render.PingPrinter().event(_stats()) is None
    assert out.getvalue() == "" and err.getvalue() == "3/4 packets, 25% loss, min/avg/ewma/max = 0.041/1.052/0.900/3.003 ms\n"


def test_summary_counts_duplicates_errors_and_loss_as_iputils() -> None:
    lines = render.ping_summary(_stats(duplicates=2, errors=1, final=True))
    assert lines == ["", "--- phone.lab ping statistics ---",
                     "4 packets transmitted, 3 received, +2 duplicates, +1 errors, 25% packet loss, time 3004ms",
                     "rtt min/avg/max/mdev = 0.041/1.052/3.003/1.200 ms"]
    none = render.ping_summary(_stats(received=0, rtt_min_us=None, rtt_avg_us=None, rtt_max_us=None, rtt_mdev_us=None,
                                      rtt_ewma_us=None, final=True))
    assert none[2:] == ["4 packets transmitted, 0 received, 100% packet loss, time 3004ms", ""]
    assert render.ping_summary(_stats(transmitted=3, received=2, final=True))[2].endswith(", 33.3333% packet loss, time 3004ms")


@pytest.mark.parametrize(("us", "shown"), [(0, "0.000"), (41, "0.041"), (999, "0.999"), (1000, "1.00"), (1234, "1.23"),
                                           (9994, "9.99"), (9995, "10.0"), (12345, "12.3"), (99949, "99.9"),
                                           (99950, "100"), (123456, "123")])
def test_reply_time_has_iputils_precision_steps(us: int, shown: str) -> None:
    """ping_common.c: 3 decimals under 1 ms, 2 under 10 ms, 1 under 100 ms, none above (rounded)."""
    from recon.models import PingReply

    reply = PingReply(seq=1, address="198.18.0.10", hostname=None, bytes=64, ttl=64, rtt_ms=us / 1000, rtt_us=us,
                      duplicate=False, truncated=False, timestamp=0.0)
    assert render.ping_reply(reply) == f"64 bytes from 198.18.0.10: icmp_seq=1 ttl=64 time={shown} ms"


def test_headers_for_both_families_with_source_and_interface() -> None:
    v4 = PingStart(host="phone.lab", address="198.18.0.10", family=4, size=56, packet_bytes=84, numeric=False, socket_kind="raw",
                   source="198.18.0.2", interface="eth0")
    assert render.ping_header(v4) == "PING phone.lab (198.18.0.10) from 198.18.0.2 eth0: 56(84) bytes of data."
    v6 = PingStart(host="far6.lab", address="2001:db8:2::1", family=6, size=56, packet_bytes=64, numeric=False, socket_kind="raw")
    assert render.ping_header(v6) == "PING far6.lab(far6.lab (2001:db8:2::1)) 56 data bytes"
    v6n = PingStart(host="2001:db8::10", address="2001:db8::10", family=6, size=16, packet_bytes=24, numeric=True, socket_kind="dgram")
    assert render.ping_header(v6n) == "PING 2001:db8::10(2001:db8::10) 16 data bytes"
