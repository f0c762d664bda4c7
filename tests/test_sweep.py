"""`recon sweep` on real packets in the namespace lab: truth, ARP, unreachables, engines, loss, shards, outputs."""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import select
import subprocess
import time

import pytest

from recon.engine import Prober, parse_shard, probe_template, sweep
from recon.errors import InvalidOption
from recon.lab import netns
from recon.targets import build_targets, ip_to_int
from tests.conftest import NOBODY, need_tool

SCHEMA = ("address", "status", "rtt_ms", "ttl", "reply", "mac", "vendor", "hostname")


def _cidr(cidr: str) -> set[str]:
    return {str(a) for a in ipaddress.ip_network(cidr)}


def _truth(lab, *names: str) -> set[str]:
    up: set[str] = set()
    for name in names:
        r = lab.info.range(name)
        up |= _cidr(r.cidr) if r.up is None else set(r.up)
    return up


def _json(res: subprocess.CompletedProcess[str]) -> list[dict]:
    return [json.loads(line) for line in res.stdout.splitlines() if line.strip()]


def _up(rows: list[dict]) -> set[str]:
    return {r["address"] for r in rows if r["status"] == "up"}


def _icmp_out(lab) -> int:
    """The scanner namespace's ICMP OutMsgs counter (per-namespace /proc/net/snmp)."""
    text = lab.run(["cat", "/proc/net/snmp"]).stdout.splitlines()
    head, vals = [line.split() for line in text if line.startswith("Icmp:")][:2]
    return int(vals[head.index("OutMsgs")])


def test_dense_and_sparse_ranges_match_the_truth_exactly(lab) -> None:
    """A dense /24, a sparse /24 and a sparse /20 (4096 addresses): exactly the lab's live set, nothing extra."""
    res = lab.recon("sweep", "198.18.2.0/24", "198.18.1.0/24", "198.18.16.0/20", "--json")
    assert res.returncode == 0, res.stderr
    rows = _json(res)
    assert _up(rows) == _truth(lab, "dense24", "sparse24", "sparse4k")
    assert len(rows) == len(_up(rows)), "without --all only up hosts are listed"
    assert all(r["reply"] == "echo-reply" and r["ttl"] == 63 and r["rtt_ms"] >= 0 for r in rows)
    assert f"{256 + 16 + 64} hosts up of {256 + 256 + 4096} scanned in" in res.stderr


def test_arp_on_the_lan_gives_macs_and_vendors(lab) -> None:
    """On-link targets go by ARP: every LAN host with its MAC and manuf vendor, the router, and our own address."""
    res = lab.recon("sweep", "198.18.0.0/24", "--json")
    assert res.returncode == 0, res.stderr
    rows = {r["address"]: r for r in _json(res)}
    expected = {h.ipv4 for h in lab.info.hosts} | {lab.info.router_ipv4, lab.info.scanner_ipv4}
    assert set(rows) == expected
    for h in lab.info.hosts:
        row = rows[h.ipv4]
        assert row["reply"] == "arp-reply" and row["mac"] == h.mac
        assert row["vendor"] and row["vendor"].startswith(h.vendor), (row, h)
    assert rows[lab.info.router_ipv4]["mac"] == lab.info.router_mac and "Cisco" in rows[lab.info.router_ipv4]["vendor"]
    assert rows[lab.info.scanner_ipv4]["mac"] == lab.info.scanner_mac
    assert rows[lab.info.scanner_ipv4]["reply"] == "self" and rows[lab.info.scanner_ipv4]["reason"] == "self"


def test_icmp_method_on_the_lan_agrees_with_arp(lab) -> None:
    """--method icmp pings the LAN instead (no MACs); the same hosts are up."""
    res = lab.recon("sweep", "198.18.0.0/28", "--method", "icmp", "--json")
    rows = _json(res)
    assert _up(rows) == {h.ipv4 for h in lab.info.hosts} | {lab.info.router_ipv4, lab.info.scanner_ipv4}
    assert all(r["mac"] is None and r["reply"] == "echo-reply" for r in rows)


