"""Streamed sweeps in the namespace lab: hosts are yielded (and printed) as soon as they are decided, and
Ctrl-C prints what was decided so far, exits 130 and leaves a valid pcap."""

from __future__ import annotations

import ipaddress
import json
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import recon
from recon.lab import netns
from recon.render import SWEEP_COLUMNS
from recon.targets import build_targets, ip_to_int

DENSE16 = "198.19.0.0/16"


def _truth(lab, name: str) -> set[str]:
    r = lab.info.range(name)
    return {str(a) for a in ipaddress.ip_network(r.cidr)} if r.up is None else set(r.up)


def _sweep(lab, *args: str) -> subprocess.Popen[str]:
    """``recon sweep ARGS`` in the scanner namespace; stdout is a pipe, stderr a file (see ``_finish``)."""
    err = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by _finish, with the process
    proc = lab.popen([sys.executable, "-m", "recon", "sweep", *args], stdout=subprocess.PIPE, stderr=err)
    proc.err_file = err  # type: ignore[attr-defined]  # kept with the process for _finish
    return proc


def _finish(proc: subprocess.Popen[str], timeout: float = 30) -> tuple[str, str]:
    """The rest of stdout (read through the same buffered reader that readline() used, so nothing is lost) and stderr."""
    try:
        out = proc.stdout.read()  # type: ignore[union-attr]  # stdout=PIPE
        proc.wait(timeout=timeout)
    finally:
        proc.kill()
    err = proc.err_file  # type: ignore[attr-defined]  # set by _sweep
    err.seek(0)
    text = err.read()
    err.close()
    return out, text


def _pcap_records(path: Path) -> int:
    """The number of records in a classic pcap file; fails unless the last record ends exactly at the end of the file."""
    data = path.read_bytes()
    assert len(data) >= 24 and data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"), "not a pcap file"
    at, count = 24, 0
    while at < len(data):
        assert at + 16 <= len(data), f"a torn record header at byte {at}"
        caplen = struct.unpack_from("<I", data, at + 8)[0]
        at += 16 + caplen
        assert at <= len(data), f"a record cut short: it needs {at} bytes, the file has {len(data)}"
        count += 1
    return count


def _up_in_summary(err: str) -> int:
    found = re.findall(r"^(\d+) hosts? up of 65536 scanned in", err, re.M)
    assert len(found) == 1, err
    return int(found[0])


def test_json_prints_hosts_while_the_sweep_still_runs(lab) -> None:
    """--json writes each host as soon as it answers: the first line comes long before the sweep ends."""
    t0 = time.monotonic()
    proc = _sweep(lab, "198.18.2.0/24", "--json", "--probe", "echo", "--rate", "200", "-W", "0.5")  # ~1.8 s of sending
    first = proc.stdout.readline()  # type: ignore[union-attr]  # stdout=PIPE
    at_first = time.monotonic() - t0
    out, err = _finish(proc)
    total = time.monotonic() - t0
    assert json.loads(first)["status"] == "up"
    assert proc.returncode == 0, err
    rows = [json.loads(first)] + [json.loads(line) for line in out.splitlines()]
    assert {r["address"] for r in rows} == _truth(lab, "dense24")
    assert at_first < total - 1.2, f"the first host came at {at_first:.2f} s of {total:.2f} s: not streamed"


def test_resolve_json_prints_each_named_host_while_the_sweep_still_waits(lab) -> None:
    """-R --json: each host is printed once its name is known (here from the scanner's hosts file), not after
    every name of the sweep: the named LAN hosts come long before the 2 s wait for the silent ends; the rows
    keep the JSON shape, named or not."""
    t0 = time.monotonic()
    proc = _sweep(lab, "198.18.0.10-14", "198.18.1.0/24", "-R", "--json", "--probe", "echo", "-r", "0", "-W", "2")
    first = proc.stdout.readline()  # type: ignore[union-attr]  # stdout=PIPE
    at_first = time.monotonic() - t0
    out, err = _finish(proc)
    total = time.monotonic() - t0
    assert proc.returncode == 0, err
    rows = {r["address"]: r for r in map(json.loads, [first, *out.splitlines()])}
    assert set(rows) == {f"198.18.0.{i}" for i in range(10, 15)} | _truth(lab, "sparse24")
    assert {a: rows[a]["hostname"] for a in rows if a.startswith("198.18.0.")} == {h.ipv4: h.hostname for h in lab.info.hosts}
    assert all(tuple(r) == SWEEP_COLUMNS for r in rows.values())
    assert at_first < total - 1.5, f"the first host came at {at_first:.2f} s of {total:.2f} s: held for the names"


_SILENT_DNS = """
import socket, sys, time
from recon.engine import _Names
from recon.models import HostResult
dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
dns.bind(("127.0.0.1", 53))  # the namespace's resolver (resolv.conf): it hears the PTR query and never answers
names = _Names(time_limit=0.4)
t0 = time.monotonic()
print(0.0, [(h.address, h.hostname) for h in names.add([HostResult("198.18.1.17", "up"), HostResult("198.18.0.10", "up"),
                                                        HostResult("198.18.1.1", "down")])], flush=True)
for batch in names.rest():
    print(round(time.monotonic() - t0, 2), [(h.address, h.hostname) for h in batch], flush=True)
"""


