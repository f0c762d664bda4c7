"""Benchmark: recon's start-up against python -c pass, ping(8), tcpdump and fping (issue 13, item 9).

Targets: `recon ping -c 1` to a lab host and `recon sniff -r` of a small pcap under 0.2 s;
`recon --help` under 0.2 s too. Every row is the median wall time of a fresh process.

    sudo .venv/bin/python bench/startup.py            # every row (builds its own lab, tears it down)
    .venv/bin/python bench/startup.py --no-lab        # the rows that need no root: --help, sniff -r
    .venv/bin/python bench/startup.py --importtime    # also: the 15 slowest imports of each recon row

The live rows run inside the lab's scanner namespace (`ip netns exec`, whose own cost is its row)
toward a lab host in 198.18.0.0/15; nothing leaves the namespaces. Bytecode is compiled first
(a `pip install` does that too), so no row pays for compiling recon's sources.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PY = sys.executable
PCAP = ROOT / "captures" / "ping-errors.pcap"  # 8 packets, 600 bytes
TARGET = 0.2


def median_wall(argv: list[str], n: int) -> tuple[float, float]:
    """Median wall time and median CPU time (user + system, from wait4) of ``n`` fresh runs. CPU time hardly
    moves when other jobs share the cores; wall time does."""
    walls, cpus = [], []
    for _ in range(n):
        t = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, _, usage = os.wait4(proc.pid, 0)
        walls.append(time.perf_counter() - t)
        cpus.append(usage.ru_utime + usage.ru_stime)
        proc.returncode = 0  # reaped by wait4 above
    return statistics.median(walls), statistics.median(cpus)


def slowest_imports(argv: list[str], top: int = 15) -> list[tuple[int, str]]:
    """`python -X importtime`: the imports with the largest cumulative time (µs), outermost first. argv runs the
    interpreter (PY) itself, or through a prefix such as `ip netns exec NS`."""
    at = argv.index(PY) + 1
    res = subprocess.run([*argv[:at], "-X", "importtime", *argv[at:]], capture_output=True, text=True, check=False)
    rows = []
    for line in res.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _, cumulative, name = line[len("import time:"):].split("|")
            rows.append((int(cumulative), name.rstrip()))
    return sorted(rows, reverse=True)[:top]


def row(name: str, seconds: tuple[float, float], target: float | None = None) -> None:
    wall, cpu = seconds
    verdict = "" if target is None else f"   target < {target:.3f}  {'OK' if wall < target else 'MISSED'}"
    print(f"{name:48} {wall:7.3f} {cpu:7.3f}{verdict}", flush=True)


def local_rows(n: int, importtime: bool) -> None:
    recon = [PY, "-m", "recon"]
    row("python -c pass (the floor)", median_wall([PY, "-c", "pass"], n))
    row("python -c 'import typer'", median_wall([PY, "-c", "import typer"], n))
    row("python -c 'from scapy.layers.inet import IP'", median_wall([PY, "-c", "from scapy.layers.inet import IP"], n))
    row("recon --version", median_wall([*recon, "--version"], n))
    row("recon --help", median_wall([*recon, "--help"], n), TARGET)
    row(f"recon sniff -r {PCAP.name}", median_wall([*recon, "sniff", "-r", str(PCAP)], n), TARGET)
    if shutil.which("tcpdump"):
        row(f"tcpdump -n -r {PCAP.name}", median_wall(["tcpdump", "-n", "-r", str(PCAP)], n))
    if importtime:
        for argv in (["--help"], ["sniff", "-r", str(PCAP)]):
            print(f"\nslowest imports of recon {' '.join(argv)} (cumulative ms):")
            for us, name in slowest_imports([*recon, *argv]):
                print(f"  {us / 1000:6.1f}  {name}")
        print()


def lab_rows(n: int, importtime: bool) -> None:
    from recon.lab import Lab

    lab = Lab()
    try:
        info = lab.up()
        host = info.hosts[0].ipv4
        inside = ["ip", "netns", "exec", info.scanner_ns]
        recon = [*inside, PY, "-m", "recon"]
        subprocess.run([*inside, "ping", "-c", "1", "-W", "1", host], capture_output=True, check=False)  # warm the ARP cache
        row("ip netns exec NS true (the namespace's cost)", median_wall([*inside, "true"], n))
        row(f"ping -c 1 {host}", median_wall([*inside, "ping", "-c", "1", host], n))
        row(f"recon ping -c 1 {host}", median_wall([*recon, "ping", "-c", "1", host], n), TARGET)
        if shutil.which("fping"):
            row(f"fping {host}", median_wall([*inside, "fping", host], n))
        if shutil.which("nmap"):
            row(f"nmap -sn -n {host}", median_wall([*inside, "nmap", "-sn", "-n", host], n))
        row(f"recon sweep {host}", median_wall([*recon, "sweep", host], n))
        if importtime:
            for argv in (["ping", "-c", "1", host], ["sweep", host]):
                print(f"\nslowest imports of recon {' '.join(argv)} (cumulative ms):")
                for us, name in slowest_imports([*recon, *argv]):
                    print(f"  {us / 1000:6.1f}  {name}")
    finally:
        lab.down()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--runs", type=int, default=15, help="runs per row (the median is shown)")
    ap.add_argument("--no-lab", action="store_true", help="skip the rows that need root and the lab")
    ap.add_argument("--importtime", action="store_true", help="show the slowest imports (python -X importtime)")
    args = ap.parse_args()
    compileall.compile_dir(str(ROOT / "recon"), quiet=1)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} cores, load average {load} (other jobs slow every row alike)")
    print(f"{'command (median of ' + str(args.runs) + ' runs)':48} {'wall s':>7} {'cpu s':>7}")
    local_rows(args.runs, args.importtime)
    if not args.no_lab:
        if os.geteuid() != 0:
            print("(lab rows skipped: they need root)")
        else:
            lab_rows(args.runs, args.importtime)
    return 0


if __name__ == "__main__":
    sys.exit(main())