def test_unreachable_range_is_reported_with_the_router(lab) -> None:
    """The router's host-unreachable answers make an address 'unreachable' (listed with --all), never up; exit 1."""
    res = lab.recon("sweep", "198.18.3.0/24", "--all", "--json", "-r", "0")
    assert res.returncode == 1, res.stderr
    rows = _json(res)
    assert [r["address"] for r in rows] == [f"198.18.3.{i}" for i in range(256)]
    assert all(r["status"] == "unreachable" and r["reporter"] == lab.info.router_ipv4 for r in rows), rows
    assert {r["reply"] for r in rows} == {"host-unreachable"}
    assert "0 hosts up of 256" in res.stderr and "256 unreachable" in res.stderr
    default = lab.recon("sweep", "198.18.3.1-2")
    assert default.returncode == 1 and default.stdout.strip() == ""


def test_scapy_and_raw_engines_agree(lab) -> None:
    """The reference engine (Scapy sr()/srp()) and the raw engine give every target the same status."""
    args = ("sweep", "198.18.1.0/25", "198.18.0.8/29", "198.18.3.1-2", "--all", "--json")
    raw = {r["address"]: (r["status"], r["mac"]) for r in _json(lab.recon(*args))}
    ref_res = lab.recon(*args, "--engine", "scapy", timeout=120)
    assert ref_res.returncode == 0, ref_res.stderr
    ref = {r["address"]: (r["status"], r["mac"]) for r in _json(ref_res)}
    assert raw == ref
    assert sum(s == "up" for s, _ in raw.values()) == len(_truth(lab, "sparse24") & _cidr("198.18.1.0/25")) + 5
    assert sum(s == "unreachable" for s, _ in raw.values()) == 2


def test_retries_find_every_host_under_loss(lab) -> None:
    """With 10 % loss toward the scanner and --retries 3, every live host of a few hundred is still found."""
    truth = _truth(lab, "sparse24") | _cidr("198.18.2.0/25")
    with lab.impaired(loss=10):
        res = lab.recon("sweep", "198.18.1.0/24", "198.18.2.0/25", "--retries", "3", "--json")
        # one probe per target (the default sends four, which already rides out this loss in one pass)
        lossy = lab.recon("sweep", "198.18.2.0/25", "--probe", "echo", "--retries", "0", "-W", "0.3", "--json")
    assert _up(_json(res)) == truth, res.stderr
    assert len(_up(_json(lossy))) < 128, "the loss is real: without retries some replies are lost"


def test_shards_partition_the_targets(lab) -> None:
    """--shard 1/3, 2/3, 3/3 probe disjoint sets whose union is every target, and find every live host."""
    seen: list[set[str]] = []
    up: set[str] = set()
    for k in (1, 2, 3):
        rows = _json(lab.recon("sweep", "198.18.1.0/24", "--shard", f"{k}/3", "--seed", "7", "--all", "--json", "-W", "0.3"))
        seen.append({r["address"] for r in rows})
        up |= _up(rows)
    assert set().union(*seen) == _cidr("198.18.1.0/24")
    assert sum(map(len, seen)) == 256
    assert up == _truth(lab, "sparse24")


def test_json_and_csv_schema(lab) -> None:
    """JSON lines and CSV carry the JSON fields (the README shows them) with the right types; CSV has a header row."""
    rows = _json(lab.recon("sweep", "198.18.0.10", "198.18.2.5", "198.18.1.0", "--all", "--json", "-W", "0.3"))
    # streamed: the hosts that are up come as they answer (ARP and ICMP race), the down one after the wait
    assert [r["status"] for r in rows] == ["up", "up", "down"]
    rows.sort(key=lambda r: ip_to_int(r["address"]))
    assert [r["address"] for r in rows] == ["198.18.0.10", "198.18.1.0", "198.18.2.5"]
    for r in rows:
        assert set(SCHEMA) <= set(r)
        assert r["status"] in {"up", "down", "unreachable"}
    phone, dead, far = rows
    assert isinstance(phone["rtt_ms"], float) and phone["mac"] == "3c:22:fb:12:34:56" and phone["ttl"] is None
    assert dead["status"] == "down" and dead["rtt_ms"] is None and dead["reply"] is None
    assert far["ttl"] == 63 and far["reply"] == "echo-reply"
    res = lab.recon("sweep", "198.18.0.10", "198.18.2.5", "198.18.1.0", "--all", "--csv", "-W", "0.3")
    table = sorted(csv.DictReader(io.StringIO(res.stdout)), key=lambda t: ip_to_int(t["address"]))
    assert tuple(res.stdout.splitlines()[0].split(","))[: len(SCHEMA)] == SCHEMA
    assert [t["address"] for t in table] == [r["address"] for r in rows]
    assert table[0]["vendor"].startswith("Apple") and table[1]["rtt_ms"] == ""


