"""Peak RSS and wall time of `recon sweep` by range size, and an honest /8 extrapolation, run by hand.

    sudo .venv/bin/python bench/memory.py                  # this checkout's recon, 3 runs per row
    sudo .venv/bin/python bench/memory.py --code /work/main # another checkout's recon (before/after)

Builds its own namespace lab (recon.lab.Lab), always tears it down. Each row runs
`python -m recon sweep RANGE -t 1 --yes` plus the output flags as a fresh process in the scanner
namespace under GNU time (%M: peak RSS of the process, %e: wall time including interpreter start).

The lab holds no range bigger than a /15 (198.18.0.0/15), so a /8 is not swept: it is extrapolated
from the lab's rows. RSS: the routed /15 row (the whole lab but the scanner's own /24, whose ARP
answers add the packet socket's batches, about 1 MB whatever the range) minus the /16 row gives the
bytes each extra target costs; a /8 costs that times 2**24 on top of the /16 row. Time: a sparse /8 is taken at the sparse /17's seconds
per target, a dense /8 at the dense /16's; interpreter start is subtracted once and added back once.
Both assume this machine (its cores, recon's send threads) keeps the same rate for a whole /8 (no receive-buffer overflow, no ARP), so the
figures are a floor for time and an estimate for RSS, not a measurement.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recon.lab import Lab  # noqa: E402 - after the path fix so the bench runs from a checkout

PY = sys.executable
TIME = shutil.which("time") or "/usr/bin/time"
ROWS = [  # label, range, targets, output flags
    ("dense /16", "198.19.0.0/16", 65536, ["--json"]),
    ("sparse /17", "198.18.128.0/17", 32768, ["--json"]),
    ("/15 (whole lab)", "198.18.0.0/15", 131072, ["--json"]),
    ("/15 routed", "198.18.0.0/15", 130816, ["--json", "--exclude", "198.18.0.0/24"]),
    ("dense /16 --all", "198.19.0.0/16", 65536, ["--json", "--all"]),
    ("/15 --all", "198.18.0.0/15", 131072, ["--json", "--all"]),
    ("/15 table", "198.18.0.0/15", 131072, []),
]
SLASH8 = 1 << 24


def run(ns: str, code: Path, argv: list[str]) -> tuple[float, float, int]:
    """(wall s, peak RSS MB, lines on stdout) of one `recon` process in the scanner namespace."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        env = {**os.environ, "PYTHONPATH": str(code)}
        full = ["ip", "netns", "exec", ns, TIME, "-f", "%M %e", "-o", tf.name, PY, "-m", "recon", *argv]
        res = subprocess.run(full, capture_output=True, text=True, env=env, cwd=code, timeout=600)
        if res.returncode not in (0, 1):
            raise SystemExit(f"bench: {' '.join(argv)} exited {res.returncode}: {res.stderr.strip()[-300:]}")
        rss_kb, wall = Path(tf.name).read_text().split()[-2:]
    return float(wall), int(rss_kb) / 1024, res.stdout.count("\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--code", type=Path, default=ROOT, help="the checkout whose recon runs (default: this one)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per row (default 3; the median wall, the max RSS)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/memory.py needs root (it builds a namespace lab)", file=sys.stderr)
        return 3
    os.environ.setdefault("RECON_LAB_DIR", tempfile.mkdtemp(prefix="recon-bench-"))
    lab = Lab()
    results: dict[str, tuple[float, float, int]] = {}
    try:
        info = lab.up()
        ns = info.scanner_ns
        run(ns, args.code, ["sweep", "198.18.2.0/30", "--json"])  # warm the page cache
        start = statistics.median(run(ns, args.code, ["sweep", "--help"])[0] for _ in range(3))
        for label, cidr, _, flags in ROWS:
            runs = [run(ns, args.code, ["sweep", cidr, "--timeout", "1", "--yes", *flags]) for _ in range(args.repeat)]
            results[label] = (statistics.median(r[0] for r in runs), max(r[1] for r in runs), runs[-1][2])
            print(f"  {label:18} {results[label][0]:6.2f} s {results[label][1]:7.1f} MB  {results[label][2]} lines",
                  file=sys.stderr)
            time.sleep(0.5)
    finally:
        lab.down()
    print(f"recon from {args.code}, {os.cpu_count()} cores, median wall of {args.repeat} runs, max peak RSS; "
          f"interpreter start + import ~{start:.2f} s")
    print(f"{'row':18} {'targets':>8} {'wall s':>7} {'RSS MB':>7} {'lines':>7}")
    for label, _, n, _ in ROWS:
        wall, rss, lines = results[label]
        print(f"{label:18} {n:8} {wall:7.2f} {rss:7.1f} {lines:7}")
    d16, s17, r15 = results["dense /16"], results["sparse /17"], results["/15 routed"]
    per_target = (r15[1] - d16[1]) * 1024 * 1024 / (130816 - 65536)
    rss8 = d16[1] + per_target * (SLASH8 - 65536) / 1024 / 1024
    sparse8 = start + (s17[0] - start) * SLASH8 / 32768
    dense8 = start + (d16[0] - start) * SLASH8 / 65536
    print()
    print(f"/15 (whole lab) - /16: {results['/15 (whole lab)'][1] - d16[1]:+.1f} MB; "
          f"/15 routed - /16: {r15[1] - d16[1]:+.1f} MB ({per_target:.0f} bytes a target)")
    print(f"/8 extrapolated (not measured; see the docstring): RSS ~{rss8:.0f} MB; "
          f"sparse (as the /17) ~{sparse8:.0f} s, dense (as the /16) ~{dense8:.0f} s, at this machine's rates")
    return 0


if __name__ == "__main__":
    sys.exit(main())
