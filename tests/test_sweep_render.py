"""What `recon sweep` prints for a real sweep, in-process: the CLI (cli.run) in a network namespace of its own,
its sockets from the replay transport (answers recorded in captures/), writing to captured streams.
Table, --all, JSON lines, CSV, the summary, the hint when nothing answered, and the exit status."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from recon import render
from recon.engine import sweep
from recon.models import HostResult, SweepResult, SweepStats
from recon.targets import build_targets
from recon.transport import ReplayTransport
from tests.conftest import offline, run_cli
from tests.test_sweep_replay import REC, ROUTER, TARGETS, UP


@pytest.fixture(scope="module")
def result() -> SweepResult:
    return sweep(build_targets(TARGETS), method="icmp", probe="echo", timeout=0.5, retries=0, transport=ReplayTransport(REC))


def shown(targets: list[str], *, show_all: bool = False, fmt: str = "", probe: tuple[str, ...] = ("echo",)) -> tuple[int, str, str]:
    """``recon sweep TARGETS --method icmp -W 0.5 -r 0`` with ``--probe`` each of ``probe``, ``fmt`` and ``--all``."""
    args = [*targets, "--method", "icmp", "-W", "0.5", "-r", "0", *(f"--probe={p}" for p in probe)]
    args += (["-a"] if fmt == "-a/--alive" else [fmt] if fmt else []) + (["--all"] if show_all else [])
    with offline(ReplayTransport(REC)):
        res = run_cli("sweep", *args)
    return res.code, res.stdout, res.stderr


def _order(addresses: list[str]) -> list[tuple[int, ...]]:
    return [tuple(int(x) for x in a.split(".")) for a in addresses]


def test_the_table_lists_the_hosts_that_answered_in_address_order() -> None:
    code, out, err = shown(TARGETS)
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:4] == ["address", "rtt", "ttl", "reason"] and set(lines[1]) <= {"-", " "}
    addresses = [line.split()[0] for line in lines[2:]]
    assert set(addresses) == UP and _order(addresses) == sorted(_order(addresses))
    assert all(" ms " in line and "echo-reply" in line for line in lines[2:])
    assert re.fullmatch(rf"{len(UP)} hosts up of 49 scanned in [0-9.]+ s \(1 unreachable\)\n", err), err


def test_all_adds_the_down_and_the_unreachable_with_the_reporting_router() -> None:
    _, out, _ = shown(TARGETS, show_all=True)
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:]}
    assert len(rows) == 49 and out.splitlines()[0].split()[:2] == ["address", "status"]
    assert rows["198.18.3.7"][0] == "unreachable" and "host-unreachable" in rows["198.18.3.7"] and rows["198.18.3.7"][-1] == ROUTER
    assert rows["198.18.1.0"] == ["down"]
    assert sum(1 for r in rows.values() if r[0] == "up") == len(UP)


def test_json_lines_are_one_object_per_host_with_every_column() -> None:
    _, out, err = shown(TARGETS, fmt="--json", show_all=True)
    objects = [json.loads(line) for line in out.splitlines()]
    assert len(objects) == 49 and all(tuple(o) == render.SWEEP_COLUMNS for o in objects)
    by = {o["address"]: o for o in objects}
    assert by["198.18.3.7"]["status"] == "unreachable" and by["198.18.3.7"]["reporter"] == ROUTER
    assert by["198.18.2.9"]["status"] == "up" and isinstance(by["198.18.2.9"]["rtt_ms"], float) and by["198.18.2.9"]["ttl"] > 0
    assert by["198.18.1.0"] == {**dict.fromkeys(render.SWEEP_COLUMNS), "address": "198.18.1.0", "status": "down"}
    assert err.startswith(f"{len(UP)} hosts up of 49 scanned")


def _print_whole(result: SweepResult, fmt: str, stream: io.StringIO) -> None:
    """``result``'s rows, all of them (--all), through the one sweep renderer in one batch."""
    printer = render.SweepPrinter(fmt, True, stream=stream)
    printer.add(result.hosts)
    printer.finish(result.stats)