def test_default_table_and_summary(lab) -> None:
    """The default output is a table of up hosts (address, rtt, ttl, reason, mac, vendor, hostname); the summary goes to stderr."""
    res = lab.recon("sweep", "198.18.0.10-12")
    assert res.returncode == 0
    header = res.stdout.splitlines()[0].split()
    assert header == ["address", "rtt", "ttl", "reason", "mac", "vendor", "hostname"]
    assert "3c:22:fb:12:34:56" in res.stdout and "Apple" in res.stdout and "arp-reply" in res.stdout
    assert res.stderr.startswith("3 hosts up of 3 scanned in ") and "hosts up" not in res.stdout
    assert "\r" not in res.stderr, "no progress bar when stderr is not a TTY"


def test_resolve_names_from_the_scanner_hosts_file(lab) -> None:
    """-R reverse-resolves the hosts that are up (here from the scanner namespace's /etc/hosts)."""
    rows = _json(lab.recon("sweep", "198.18.0.10-12", "198.18.2.1", "-R", "--json"))
    names = {r["address"]: r["hostname"] for r in rows}
    assert names["198.18.0.10"] == "phone.lab" and names["198.18.0.12"] == "printer.lab"
    assert names["198.18.2.1"] == "far.lab"
    unnamed = _json(lab.recon("sweep", "198.18.2.7", "-R", "--json"))
    assert unnamed[0]["status"] == "up" and unnamed[0]["hostname"] is None


def test_timestamp_probe(lab) -> None:
    """--probe timestamp sends ICMP type 13; Linux hosts answer with timestamp replies."""
    rows = _json(lab.recon("sweep", "198.18.2.0/28", "--probe", "timestamp", "--json"))
    assert len(rows) == 16 and {r["reply"] for r in rows} == {"timestamp-reply"}


def test_pcap_holds_every_probe_and_reply(lab, tmp_path) -> None:
    """--pcap records each probe and reply; tshark reads it (Ethernet when ARP is involved, raw IP otherwise)."""
    need_tool("tshark")
    mixed = tmp_path / "mixed.pcap"
    # ICMP echo only: the default probe set (echo, SYN, ACK, timestamp) is test_pcap_holds_tcp_probes_and_answers's
    res = lab.recon("sweep", "198.18.0.8/29", "198.18.2.0/29", "198.18.3.1", "--pcap", str(mixed), "-W", "0.3", "-r", "0",
                    "--probe", "echo")
    assert res.returncode == 0, res.stderr
    fields = subprocess.run(["tshark", "-r", str(mixed), "-T", "fields", "-e", "frame.protocols", "-e", "icmp.type",
                             "-e", "arp.opcode"], capture_output=True, text=True)
    assert fields.returncode == 0, fields.stderr
    lines = [line.split("\t") for line in fields.stdout.splitlines()]
    assert all(line[0].startswith("eth:") for line in lines)
    icmp_types = [line[1].split(",")[0] for line in lines if line[1]]  # an error also shows the quoted probe's type
    arp_ops = [line[2] for line in lines if line[2]]
    assert icmp_types.count("8") == 9  # 8 routed probes + 198.18.3.1
    assert icmp_types.count("0") == 8 and icmp_types.count("3") == 1
    assert arp_ops.count("1") == 8 and arp_ops.count("2") >= 5  # .8-.15 holds 5 hosts (+ maybe the kernel's router lookup)
    routed = tmp_path / "routed.pcap"
    lab.recon("sweep", "198.18.2.0/30", "--pcap", str(routed), "--probe", "echo")
    out = subprocess.run(["tshark", "-r", str(routed)], capture_output=True, text=True).stdout
    assert out.count("Echo (ping) request") == 4 and out.count("Echo (ping) reply") == 4


def test_pcap_with_the_scapy_engine(lab, tmp_path) -> None:
    """--engine scapy records its probes and replies too (it used to leave an empty capture)."""
    need_tool("tshark")
    routed = tmp_path / "scapy.pcap"
    res = lab.recon("sweep", "198.18.2.0/30", "198.18.1.0/30", "--engine", "scapy", "--pcap", str(routed), "-r", "0")
    assert res.returncode == 0, res.stderr
    out = subprocess.run(["tshark", "-r", str(routed)], capture_output=True, text=True).stdout
    up = len(_truth(lab, "sparse24") & _cidr("198.18.1.0/30"))
    assert out.count("Echo (ping) request") == 8 and out.count("Echo (ping) reply") == 4 + up


