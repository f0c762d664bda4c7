"""sweep's output for pipes and eyes (issue 13, items 4-5): --grep (nmap -oG), -a (fping -a), our own
address marked `self`, the progress bar's ETA, and the short flags that follow fping/ping (-W, -I)."""

from __future__ import annotations

import io
import json

import pytest

from recon.render import SweepProgress, progress_line
from tests.conftest import run_cli


class _Tty(io.StringIO):
    """A terminal as far as SweepProgress can tell: it draws only on a TTY."""

    def isatty(self) -> bool:
        return True


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _drawn(stream: _Tty) -> list[str]:
    return [frame.removesuffix("\033[K") for frame in stream.getvalue().split("\r") if frame.startswith("[")]


def test_progress_never_moves_backward_when_retries_start_and_shows_an_eta() -> None:
    """Recorded engine events of a /16 with loss: sends count up to 65536, then the wait and the retry rounds
    report the answered count (lower). The bar stays at its best, and an ETA is shown while probing."""
    clock = _Clock()
    stream = _Tty()
    bar = SweepProgress(stream, delay=1.0, clock=clock)
    events = [(4096 * k, 65536) for k in range(1, 17)] + [(30000, 65536), (41000, 65536), (52000, 65536), (65536, 65536)]
    for done, total in events:
        clock.now += 0.25
        bar(done, total)
    frames = _drawn(stream)
    counts = [int(f.split("] ")[1].split("/")[0]) for f in frames]
    assert counts == sorted(counts), counts  # never backward
    assert counts[-1] == 65536 and len(frames) == len(events) - 3  # nothing drawn in the first second
    assert any("ETA" in f for f in frames) and frames[-1].endswith("waiting")
    first = frames[0]  # 16384 of 65536 after 1.0 s: three quarters left at that rate is 3 s
    assert first.startswith("[" + "#" * 7 + " " * 23 + "] 16384/65536  25%") and first.endswith("ETA 3 s"), first
    bar.finish()
    assert stream.getvalue().endswith("\r\033[K")


def test_progress_line_is_a_pure_function_of_its_inputs() -> None:
    assert progress_line(0, 10, 2.0).endswith("ETA ?")
    assert progress_line(5, 10, 2.0) == "[" + "#" * 15 + " " * 15 + "] 5/10  50%    2.0 s  ETA 2 s"
    assert progress_line(10, 10, 7.5).endswith("100%    7.5 s  waiting")


def test_no_progress_off_a_tty() -> None:
    stream = io.StringIO()
    clock = _Clock()
    bar = SweepProgress(stream, delay=0.0, clock=clock)
    clock.now += 5
    bar(10, 100)
    bar.finish()
    assert stream.getvalue() == ""


@pytest.mark.parametrize(("args", "instead"), [
    (["sweep", "-t", "1", "198.18.0.1"], "-W/--timeout"),
    (["sweep", "-i", "eth0", "198.18.0.1"], "-I/--interface"),
    (["watch", "--once", "-t", "1", "198.18.0.1"], "-W/--timeout"),
    (["watch", "--once", "-i", "eth0", "198.18.0.1"], "-I/--interface"),
])
def test_retired_short_flags_say_what_replaced_them(args: list[str], instead: str) -> None:
    """sweep's and watch's old -t (timeout) and -i (interface) clash with ping's -t (TTL) and fping's -i (interval):
    they now exit 2 with one line naming the new flag, before anything is sent, never a silent change of meaning."""
    res = run_cli(*args)
    lines = res.stderr.strip().splitlines()
    flag = "-t" if "-t" in args else "-i"
    assert res.code == 2 and len(lines) == 1 and f"{args[0]} has no {flag} any more" in lines[0]
    assert instead in lines[0] and res.stdout == ""


def test_output_formats_exclude_each_other() -> None:
    for pair in (["--json", "--grep"], ["-a", "--csv"], ["--grep", "-a"]):
        res = run_cli("sweep", *pair, "198.18.0.1")
        assert res.code == 2 and "cannot be combined" in res.stderr, (pair, res.stderr)
    res = run_cli("sweep", "-n", "-R", "198.18.0.1")
    assert res.code == 2 and "-n and -R" in res.stderr


def _fields(line: str) -> dict[str, str]:
    return dict(field.split(": ", 1) for field in line.split("\t"))


def test_grep_output_is_nmap_og_with_fixed_fields_and_self_marked(lab) -> None:
    """--grep: '#' comment lines around one line per host; 'Host: ADDR (NAME)' and 'Status: Up' first, as nmap -oG
    writes them, then the same eight TAB-separated fields on every line (ARP rows too: 'TTL: -'). The scanner's
    own address is listed up with reason self, and -a prints only the addresses that are up, as fping -a."""
    res = lab.recon("sweep", "198.18.0.0/28", "--grep")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("# recon ") and "sweep as: recon sweep 198.18.0.0/28 --grep" in lines[0]
    assert lines[-1].startswith("# recon done -- 16 IP addresses (") and lines[-1].endswith(" seconds")
    rows = [_fields(line) for line in lines[1:-1]]
    keys = ["Host", "Status", "Reason", "RTT-ms", "TTL", "MAC", "Vendor", "Reporter"]
    assert all(list(r) == keys for r in rows), rows
    by_address = {r["Host"].split(" ")[0]: r for r in rows}
    expected = {h.ipv4 for h in lab.info.hosts if h.ipv4 in {f"198.18.0.{i}" for i in range(16)}}
    expected |= {lab.info.router_ipv4, lab.info.scanner_ipv4}
    assert set(by_address) == expected
    me = by_address[lab.info.scanner_ipv4]
    assert me["Reason"] == "self" and me["Status"] == "Up" and me["MAC"] == lab.info.scanner_mac
    others = [r for a, r in by_address.items() if a != lab.info.scanner_ipv4]
    assert all(r["Reason"] == "arp-reply" and r["TTL"] == "-" and r["Host"].endswith("()") for r in others)
    assert f"({len(expected)} hosts up)" in lines[-1]
    # awk by column: the same column is the reason on every line
    assert [line.split("\t")[2] for line in lines[1:-1]] == [f"Reason: {by_address[a]['Reason']}" for a in by_address]

    alive = lab.recon("sweep", "198.18.0.0/28", "-a")
    # printed as each host is found (as fping -a prints them), so in the order the answers came: each once
    assert alive.returncode == 0 and sorted(alive.stdout.splitlines()) == sorted(expected), alive.stdout