def test_csv_carries_the_same_rows_as_json(result: SweepResult) -> None:
    """The same sweep's rows (the renderer, fed one result: two runs' round-trip times differ)."""
    csv_out, js_out = io.StringIO(), io.StringIO()
    _print_whole(result, "--csv", csv_out)
    _print_whole(result, "--json", js_out)
    out, js = csv_out.getvalue(), js_out.getvalue()
    rows = list(csv.DictReader(io.StringIO(out)))
    assert out.splitlines()[0] == ",".join(render.SWEEP_COLUMNS)
    as_text = [{k: "" if v is None else str(v) for k, v in json.loads(line).items()} for line in js.splitlines()]
    assert rows == as_text


def test_alive_prints_the_addresses_that_answered_one_a_line_as_fping_a() -> None:
    code, out, _ = shown(TARGETS, fmt="-a/--alive")
    assert code == 0 and sorted(out.splitlines(), key=lambda a: _order([a])) == sorted(UP, key=lambda a: _order([a]))
    assert len(out.splitlines()) == len(UP)


def test_nothing_up_exits_1_with_a_hint_that_fits_the_probes() -> None:
    """Silent targets: exit 1, the summary, then one hint; with ICMP only it suggests TCP probes, with TCP
    probes other ports; a range every router calls unreachable gets the unreachable hint."""
    silent = ["198.18.1.200/30"]
    code, out, err = shown(silent)
    lines = err.splitlines()
    assert code == 1 and out == "" and lines[0].startswith("0 hosts up of 4 scanned in ")
    assert len(lines) == 2 and lines[1].startswith("hint: the hosts may drop ICMP; try TCP probes")
    _, _, err = shown(silent, probe=("syn:443",))
    assert err.splitlines()[1].startswith("hint: nothing answered these probes; try other ports")
    code, _, err = shown(["198.18.3.7"])
    lines = err.splitlines()
    assert code == 1 and len(lines) == 2 and re.fullmatch(r"0 hosts up of 1 scanned in [0-9.]+ s \(1 unreachable\)", lines[0])
    assert lines[1] == "hint: a router reported every target unreachable; the range is not reachable from here"


def test_the_streamed_table_sorts_ipv6_rows_too_ipv4_first_scope_as_tiebreak() -> None:
    """SweepPrinter's table: rows as they came (IPv6 and scoped ones out of order, mixed with IPv4) are printed
    IPv4 then IPv6, each by number, a scoped address after the unscoped ones and by interface (it kept IPv6 rows
    in arrival order)."""
    came = [["2001:db8::10", "198.18.0.10"], ["fe80::1%eth1", "2001:db8::2", "198.18.0.2"], ["fe80::1%eth0", "2001:db8::1:0"]]
    out = io.StringIO()
    printer = render.SweepPrinter("", False, stream=out)
    for batch in came:
        printer.add([HostResult(a, "up", 0.5, 64, "echo-reply", reason="echo-reply") for a in batch])
    printer.finish(SweepStats(targets=7))
    rows = [line.split()[0] for line in out.getvalue().splitlines()[2:]]
    assert rows == ["198.18.0.2", "198.18.0.10", "2001:db8::2", "2001:db8::10", "2001:db8::1:0", "fe80::1%eth0", "fe80::1%eth1"]


@pytest.mark.parametrize("fmt", ["", "--json", "--csv", "--grep", "-a/--alive"])
def test_a_finished_result_prints_as_the_same_rows_streamed(result: SweepResult, fmt: str) -> None:
    """The printer fed a finished result's rows at once writes the same text as fed them in batches as they
    were decided (up first, then the rest), for every format."""
    whole, streamed = io.StringIO(), io.StringIO()
    _print_whole(result, fmt, whole)
    printer = render.SweepPrinter(fmt, True, stream=streamed)
    printer.add(result.up)
    printer.add(h for h in result.hosts if h.status != "up")
    printer.finish(result.stats)
    if fmt:
        assert sorted(whole.getvalue().splitlines()) == sorted(streamed.getvalue().splitlines())
    else:
        assert whole.getvalue() == streamed.getvalue()