def test_bad_input_exits_2_before_sending(lab) -> None:
    """Bad targets and options exit 2 with one line naming the problem, and send no ICMP."""
    before = _icmp_out(lab)
    cases = [
        (["198.18.1.300"], "198.18.1.300"),
        (["198.18.1.0/24", "--shard", "4/3"], "--shard"),
        (["198.18.1.0/24", "--probe", "info"], "--probe"),
        (["198.18.1.0/24", "--method", "tcp"], "--method"),
        (["198.18.1.0/24", "--engine", "fast"], "--engine"),
        (["198.18.1.0/24", "--rate", "0"], "--rate"),
        (["198.18.1.0/24", "--timeout", "-1"], "--timeout"),
        (["198.18.1.0/24", "--source", "10.0.0"], "--source"),
        (["198.18.1.0/24", "--method", "arp"], "not on a local segment"),
        (["198.18.1.0/24", "--json", "--csv"], "--json"),
        (["198.18.0.0/8"], "--yes"),
        ([], "no targets"),
    ]
    for args, needle in cases:
        res = lab.recon("sweep", *args)
        assert res.returncode == 2, (args, res.stderr)
        assert needle in res.stderr and len(res.stderr.strip().splitlines()) == 1, (args, res.stderr)
    assert _icmp_out(lab) == before


def test_without_privileges_exit_3_with_advice_and_nothing_sent(lab) -> None:
    """As nobody without capabilities: exit 3, one line of advice, and no packet leaves."""
    import sys

    before = _icmp_out(lab)
    res = lab.run([*NOBODY, sys.executable, "-m", "recon", "sweep", "198.18.2.0/28"])
    assert res.returncode == 3, res.stdout + res.stderr
    assert "CAP_NET_RAW" in res.stderr and "sudo" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and res.stdout == ""
    assert _icmp_out(lab) == before


# --- library API (in-process, inside the scanner namespace) -------------------------------------


def test_library_sweep_returns_typed_results_and_prints_nothing(lab, capsys) -> None:
    """recon.engine.sweep returns every target with a status, and counters; it prints nothing."""
    with netns(lab.ns):
        result = sweep(build_targets(["198.18.2.0/28", "198.18.1.0/28"]), timeout=0.3, retries=1)
    assert {h.address for h in result.up} == _cidr("198.18.2.0/28") | (_truth(lab, "sparse24") & _cidr("198.18.1.0/28"))
    assert len(result.hosts) == 32 and {h.status for h in result.hosts} <= {"up", "down"}
    s = result.stats
    assert s.targets == 32 and s.sent == 32 + s.retries and s.retries == 32 - len(result.up)
    assert s.received >= len(result.up) and s.duplicates == 0 and s.duration_s > 0 and s.pps > 0
    assert capsys.readouterr() == ("", "")


def test_prober_reuses_sockets_and_counts_late_replies(lab) -> None:
    """A Prober sweeps repeatedly; replies that arrive after a sweep ended count as late in the next, never as hosts."""
    with lab.impaired(delay_ms=80), netns(lab.ns), Prober() as prober:
        first = prober.sweep(build_targets(["198.18.5.0/29"]), timeout=0, retries=0)
        # the first sweep's replies (80 ms late) must reach the socket before the second sweep starts; only
        # reading that socket would show they have, and that read is what the second sweep is tested on
        time.sleep(0.4)
        second = prober.sweep(build_targets(["198.18.2.0/29"]), timeout=0.5, retries=0)
        third = prober.sweep(build_targets(["198.18.5.0/29"]), timeout=1.0, retries=0)
    assert first.up == () and first.stats.sent == 8
    assert {h.address for h in second.up} == _cidr("198.18.2.0/29")
    assert second.stats.late == 8 and second.stats.duplicates == 0
    assert len(third.up) == 8 and all(h.rtt_ms >= 60 for h in third.up)


