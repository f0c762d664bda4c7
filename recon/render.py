"""The only module that formats for humans (and for JSON/CSV consumers).

Library code returns dataclasses; the CLI hands them here. Text that came off
the wire goes through ``safe()`` first so that packet bytes never reach the
terminal raw.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

from recon.models import LabInfo

__all__ = ["out", "err", "safe", "table", "json_line", "csv_rows", "error_line", "lab_status"]

_CONTROL = {c: f"\\x{c:02x}" for c in range(32)} | {127: "\\x7f"}
_CONTROL.update({9: "\\t", 10: "\\n", 13: "\\r"})


def safe(text: str) -> str:
    """Escape control characters (ESC, CR, BEL, …) so bytes off the wire cannot drive the terminal."""
    return text.translate(_CONTROL)


def out(line: str = "", stream: TextIO | None = None) -> None:
    print(line, file=stream or sys.stdout, flush=True)


def err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    from tabulate import tabulate

    return tabulate([["" if v is None else v for v in row] for row in rows], headers=list(headers), tablefmt="simple", disable_numparse=True)


def json_line(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, separators=(", ", ": "), ensure_ascii=False)


def csv_rows(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], stream: TextIO | None = None) -> None:
    writer = csv.DictWriter(stream or sys.stdout, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})


def error_line(exc: BaseException) -> str:
    return f"recon: error: {safe(str(exc))}"


# --- lab ----------------------------------------------------------------------------------


def lab_status(info: LabInfo) -> str:
    lines = [
        f"lab {info.name}: scanner namespace {info.scanner_ns} ({info.scanner_ipv4}, {info.scanner_ipv6}, no default route)",
        f"run inside it: recon lab exec -- <command>   (or: ip netns exec {info.scanner_ns} <command>)",
        "",
        table(
            [[h.hostname, h.ipv4, h.ipv6, h.mac, h.vendor, h.netns] for h in info.hosts]
            + [["router.lab", info.router_ipv4, info.router_ipv6, info.router_mac, "Cisco", info.router_ns]],
            ["host", "ipv4", "ipv6", "mac", "vendor", "namespace"],
        ),
        "",
        table(
            [[r.name, r.cidr, r.up_count(), r.note] for r in info.ranges]
            + [["unreachable", info.unreachable_cidr, 0, "the router answers 'host unreachable'"],
               ["ipv6", "2001:db8:2::/64", "all", f"AnyIP, e.g. {info.far_ipv6}"]],
            ["range", "cidr", "up", "note"],
        ),
        "",
        f"impairments: loss {info.loss:g}% toward the scanner; wan link delay {info.delay_ms:g} ms, jitter {info.jitter_ms:g} ms",
        f"namespaces: {' '.join(info.namespaces)}",
    ]
    return "\n".join(lines)


# --- craft ---

from recon.models import CraftedPacket, CraftField, CraftResult  # noqa: E402 (own section, merges cleanly)


def _craft_offset(f: CraftField) -> str:
    span = str(f.offset) if f.length == 1 else f"{f.offset}-{f.offset + f.length - 1}"
    return f"{span} (bits {f.bits})" if f.bits else span


def craft_table(packet: CraftedPacket) -> str:
    """The field table: layer, name, value, hex, byte offset (bits 0 = most significant)."""
    rows = [[f.layer, f.name, safe(f.value), f.hex if len(f.hex) <= 34 else f.hex[:32] + "…", _craft_offset(f)] for f in packet.fields]
    return table(rows, ["layer", "field", "value", "hex", "offset"])


def hexdump(data: bytes) -> str:
    """Offsets, 16 bytes a line in two groups of 8, printable ASCII at the right."""
    lines = []
    for at in range(0, len(data), 16):
        chunk = data[at:at + 16]
        left = " ".join(f"{b:02x}" for b in chunk[:8])
        right = " ".join(f"{b:02x}" for b in chunk[8:])
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{at:04x}  {left:<23}  {right:<23}  {text}")
    return "\n".join(lines)


def craft_checksums(packet: CraftedPacket) -> str:
    return "\n".join(
        f"{c.layer} checksum at byte {c.offset}: 0x{c.value:04x} "
        + ("verified" if c.ok else f"WRONG (correct 0x{c.correct:04x}); receivers drop this packet")
        for c in packet.checksums
    )


def craft_report(p: CraftedPacket) -> str:
    """Header line, field table, hex dump and checksum verdicts of a built packet."""
    return "\n".join([
        f"{p.src} > {p.dst}: {len(p.data)} bytes, IP header {p.header_length} bytes",
        "",
        craft_table(p),
        "",
        hexdump(p.data),
        "",
        craft_checksums(p),
    ])


def craft_summary(result: CraftResult) -> list[str]:
    """Lines for stderr: what was sent and how, and what the kernel changes."""
    p = result.packet
    lines = []
    if result.via == "none":
        lines.append(f"dry run: nothing sent ({len(p.data)} bytes built)")
        if result.kernel_rewrites:
            lines.append("note: through IP_HDRINCL Linux would change " + "; ".join(result.kernel_rewrites)
                         + " (so 'auto' sends this at layer 2)")
    else:
        where = f" on {result.interface} to {result.next_hop_mac}" if result.interface else ""
        plural = "" if result.sent == 1 else "s"
        stopped = " (interrupted)" if result.interrupted else ""
        lines.append(f"sent {result.sent} packet{plural}{stopped} to {p.dst} via {result.via}{where}: {result.reason}")
        if result.via == "raw" and result.kernel_rewrites:
            lines.append("warning: the wire differs from the table: the kernel changed " + "; ".join(result.kernel_rewrites)
                         + " (use --via l2 to send the bytes as built)")
    if result.pcap:
        lines.append(f"saved {result.pcap_written} packet(s) to {result.pcap}")
    return lines


def craft_json(result: CraftResult) -> str:
    p = result.packet
    return json_line({
        "src": p.src, "dst": p.dst, "proto": p.proto, "length": len(p.data), "header_length": p.header_length,
        "packet": p.data.hex(),
        "fields": [
            {"layer": f.layer, "name": f.name, "value": f.value, "number": f.number, "hex": f.hex,
             "offset": f.offset, "length": f.length, "bits": f.bits}
            for f in p.fields
        ],
        "checksums": [{"layer": c.layer, "offset": c.offset, "value": c.value, "correct": c.correct, "ok": c.ok} for c in p.checksums],
        "via": result.via, "sent": result.sent, "reason": result.reason, "kernel_rewrites": list(result.kernel_rewrites),
        "interface": result.interface, "next_hop_mac": result.next_hop_mac, "pcap": result.pcap,
        "interrupted": result.interrupted,
    })
