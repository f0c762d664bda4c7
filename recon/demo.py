"""What `recon demo` runs: real recon commands inside a fresh lab, as data.

The CLI builds the lab, starts a capture into ``./recon-demo.pcap`` (``--write``), runs each
step inside the scanner namespace with its output streamed to the terminal,
then tears everything down. Nothing here prints or sends.
"""

from __future__ import annotations

from dataclasses import dataclass

from recon.models import LabInfo

__all__ = ["DemoStep", "demo_steps"]


@dataclass(frozen=True)
class DemoStep:
    title: str
    args: tuple[str, ...]  # arguments to `recon`
    ok_codes: tuple[int, ...] = (0,)


def demo_steps(info: LabInfo) -> list[DemoStep]:
    phone = next(h for h in info.hosts if h.name == "phone")
    pi = next(h for h in info.hosts if h.name == "pi")
    return [
        DemoStep("Who is on the LAN? (ARP: MACs and vendors)", ("sweep", info.lan_cidr)),
        DemoStep("A routed /24 where 16 hosts answer (ICMP echo)", ("sweep", info.range("sparse24").cidr)),
        DemoStep("A range the router cannot reach", ("sweep", "--all", "198.18.3.1-4"), (1,)),
        DemoStep("Ping the phone by name", ("ping", "-c", "3", "-i", "0.2", phone.hostname)),
        DemoStep("Ping past the router with TTL 1", ("ping", "-c", "1", "-t", "1", "198.18.2.1"), (1,)),
        DemoStep(
            f"A hand-built echo request from a spoofed source ({pi.ipv4}) to the phone",
            ("craft", "--src", pi.ipv4, "--dst", phone.ipv4, "--data", "hello from recon"),
        ),
    ]