def test_other_processes_icmp_is_ignored(lab) -> None:
    """A ping(8) running beside the sweep is neither counted as a host nor as a duplicate."""
    need_tool("ping")
    pinger = lab.popen(["ping", "-q", "-i", "0.002", "-c", "400", "198.18.2.200"], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL)
    try:
        assert pinger.stdout is not None
        ready, _, _ = select.select([pinger.stdout], [], [], 10)  # ping prints its "PING ..." line, then sends
        assert ready and pinger.stdout.readline().startswith("PING"), "ping did not start"
        with netns(lab.ns):
            result = sweep(build_targets(["198.18.1.0/24"]), timeout=0.3, retries=0)
    finally:
        pinger.communicate(timeout=10)
    assert {h.address for h in result.up} == _truth(lab, "sparse24")
    assert result.stats.ignored > 0 and result.stats.duplicates == 0


def test_rate_limits_the_probe_rate(lab) -> None:
    """--rate paces the probes (token bucket): 40 probes at 200 pps take about 0.2 s, not milliseconds."""
    with netns(lab.ns):
        result = sweep(build_targets(["198.18.2.0/27", "198.18.2.32/29"]), rate=200, timeout=0, retries=0)
    assert len(result.up) <= 40 and result.stats.sent == 40
    assert result.stats.duration_s >= 0.15


def test_probe_template_is_scapy_icmp() -> None:
    """The hot loop's template is Scapy's ICMP echo with id = seq = 0; its partial sum gives the right checksum."""
    from scapy.layers.inet import ICMP

    from recon.packets import inet_checksum

    raw, partial = probe_template("echo")
    assert raw[:8] == bytes(ICMP(type=8, id=0, seq=0, chksum=0)) and len(raw) == 16
    probe = bytearray(raw)
    probe[4:8] = (0x1234).to_bytes(2, "big") + (0xFFFE).to_bytes(2, "big")
    probe[8] = 2
    from recon.probes import csum_fold

    probe[2:4] = csum_fold(partial + 0x1234 + 0xFFFE + (2 << 8)).to_bytes(2, "big")
    assert inet_checksum(bytes(probe)) == 0
    assert bytes(ICMP(bytes(probe))) == bytes(probe) and ICMP(bytes(probe)).chksum == ICMP(bytes(ICMP(bytes(probe)))).chksum


def test_shard_parsing() -> None:
    """--shard takes I/N with 1 <= I <= N."""
    assert parse_shard("2/5") == (2, 5)
    for bad in ("0/3", "4/3", "1", "a/b", "1/0", "-1/2"):
        with pytest.raises(InvalidOption):
            parse_shard(bad)


def test_progress_bar_only_on_a_tty_and_only_for_long_sweeps(lab) -> None:
    """With stderr on a terminal, a sweep over 1 s draws a progress bar there (stdout stays clean); a short one does not."""
    import os
    import sys

    def stderr_on_pty(*args: str) -> tuple[str, str]:
        master, slave = os.openpty()
        try:
            proc = lab.popen([sys.executable, "-m", "recon", "sweep", *args], stdout=subprocess.PIPE, stderr=slave)
            os.close(slave)
            chunks = []
            while True:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    break
                if not data:
                    break
                chunks.append(data)
            out, _ = proc.communicate(timeout=30)
        finally:
            os.close(master)
        return out, b"".join(chunks).decode(errors="replace")

    out, err = stderr_on_pty("198.18.1.0/24", "-W", "1.5", "--json")
    assert "\r[" in err and "%" in err and "16 hosts up of 256" in err
    assert "\r" not in out and len(out.splitlines()) == 16
    _, quick = stderr_on_pty("198.18.2.0/28")
    assert "\r[" not in quick and "16 hosts up of 16" in quick


def test_interface_and_source_options(lab) -> None:
    """--interface and --source pick the scanner's own link and address; names or addresses it lacks exit 2."""
    ok = _json(lab.recon("sweep", "198.18.0.10", "198.18.2.3", "--interface", lab.info.scanner_if,
                         "--source", lab.info.scanner_ipv4, "--json"))
    assert _up(ok) == {"198.18.0.10", "198.18.2.3"}
    bad_if = lab.recon("sweep", "198.18.2.3", "--interface", "nosuch0")
    assert bad_if.returncode == 2 and "--interface" in bad_if.stderr
    bad_src = lab.recon("sweep", "198.18.2.3", "--source", "198.18.9.9")
    assert bad_src.returncode == 2 and "--source" in bad_src.stderr
