"""The one output sanitiser: no string of outside origin (packets, names, files) reaches the
terminal with a control character, in any output mode (table, CSV, JSON lines)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from recon import render
from recon.models import DeviceState, Event, HostResult, PingReply, SweepResult, SweepStats

# ESC sequences (clear screen, OSC title), C1 CSI/OSC/ST, DEL, BEL, a bidi override and an isolate
HOSTILE = "ev\x1b[2J\x1b]0;pwned\x07il\x9b31m\x9d0;t\x9c\x7f\u202eexe.\u2066x\u2069\u2028.lab"
UNSAFE = {*map(chr, range(0x20)), "\x7f", *map(chr, range(0x80, 0xA0)), *map(chr, range(0x202A, 0x202F)),
          *map(chr, range(0x2066, 0x206A)), "\u2028", "\u2029", "\u200e", "\u200f", "\u061c"}


def raw_controls(text: str) -> set[str]:
    """The unsafe characters in ``text``, newlines between lines excepted."""
    return {c for line in text.split("\n") for c in line if c in UNSAFE}


def hostile_sweep() -> SweepResult:
    hosts = (HostResult("198.18.0.10", "up", 0.3, 64, "echo-reply", "3c:22:fb:12:34:56", HOSTILE, HOSTILE),
             HostResult("198.18.0.11", "down"))
    return SweepResult(hosts, SweepStats(targets=2))


def printed(result: SweepResult, fmt: str, show_all: bool = False) -> str:
    """What the one sweep renderer (render.SweepPrinter) writes for ``result``'s rows."""
    buf = io.StringIO()
    printer = render.SweepPrinter(fmt, show_all, stream=buf)
    printer.add(result.hosts)
    printer.finish(result.stats)
    return buf.getvalue()


@pytest.mark.parametrize("show_all", [False, True])
def test_sweep_table_and_csv_escape_every_control(show_all: bool) -> None:
    """`sweep -R` with a hostile reverse name (and vendor): table and CSV show escapes, never raw controls."""
    result = hostile_sweep()
    text = printed(result, "", show_all)
    assert raw_controls(text) == set()
    assert "\\x1b[2J" in text and "\\x9b31m" in text and "\\u202e" in text
    buf = io.StringIO(printed(result, "--csv", show_all))
    assert raw_controls(buf.getvalue()) == set()
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert rows[0]["hostname"] == render.safe(HOSTILE)


def test_sweep_table_past_tabulate_size_escapes_too() -> None:
    """The linear-time table used for very large sweeps sanitises the same way."""
    host = hostile_sweep().hosts[0]
    result = SweepResult((host,) * (render._TABULATE_MAX + 1), SweepStats(targets=render._TABULATE_MAX + 1))
    text = printed(result, "")
    assert raw_controls(text) == set() and len(text.splitlines()) == render._TABULATE_MAX + 3


def test_json_lines_escape_del_c1_and_bidi_and_stay_valid_json() -> None:
    """--json: C0 was escaped by json already; DEL, C1 and bidi controls are \\uXXXX now; the value round-trips."""
    for line in printed(hostile_sweep(), "--json", True).splitlines():
        assert raw_controls(line) == set()
        obj = json.loads(line)
        if obj["status"] == "up":
            assert obj["hostname"] == HOSTILE and obj["vendor"] == HOSTILE
    reply = PingReply(1, "198.18.0.10", HOSTILE, 64, 64, 0.5, 500, False, False, 1.0)
    for text in (render.ping_json(reply), render.json_line({"hostname": HOSTILE})):
        assert raw_controls(text) == set() and HOSTILE in json.loads(text).values()


def test_ping_lines_escape_a_hostile_reverse_name() -> None:
    reply = PingReply(1, "198.18.0.10", HOSTILE, 64, 64, 0.5, 500, False, False, 1.0)
    assert raw_controls(render.ping_reply(reply)) == set()


def test_watch_output_escapes_every_field_from_the_wire_or_the_state_file() -> None:
    """Inventory table, event lines and JSON: a hostile first_seen, vendor or hostname is escaped everywhere."""
    dev = DeviceState("198.18.0.10", "3c:22:fb:12:34:56", HOSTILE, HOSTILE, HOSTILE, HOSTILE, up=True)
    event = Event("MOVED", HOSTILE, "198.18.0.10", HOSTILE, HOSTILE, HOSTILE, HOSTILE)
    texts = [render.watch_inventory([dev], {dev.address}), render.watch_event(event), render.watch_event_json(event),
             *render.watch_inventory_json([dev], HOSTILE)]
    for text in texts:
        assert raw_controls(text) == set(), text


def test_safe_leaves_ordinary_text_alone() -> None:
    for text in ("phone.lab", "Samsung Electronics Co.,Ltd", "café.lab", "日本.lab", "a b"):
        assert render.safe(text) == text
        assert json.loads(render.json_line({"x": text}))["x"] == text


# --- end to end: a hostile reverse name in the lab ------------------------------------------------------

EVIL_NAME = "ev\x1b[2J\x1b]0;pwned\x07il\u009b31m\u202e.lab"
FAR = "198.18.2.9"  # answers (the far range is all up) and has no name of its own in the lab


def test_sweep_resolve_prints_a_hostile_reverse_name_escaped(lab) -> None:
    """`sweep -R` (table, --csv, --json) and `watch --once` against a host whose reverse name holds ESC, C1 and a
    bidi override: every output mode shows escapes or \\u escapes, never the raw characters."""
    from pathlib import Path

    hosts = Path("/etc/netns") / lab.ns / "hosts"
    before = hosts.read_bytes()
    try:
        hosts.write_bytes(f"{FAR} {EVIL_NAME}\n".encode() + before)
        for extra in ((), ("--csv",), ("--json",)):
            res = lab.recon("sweep", FAR, "-R", *extra)
            assert res.returncode == 0, res.stderr
            assert raw_controls(res.stdout + res.stderr) == set(), (extra, res.stdout)
            if extra == ("--json",):
                assert json.loads(res.stdout)["hostname"] == EVIL_NAME
            else:
                assert render.safe(EVIL_NAME) in res.stdout
        res = lab.recon("watch", FAR, "--once")
        assert res.returncode == 0, res.stderr
        assert raw_controls(res.stdout + res.stderr) == set() and render.safe(EVIL_NAME) in res.stdout
    finally:
        hosts.write_bytes(before)
