#!/usr/bin/env python3
"""Decode speed: `recon sniff --read` (text and JSON) against `tshark -T fields`, on one lab capture.

    sudo .venv/bin/python bench/decode.py [--packets 220000] [--keep FILE]

Builds its own lab (always torn down), records at least PACKETS frames with
`tcpdump -w` inside the scanner namespace while flood pings (IPv4 to three hosts,
IPv6 to one) run, then times, in this one run, on that file (output to /dev/null):

  tshark -n -r F -T fields -e frame.number -e ip.src … (the same IP/ICMP fields recon prints)
  recon sniff --read F          (one text line per packet)
  recon sniff --read F --json   (one JSON object per packet)

and prints packets/s and the ratio to tshark. Target: ≥ 2× tshark. Times include
process start-up for every tool (each is run the way a user runs it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recon.pcap import read_frames  # noqa: E402
from recon.lab import Lab  # noqa: E402

TSHARK_FIELDS = ["frame.number", "frame.time_epoch", "ip.src", "ip.dst", "ip.proto", "ip.ttl", "ip.len", "ip.id",
                 "ip.flags.df", "ip.flags.mf", "ip.frag_offset", "ip.checksum", "icmp.type", "icmp.code",
                 "ipv6.src", "ipv6.dst", "ipv6.hlim", "icmpv6.type", "icmpv6.code"]


def record(lab: Lab, path: Path, packets: int) -> None:
    info = lab.info()
    ns = info.scanner_ns
    dump = subprocess.Popen(["ip", "netns", "exec", ns, "tcpdump", "-i", "eth0", "-n", "-s", "256", "-B", "65536",
                             "-c", str(packets), "-w", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)
    targets = [["ping", "-f", "-q", info.hosts[0].ipv4], ["ping", "-f", "-q", info.hosts[1].ipv4],
               ["ping", "-f", "-q", "198.18.2.7"], ["ping", "-6", "-f", "-q", info.hosts[2].ipv6]]
    floods = [subprocess.Popen(["ip", "netns", "exec", ns, *t], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
              for t in targets]
    try:
        dump.wait(timeout=600)
    finally:
        for f in floods:
            f.terminate()
        for f in floods:
            f.wait(10)
        if dump.poll() is None:
            dump.terminate()
            dump.wait(10)


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    with open(os.devnull, "w") as sink:
        res = subprocess.run(argv, stdout=sink, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {res.stderr.strip()}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=220_000)
    parser.add_argument("--keep", help="keep the recorded capture here")
    parser.add_argument("--read", help="skip recording: benchmark this existing capture")
    parser.add_argument("--rounds", type=int, default=2, help="best of N runs per tool")
    args = parser.parse_args()
    for tool in ("tshark", "tcpdump", "ping"):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench/decode.py needs {tool}")
    tmp = Path(tempfile.mkdtemp(prefix="recon-bench-"))
    path = Path(args.read) if args.read else tmp / "flood.pcap"
    try:
        if not args.read:
            lab = Lab()
            try:
                lab.up()
                print(f"recording {args.packets} packets in lab {lab.name} …", file=sys.stderr)
                record(lab, path, args.packets)
            finally:
                lab.down()
        n = sum(1 for _ in read_frames(path))
        size = path.stat().st_size
        print(f"capture: {n} packets, {size / 1e6:.1f} MB ({path})")
        tshark = ["tshark", "-n", "-r", str(path), "-T", "fields"]
        for f in TSHARK_FIELDS:
            tshark += ["-e", f]
        recon = [sys.executable, "-m", "recon", "sniff", "--read", str(path)]
        runs = {"tshark -T fields": tshark, "recon sniff --read": recon, "recon sniff --read --json": [*recon, "--json"]}
        results = {name: min(timed(argv) for _ in range(args.rounds)) for name, argv in runs.items()}
        base = n / results["tshark -T fields"]
        print(f"{'tool':<28}{'seconds':>9}{'packets/s':>12}{'vs tshark':>11}")
        for name, secs in results.items():
            rate = n / secs
            print(f"{name:<28}{secs:>9.2f}{rate:>12,.0f}{rate / base:>10.2f}×")
        worst = min(n / results[k] for k in results if k.startswith("recon")) / base
        print(f"target ≥ 2× tshark: {'met' if worst >= 2 else 'NOT met'} (worst recon mode {worst:.2f}×)")
        if args.keep and not args.read:
            shutil.copy(path, args.keep)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    if os.geteuid() != 0 and "--read" not in sys.argv:
        sys.exit("bench/decode.py: run as root (it builds a namespace lab)")
    sys.exit(main())