def test_self_is_marked_by_icmp_too_and_down_hosts_in_grep(lab) -> None:
    """With --method icmp our own address answers through the loopback: still up, reason self, reply echo-reply.
    --grep --all lists the silent targets as 'Status: Down' with '-' fields."""
    res = lab.recon("sweep", "198.18.0.2", "198.18.0.10", "--method", "icmp", "--json")
    rows = {r["address"]: r for r in map(json.loads, res.stdout.splitlines())}
    assert rows[lab.info.scanner_ipv4]["reason"] == "self" and rows[lab.info.scanner_ipv4]["reply"] == "echo-reply"
    assert rows["198.18.0.10"]["reason"] == "echo-reply"
    down = lab.recon("sweep", "198.18.1.16", "--grep", "--all", "-W", "0.3", "-r", "0", "--probe", "echo")
    assert down.returncode == 1
    (line,) = [x for x in down.stdout.splitlines() if not x.startswith("#")]
    assert line == "Host: 198.18.1.16 ()\tStatus: Down\tReason: -\tRTT-ms: -\tTTL: -\tMAC: -\tVendor: -\tReporter: -"


# --- start-up: the ARP path needs no Scapy import (issue 13, item 9) --------------------------------------------


@pytest.mark.parametrize("sender", [0, 0xC612004D])
def test_arp_request_is_the_frame_scapy_builds(sender: int) -> None:
    """The who-has frame packed by hand is byte for byte Scapy's Ether(dst=broadcast)/ARP(op=1) (--source: psrc)."""
    from scapy.layers.l2 import ARP, Ether

    from recon.arp import Link, arp_request_template

    lnk = Link("eth0", bytes.fromhex("025245430002"), 0xC6120002, 0xFFFFFF00, sender)
    psrc = "198.18.0.77" if sender else "198.18.0.2"
    scapy = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src="02:52:45:43:00:02") / ARP(op=1, hwsrc="02:52:45:43:00:02", psrc=psrc,
                                                                                pdst="0.0.0.0"))[:42]
    assert arp_request_template(lnk) == scapy


def test_vendor_names_from_scapys_bundled_copy_when_wireshark_has_none(monkeypatch) -> None:
    """Without Wireshark's manuf file the lookup reads the copy Scapy bundles (gzipped, base85 in a .py file) and
    names vendors as Scapy's own parse of that copy does."""
    from scapy.libs.manuf import DATA

    from recon import arp

    rows = [line.split(None, 1) for line in DATA.split("\n")]
    table = {p[0]: arp._manuf_long(p[1]) for p in rows if len(p) == 2 and len(p[0]) == 8 and p[0].count(":") == 2}
    monkeypatch.setattr(arp, "_MANUF_DIRS", ())
    arp._oui_name.cache_clear()
    try:
        for oui in ("3C:22:FB", "00:00:0C", *sorted(table)[::997]):
            assert arp._oui_name(oui) == table[oui], oui
        assert arp._oui_name("02:52:45") is None
    finally:
        arp._oui_name.cache_clear()


def test_vendor_names_are_scapys_without_importing_scapy() -> None:
    """recon's manuf lookup reads the database Scapy reads and gives the same name for a sample of its OUIs
    without holding the database (200 lookups allocate well under the ~9 MB the whole file as a dict took, issue
    12); importing it loads no Scapy."""
    import random
    import subprocess
    import sys
    import tracemalloc

    from scapy.config import conf

    from recon import arp
    from tests.conftest import ROOT

    def scapys(mac: str) -> str | None:
        name = conf.manufdb._get_manuf(mac)
        return None if not name or name == mac or (":" in name and name.lower().startswith(mac[:8].lower())) else name

    ouis = random.Random(13).sample(sorted(k for k in conf.manufdb.d if len(k) == 8), 200)
    macs = [f"{oui.lower()}:00:11:22" for oui in ouis] + ["3c:22:fb:12:34:56", "02:52:45:43:00:02", "ff:ff:ff:ff:ff:ff"]
    expected = [scapys(m) for m in macs]
    arp.vendor.cache_clear()
    arp._oui_name.cache_clear()
    tracemalloc.start()
    try:
        names = [arp.vendor(m) for m in macs]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert names == expected
    assert peak < 512 * 1024, f"200 vendor lookups peaked at {peak} bytes: the database is held in memory"
    assert arp.vendor("3c:22:fb:12:34:56") == "Apple, Inc." and arp.vendor("02:52:45:43:00:02") is None
    code = ("import sys; from recon.arp import vendor, arp_request_template; vendor('3c:22:fb:12:34:56'); "
            "print(sorted(m for m in sys.modules if m.startswith('scapy')))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == "[]", res.stdout + res.stderr
