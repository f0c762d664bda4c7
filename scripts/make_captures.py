#!/usr/bin/env python3
"""Record captures/*.pcap* from real traffic in a namespace lab of its own (run as root).

    sudo .venv/bin/python scripts/make_captures.py [OUTDIR]

Every file is recorded by ``recon sniff -w`` running inside a lab namespace while the
traffic runs; the lab is always torn down. Traffic comes from ``recon sweep``/``recon ping``/
``recon craft`` when those commands are built, else from the closest honest equivalent
(iputils ping, Scapy ``sr()``/``send()`` inside the scanner namespace). The command that
made each file is written into captures/README.md, so the README never lies.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recon.lab import Lab  # noqa: E402  (after the path fix, so the repo's recon is used)

PY = sys.executable
FALLBACKS: set[str] = set()  # recon commands not built yet, replaced by their closest honest equivalent
RECON = [PY, "-m", "recon"]


def ns_run(ns: str, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def scapy(code: str) -> list[str]:
    return [PY, "-c", code]


Traffic = tuple[str, list[str]] | tuple[str, list[str], list[str]]


def record(ns: str, out: Path, traffic: list[Traffic], iface: str | None = None) -> list[str]:
    """Run `recon sniff -w OUT` in NS while each traffic command runs (in its own namespace), stop it with
    SIGINT, and return the traffic commands as run (for the README). A (ns, recon-command, fallback) entry
    runs the fallback when that recon command is not built yet on this branch."""
    out.unlink(missing_ok=True)
    argv = [*RECON, "sniff", "-w", str(out), "--timeout", "120", *(["-i", iface] if iface else [])]
    proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while not out.exists():  # the writer opens the file once the socket listens
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"recon sniff did not start: {proc.stderr.read() if proc.stderr else ''}")
            time.sleep(0.05)
        time.sleep(0.2)
        done = []
        for where, cmd, *fallback in traffic:
            res = ns_run(where, cmd)
            if fallback and "not built yet" in res.stderr:
                FALLBACKS.add(cmd[3])
                print(f"  [{where}] {' '.join(cmd[1:])}: not built yet, using the fallback", file=sys.stderr)
                cmd = fallback[0]
                res = ns_run(where, cmd)
            done.append(" ".join(cmd if cmd[0] != PY else ["python", *cmd[1:]]))
            print(f"  [{where}] {done[-1][:100]} -> exit {res.returncode}", file=sys.stderr)
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
    return done


def main() -> int:
    outdir = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "captures"
    outdir.mkdir(parents=True, exist_ok=True)
    lab = Lab()
    notes: list[str] = []
    try:
        info = lab.up()
        scan, wan = info.scanner_ns, info.wan_ns
        sniff_all = "recon sniff -w FILE (all interfaces: Linux SLL2)"
        sniff_eth = "recon sniff -i eth0 -w FILE (Ethernet)"

        # 1. a sweep
        sweep: list[Traffic] = [(scan, [*RECON, "sweep", "198.18.1.0/27", "198.18.2.0/29"],
                                 scapy("from scapy.layers.inet import IP, ICMP; from scapy.sendrecv import sr; "
                                       "sr(IP(dst=['198.18.1.0/27', '198.18.2.0/29'])/ICMP(), timeout=1, verbose=0)"))]
        cmds = record(scan, outdir / "sweep.pcap", sweep)
        notes.append(f"`sweep.pcap`: {sniff_all} in the scanner namespace while `{'; '.join(cmds)}` swept "
                     "198.18.1.0/27 (sparse) and 198.18.2.0/29 (dense)")

        # 2. pings with errors: host unreachable (router), time exceeded (ttl 1), no answer
        pings = [["-c", "2", "-W", "1", "198.18.3.7"], ["-c", "2", "-t", "1", "198.18.2.9"], ["-c", "1", "-W", "1", "198.18.2.9"]]
        cmds = record(scan, outdir / "ping-errors.pcap", [(scan, [*RECON, "ping", *p], ["ping", *p]) for p in pings],
                      iface="eth0")
        notes.append(f"`ping-errors.pcap`: {sniff_eth} while `{'; '.join(cmds)}` ran (host-unreachable from the "
                     "router for the unreachable range, time-exceeded for ttl 1, one clean reply)")

        # 3. crafted, spoofed packets (plus a bad checksum, a lying total length and escape bytes)
        mac_rtr, mac_scan = info.router_mac, info.scanner_mac
        craft: list[Traffic] = [(scan, [*RECON, "craft", "--src", "198.18.12.1", "--dst", "198.18.2.7"],
                                 scapy("from scapy.layers.inet import IP, ICMP; from scapy.sendrecv import send; "
                                       "send(IP(src='198.18.12.1', dst='198.18.2.7', id=4242, ttl=33)/ICMP(id=7, seq=1), "
                                       "verbose=0)"))]
        craft.append((scan, scapy(
            "from scapy.layers.l2 import Ether; from scapy.layers.inet import IP, ICMP, UDP; from scapy.sendrecv import sendp; "
            f"e = Ether(src='{mac_scan}', dst='{mac_rtr}'); "
            "sendp([e/IP(src='198.18.12.1', dst='198.18.2.7', chksum=0xbad)/ICMP()/b'bad checksum', "
            "e/IP(src='198.18.12.1', dst='198.18.2.8', len=400)/UDP(sport=4444, dport=53)/b'total length lies', "
            "e/IP(src='198.18.12.1', dst='198.18.2.9', flags='MF+evil', tos=0xb9)/UDP(sport=7, dport=9)"
            "/b'\\x1b[2J\\x1b]0;pwned\\x07 escape bytes'], iface='eth0', verbose=0)")))
        cmds = record(scan, outdir / "crafted-spoofed.pcap", craft, iface="eth0")
        notes.append(f"`crafted-spoofed.pcap`: {sniff_eth} while `{cmds[0]}` sent an echo request from the spoofed "
                     f"source 198.18.12.1, then `{cmds[1][:60]}…` (scripts/make_captures.py) sent three hand-made frames: "
                     "a bad header checksum, a total length (400) longer than the packet, and reserved+MF flags with "
                     "DSCP/ECN set and terminal escape bytes in the payload")

        # 4. fragments, IPv4 and IPv6; recorded as pcap, converted to pcapng by editcap
        raw = outdir / "fragments.tmp.pcap"
        cmds = record(scan, raw, [(scan, ["ping", "-c", "2", "-s", "3000", "198.18.2.1"]),
                                  (scan, ["ping", "-6", "-c", "2", "-s", "3000", "2001:db8:2::1"])], iface="eth0")
        subprocess.run(["editcap", "-F", "pcapng", str(raw), str(outdir / "fragments.pcapng")], check=True)
        raw.unlink()
        notes.append(f"`fragments.pcapng`: {sniff_eth} while `{'; '.join(cmds)}` ran, then `editcap -F pcapng` "
                     "(IPv4 fragments, IPv6 Fragment headers)")

        # 5. IP options: record route and timestamps (iputils and Scapy), router alert
        opts = [(scan, ["ping", "-c", "1", "-R", "198.18.2.3"]),
                (scan, ["ping", "-c", "1", "-T", "tsonly", "198.18.0.10"]),
                (scan, ["ping", "-c", "1", "-T", "tsandaddr", "198.18.2.4"]),
                (scan, scapy("from scapy.layers.inet import IP, ICMP, IPOption_RR, IPOption_Timestamp, IPOption_Router_Alert, "
                             "IPOption_NOP; from scapy.sendrecv import sr; "
                             "sr([IP(dst='198.18.0.11', options=[IPOption_RR(routers=['0.0.0.0'] * 4)])/ICMP(), "
                             "IP(dst='198.18.2.6', options=[IPOption_NOP(), IPOption_Timestamp(flg=0, timestamp=0)])/ICMP(), "
                             "IP(dst='198.18.0.12', options=[IPOption_Router_Alert()])/ICMP()], timeout=1, verbose=0)"))]
        cmds = record(scan, outdir / "ip-options.pcap", opts, iface="eth0")
        notes.append(f"`ip-options.pcap`: {sniff_eth} while `{'; '.join(cmds[:3])}` and a Scapy `sr()` of RR, "
                     "NOP+TS and Router Alert echo requests ran (replies echo the options)")

        # 6. IPv6
        v6 = [(scan, ["ping", "-6", "-c", "2", "2001:db8::10"]), (scan, ["ping", "-6", "-c", "2", "2001:db8:2::1"]),
              (scan, ["ping", "-6", "-c", "1", "-t", "1", "2001:db8:2::5"])]
        cmds = record(scan, outdir / "ipv6.pcap", v6, iface="eth0")
        notes.append(f"`ipv6.pcap`: {sniff_eth} while `{'; '.join(cmds)}` ran (echo, neighbour discovery, "
                     "hop limit exceeded)")

        # 8. on-link IPv6 discovery: multicast echo from each address, Neighbor Solicitations (recon/ndp.py)
        scoped = [f"{h.ipv6_ll}%eth0" for h in info.hosts] + ["fe80::99%eth0"]
        ndp = [(scan, [*RECON, "sweep", "--local", "eth0", "-W", "0.5", "-r", "0"]),
               (scan, [*RECON, "sweep", *scoped, "2001:db8::/123", "-W", "1.2", "-r", "0"])]
        cmds = record(scan, outdir / "ndp.pcap", ndp, iface="eth0")
        notes.append(f"`ndp.pcap`: {sniff_eth} while `{'; '.join(cmds)}` ran (echo to ff02::1 from the link-local "
                     "and the global address and every answer; Neighbor Solicitations to solicited-node groups and "
                     "the advertisements, the router's subnet-router anycast 2001:db8:: among them; fe80::99 silent)")

        # 7. raw IP link type: the wan namespace's tun device
        cmds = record(wan, outdir / "wan-raw.pcap", [(scan, ["ping", "-c", "3", "-i", "0.2", "198.18.5.9"])], iface="tun0")
        notes.append("`wan-raw.pcap`: recon sniff -i tun0 -w FILE in the wan namespace (a tun device: raw IP, "
                     f"link type 101) while `{'; '.join(cmds)}` ran from the scanner")
    finally:
        lab.down()

    readme = outdir / "README.md"
    head = readme.read_text().split("\n## Files", 1)[0].rstrip() if readme.exists() else "# captures"
    body = "\n".join(f"- {n}" for n in notes)
    if FALLBACKS:
        names = ", ".join(f"`recon {c}`" for c in sorted(FALLBACKS))
        body += (f"\n\nWhen these files were made, {names} were not built yet on this branch, so the script ran the "
                 "commands named above instead (iputils ping, Scapy inside the scanner namespace); once they are "
                 "built, it runs them and these lines name them.")
    readme.write_text(f"{head}\n\n## Files\n\nMade by `sudo .venv/bin/python scripts/make_captures.py` "
                      f"(builds its own lab, tears it down):\n\n{body}\n")
    for f in sorted(outdir.glob("*.pcap*")):
        print(f"{f.name}: {f.stat().st_size} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("make_captures.py: run as root (it builds a namespace lab)")
    sys.exit(main())