def test_resolve_hands_a_row_back_when_its_lookup_time_is_up(lab) -> None:
    """A lookup that hangs (a resolver that never answers, in the lab's scanner namespace) does not hold its row
    past the time limit, and does not hold the others: the named host comes at once, the down one passes
    untouched, the hanging one comes unnamed when its 0.4 s are up (the resolver's own timeout is 1 s)."""
    res = lab.run([sys.executable, "-c", _SILENT_DNS], timeout=30)
    assert res.returncode == 0, res.stderr
    lines = [line.split(" ", 1) for line in res.stdout.splitlines()]
    assert lines[0][1] == "[('198.18.1.1', None)]"
    assert lines[1][1] == "[('198.18.0.10', 'phone.lab')]" and float(lines[1][0]) < 0.3
    assert lines[2][1] == "[('198.18.1.17', None)]" and 0.35 <= float(lines[2][0]) < 0.9 and len(lines) == 3


def test_all_lists_up_hosts_first_then_the_rest_in_address_order(lab) -> None:
    """--all --json: the hosts that are up come as they answer; down rows follow the wait, in address order."""
    proc = _sweep(lab, "198.18.1.0/24", "--json", "--all", "--probe", "echo", "-W", "0.3", "--seed", "7")
    out, err = _finish(proc)
    assert proc.returncode == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    statuses = [r["status"] for r in rows]
    up = _truth(lab, "sparse24")
    assert statuses == ["up"] * len(up) + ["down"] * (256 - len(up))
    assert {r["address"] for r in rows[:len(up)]} == up
    down = [ip_to_int(r["address"]) for r in rows[len(up):]]
    assert down == sorted(down) and len(set(down)) == len(down)


def test_library_sweep_iter_yields_hosts_then_stats(lab) -> None:
    """recon.sweep_iter yields HostResults as they are decided; stop() ends it early with what was decided."""
    targets = build_targets(["198.18.2.0/28", "198.18.1.0/28"])
    with netns(lab.ns):
        with recon.sweep_iter(targets, timeout=0.3, retries=0, down=False) as stream:
            hosts = list(stream)
        whole = recon.sweep(targets, timeout=0.3, retries=0)
        with recon.sweep_iter(build_targets([DENSE16]), rate=5000, timeout=1, retries=0) as big:
            first = next(iter(big))
            big.stop()
            rest = list(big)
    assert {h.address for h in hosts} == {h.address for h in whole.up} and all(h.status == "up" for h in hosts)
    assert stream.stats.targets == 32 and not stream.stats.interrupted
    assert [h.address for h in whole.hosts] == sorted((h.address for h in whole.hosts), key=ip_to_int)
    assert len(whole.hosts) == 32
    assert first.status == "up" and all(h.status == "up" for h in rest)
    assert big.stats.interrupted and big.stats.sent < 65536 and 1 + len(rest) < 65536


@pytest.mark.parametrize("fmt", ["--json", "--csv"])
def test_ctrl_c_keeps_the_streamed_lines_whole_and_exits_130(lab, fmt: str) -> None:
    """SIGINT mid-sweep: the lines already printed are whole rows, a line says it was interrupted, exit 130."""
    proc = _sweep(lab, DENSE16, fmt, "--probe", "echo", "--rate", "3000", "-W", "1")  # ~22 s if left alone
    first = proc.stdout.readline()  # type: ignore[union-attr]  # the readiness signal: a row (CSV: the header)
    if fmt == "--csv":
        first = proc.stdout.readline()  # type: ignore[union-attr]
    assert first.endswith("\n")
    proc.send_signal(signal.SIGINT)
    out, err = _finish(proc, timeout=15)
    assert proc.returncode == 130, err
    assert "sweep interrupted" in err
    lines = (first + out).splitlines()
    if fmt == "--json":
        rows = [json.loads(line) for line in lines]
        addresses = [r["address"] for r in rows]
        assert all(r["status"] == "up" for r in rows)
    else:
        addresses = [line.split(",")[0] for line in lines]
        assert all(line.count(",") == 9 and ",up," in line for line in lines)
    assert 1 <= len(addresses) < 65536 and len(set(addresses)) == len(addresses)
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network(DENSE16) for a in addresses)
    assert _up_in_summary(err) == len(addresses)


def test_ctrl_c_prints_the_table_so_far_and_the_pcap_stays_valid(lab, tmp_path: Path) -> None:
    """SIGINT mid-sweep with the table view and -w: the hosts decided so far, sorted; a line saying it was
    interrupted; exit 130; the pcap holds only whole records."""
    pcap = tmp_path / "cut.pcap"
    proc = _sweep(lab, DENSE16, "--probe", "echo", "--rate", "3000", "-W", "1", "-w", str(pcap))
    deadline = time.monotonic() + 20
    # readiness: probes and replies are being written (a few hundred records), so some hosts are decided
    while (not pcap.exists() or pcap.stat().st_size < 24 + 200 * 52) and time.monotonic() < deadline:
        assert proc.poll() is None, _finish(proc)[1]
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = _finish(proc, timeout=15)
    assert proc.returncode == 130, err
    assert "sweep interrupted" in err
    lines = out.splitlines()
    assert lines[0].split() == ["address", "rtt", "ttl", "reason", "mac", "vendor", "hostname"]
    addresses = [line.split()[0] for line in lines[2:]]
    assert addresses and addresses == sorted(addresses, key=ip_to_int)
    assert _up_in_summary(err) == len(addresses)
    records = _pcap_records(pcap)
    assert len(addresses) < records < 2 * 65536
