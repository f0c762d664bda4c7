"""Benchmark `recon watch` in its own lab: false DOWNs under loss, memory over many rounds, round cost.

Run by hand (root): .venv/bin/python bench/watch.py [--window 300] [--rounds 10000] [--loss 5]

1. Stability: --window seconds at --period 0.5 on the 5 LAN hosts under --loss % loss (nftables drops
   frames toward the scanner). One round stream feeds trackers with misses 1, 2 and 3 (3 is the default),
   so the table shows what the hysteresis buys. Every DOWN is false: no host really leaves.
2. Memory: --rounds rounds back to back (period 0) on the same hosts, no loss; RSS sampled every 1,000
   rounds must stay flat (growth under 2 MiB after the first 1,000 rounds).
3. Round cost against the reference tools, same hosts, same run: a recon round (Prober kept open)
   versus what a shell loop would do per round: `fping -a -r1 -t300` and `nmap -sn -n` (ARP ping).
The lab is built here and always torn down (try/finally).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LAN5 = "198.18.0.10-14"


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# --- children: run inside the scanner namespace ------------------------------------------------------


def child_stability(window: float, period: float) -> None:
    from recon.targets import build_targets
    from recon.watch import ProbeOptions, Tracker, Watch, default_round_source

    targets = build_targets([LAN5])
    source = default_round_source(ProbeOptions(timeout=min(1.0, max(0.2, period * 0.6)), retries=1))
    extra = {k: Tracker(misses=k, in_scope=targets.__contains__) for k in (1, 2)}
    silent_rounds = 0
    per_round_misses = 0

    def teed(t):  # the same rounds go to the trackers with misses 1 and 2
        nonlocal silent_rounds, per_round_misses
        hosts = list(source(t))
        silent = sum(1 for h in hosts if h.status != "up")
        per_round_misses += silent
        silent_rounds += 1 if silent else 0
        for tracker in extra.values():
            for e in tracker.observe(hosts):
                if e.event == "DOWN":
                    downs[tracker.misses] += 1
        return hosts

    downs = {1: 0, 2: 0, 3: 0}
    rounds = 0
    with Watch(targets, period=period, misses=3, round_source=teed, resolve=lambda _a: {}) as w:
        end = time.monotonic() + window
        for rnd in w.rounds():
            rounds += 1
            downs[3] += sum(1 for e in rnd.events if e.event == "DOWN")
            if time.monotonic() >= end:
                break
    print(json.dumps({"rounds": rounds, "downs": downs, "host_misses": per_round_misses,
                      "rounds_with_a_miss": silent_rounds}))


def child_memory(total: int) -> None:
    from recon.targets import build_targets
    from recon.watch import Watch

    targets = build_targets([LAN5])
    samples = []
    t0 = time.monotonic()
    with Watch(targets, period=0, misses=3, resolve=lambda _a: {}, timeout=0.2) as w:
        for rnd in w.rounds(count=total):
            if rnd.number % 1000 == 0 or rnd.number == 1:
                samples.append((rnd.number, rss_kib(), time.monotonic() - t0, rnd.up))
    print(json.dumps({"samples": samples}))


def child_round_cost(n: int) -> None:
    from recon.targets import build_targets
    from recon.watch import ProbeOptions, default_round_source

    targets = build_targets([LAN5])
    source = default_round_source(ProbeOptions(timeout=0.3, retries=1))
    list(source(targets))
    t = time.perf_counter()
    ups = 0
    for _ in range(n):
        ups += sum(1 for h in source(targets) if h.status == "up")
    recon_s = (time.perf_counter() - t) / n
    out = {"recon": recon_s, "recon_up": ups / n}
    addrs = [f"198.18.0.{i}" for i in range(10, 15)]
    for name, argv in (("fping", ["fping", "-a", "-q", "-r", "1", "-t", "300", *addrs]),
                       ("nmap", ["nmap", "-sn", "-n", "-T4", *addrs])):
        if shutil.which(argv[0]) is None:
            continue
        reps = max(3, n // 10) if name == "nmap" else n
        t = time.perf_counter()
        for _ in range(reps):
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        out[name] = (time.perf_counter() - t) / reps
    print(json.dumps(out))


# --- the parent: builds the lab and reports ------------------------------------------------------------


def in_lab(lab, *args: str, timeout: float) -> dict:
    argv = ["ip", "netns", "exec", lab.info().scanner_ns, sys.executable, str(Path(__file__).resolve()), *args]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if res.returncode != 0:
        raise SystemExit(f"bench child failed: {res.stderr.strip()}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--window", type=float, default=300.0, help="seconds of watching under loss")
    ap.add_argument("--period", type=float, default=0.5)
    ap.add_argument("--loss", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=10_000, help="rounds for the memory check")
    ap.add_argument("--cost-rounds", type=int, default=50)
    ap.add_argument("--child", choices=("stability", "memory", "cost"))
    args = ap.parse_args()
    if args.child == "stability":
        return child_stability(args.window, args.period)
    if args.child == "memory":
        return child_memory(args.rounds)
    if args.child == "cost":
        return child_round_cost(args.cost_rounds)

    from recon.lab import Lab

    os.environ.setdefault("RECON_LAB_DIR", f"/tmp/recon-bench-watch-{os.getpid()}")
    lab = Lab()
    try:
        lab.up()
        print(f"lab {lab.name} up; hosts {LAN5}")

        cost = in_lab(lab, "--child", "cost", "--cost-rounds", str(args.cost_rounds), timeout=600)
        print("\n1) one presence round over the 5 LAN hosts (lower is better)")
        print(f"   {'tool':28} {'ms/round':>9} {'vs recon':>9}")
        print(f"   {'recon (Prober kept open)':28} {cost['recon'] * 1000:9.2f} {1:9.1f}x   ({cost['recon_up']:.2f} up per round)")
        for name, label in (("fping", "fping -a -r1 -t300 (spawn)"), ("nmap", "nmap -sn -n -T4 (spawn)")):
            if name in cost:
                print(f"   {label:28} {cost[name] * 1000:9.2f} {cost[name] / cost['recon']:9.1f}x")

        lab.impair(loss=args.loss)
        try:
            stab = in_lab(lab, "--child", "stability", "--window", str(args.window), "--period", str(args.period),
                          timeout=args.window + 120)
        finally:
            lab.impair()
        d = stab["downs"]
        print(f"\n2) {args.window:g} s under {args.loss:g} % loss at period {args.period:g} s: {stab['rounds']} rounds, "
              f"{stab['host_misses']} host-rounds unanswered (after 1 in-round retry), "
              f"{stab['rounds_with_a_miss']} rounds with a miss")
        for k in (1, 2, 3):
            tag = "  <- default" if k == 3 else ""
            print(f"   misses {k}: {d[str(k)]:4d} false DOWN events{tag}")
        print(f"   verdict: {'OK (no false DOWN at the default)' if d['3'] == 0 else 'FAILED: false DOWN at the default'}")

        mem = in_lab(lab, "--child", "memory", "--rounds", str(args.rounds), timeout=3600)
        samples = mem["samples"]
        print(f"\n3) memory over {args.rounds:,} rounds back to back (period 0)")
        print(f"   {'round':>7} {'RSS MiB':>8} {'elapsed s':>10} {'up':>3}")
        for number, rss, elapsed, up in samples:
            print(f"   {number:7d} {rss / 1024:8.2f} {elapsed:10.1f} {up:3d}")
        base = next((rss for number, rss, _e, _u in samples if number >= 1000), samples[0][1])
        growth = (samples[-1][1] - base) / 1024
        print(f"   growth after round 1,000: {growth:+.2f} MiB  {'OK (flat)' if growth < 2 else 'FAILED: grows'}")
    finally:
        removed = lab.down()
        print(f"\nlab {lab.name} torn down ({len(removed)} namespaces)")


if __name__ == "__main__":
    main()
