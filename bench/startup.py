"""Benchmark: how long `recon --help` takes (target ≤ 0.3 s), against `python -c pass`.

Run by hand: .venv/bin/python bench/startup.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time


def best_of(argv: list[str], n: int = 15) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    base = best_of([sys.executable, "-c", "pass"])
    helps = best_of([sys.executable, "-m", "recon", "--help"])
    scapy = best_of([sys.executable, "-c", "from scapy.layers.inet import IP"])
    print(f"{'command':32} {'median s':>9}")
    print(f"{'python -c pass':32} {base:9.3f}")
    print(f"{'recon --help':32} {helps:9.3f}   target <= 0.300  {'OK' if helps <= 0.3 else 'MISSED'}")
    print(f"{'import scapy.layers.inet':32} {scapy:9.3f}   (what --help avoids)")


if __name__ == "__main__":
    main()
