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

# --- ping ---------------------------------------------------------------------------------
# Lines shaped exactly like iputils ping (ping_common.c / ping.c / ping6_common.c).

from recon.models import PingError, PingReply, PingStart, PingStats  # noqa: E402  (own section, merge-friendly)


def _ping_ms(us: int) -> str:
    """A reply's ``time=`` value, with iputils' precision steps."""
    if us >= 100000 - 50:
        return f"{(us + 500) // 1000}"
    if us >= 10000 - 5:
        return f"{(us + 50) // 1000}.{((us + 50) % 1000) // 100:01d}"
    if us >= 1000:
        return f"{(us + 5) // 1000}.{((us + 5) % 1000) // 10:02d}"
    return f"{us // 1000}.{us % 1000:03d}"


def _ping_us3(us: int) -> str:
    return f"{us // 1000}.{us % 1000:03d}"


def _ping_who(address: str | None, name: str | None) -> str:
    return f"{safe(name)} ({address})" if name else str(address)


def _ping_stamp(timestamp: float, show: bool) -> str:
    if not show:
        return ""
    micros = int(round(timestamp * 1_000_000))
    return f"[{micros // 1_000_000}.{micros % 1_000_000:06d}] "


def ping_header(start: PingStart) -> str:
    """``PING host (addr) 56(84) bytes of data.`` (IPv6: ``PING host(addr) 56 data bytes``)."""
    via = ""
    if start.source or start.interface:
        via = f" from {start.source or ''} {start.interface or ''}:"
    if start.family == 6:
        shown = start.address if start.numeric else f"{safe(start.host)} ({start.address})"
        return f"PING {safe(start.host)}({shown}){via} {start.size} data bytes"
    return f"PING {safe(start.host)} ({start.address}){via} {start.size}({start.packet_bytes}) bytes of data."


def ping_reply(reply: PingReply, *, timestamps: bool = False) -> str:
    line = f"{_ping_stamp(reply.timestamp, timestamps)}{reply.bytes} bytes from {_ping_who(reply.address, reply.hostname)}: icmp_seq={reply.seq}"
    if reply.ttl is not None:
        line += f" ttl={reply.ttl}"
    if reply.truncated:
        return line + " (truncated)"
    if reply.rtt_us is not None:
        line += f" time={_ping_ms(reply.rtt_us)} ms"
    if reply.duplicate:
        line += " (DUP!)"
    return line


def ping_error(error: PingError, *, timestamps: bool = False) -> tuple[str, bool]:
    """(line, to_stderr): ICMP errors go to stdout as ping prints them, local errors to stderr."""
    if error.local:
        return f"ping: {error.message}", True
    return f"{_ping_stamp(error.timestamp, timestamps)}From {_ping_who(error.reporter, error.reporter_name)} icmp_seq={error.seq} {error.message}", False


def _ping_loss(stats: PingStats) -> str:
    import struct

    as_float = struct.unpack("f", struct.pack("f", stats.loss_percent))[0]  # iputils prints a C float
    return f"{as_float:g}"


def ping_summary(stats: PingStats) -> list[str]:
    """The blank line, ``--- host ping statistics ---``, the counts, and the rtt line (ping's finish())."""
    counts = f"{stats.transmitted} packets transmitted, {stats.received} received"
    if stats.duplicates:
        counts += f", +{stats.duplicates} duplicates"
    if stats.errors:
        counts += f", +{stats.errors} errors"
    if stats.transmitted:
        counts += f", {_ping_loss(stats)}% packet loss, time {stats.time_ms}ms"
    tail = []
    if stats.rtt_min_us is not None and stats.received:
        tail.append("rtt min/avg/max/mdev = " + "/".join(
            _ping_us3(v) for v in (stats.rtt_min_us, stats.rtt_avg_us, stats.rtt_max_us, stats.rtt_mdev_us)) + " ms")
    if stats.pipe > 1:
        tail.append(f"pipe {stats.pipe}")
    return ["", f"--- {safe(stats.host)} ping statistics ---", counts, ", ".join(tail)]


def ping_status(stats: PingStats) -> str:
    """SIGQUIT's running line: ``N/M packets, P% loss, min/avg/ewma/max = a/b/c/d ms``."""
    loss = (stats.transmitted - stats.received) * 100 // stats.transmitted if stats.transmitted else 0
    line = f"{stats.received}/{stats.transmitted} packets, {loss}% loss"
    if stats.received and stats.rtt_min_us is not None:
        line += ", min/avg/ewma/max = " + "/".join(
            _ping_us3(v) for v in (stats.rtt_min_us, stats.rtt_avg_us, stats.rtt_ewma_us, stats.rtt_max_us)) + " ms"
    return line


def ping_json(event: PingReply | PingError | PingStats) -> str:
    """One JSON object per reply, per error, and for the summary (``type`` says which)."""
    if isinstance(event, PingReply):
        return json_line({"type": "reply", "seq": event.seq, "address": event.address, "hostname": event.hostname,
                          "bytes": event.bytes, "ttl": event.ttl,
                          "rtt_ms": None if event.rtt_ms is None else round(event.rtt_ms, 6),
                          "duplicate": event.duplicate, "truncated": event.truncated,
                          "timestamp": round(event.timestamp, 6)})
    if isinstance(event, PingError):
        return json_line({"type": "error", "seq": event.seq, "kind": event.kind, "message": event.message,
                          "reporter": event.reporter, "icmp_type": event.icmp_type, "icmp_code": event.icmp_code,
                          "mtu": event.mtu, "local": event.local, "timestamp": round(event.timestamp, 6)})
    rtt = event.rtt_ms
    return json_line({"type": "summary", "host": event.host, "address": event.address,
                      "transmitted": event.transmitted, "received": event.received,
                      "duplicates": event.duplicates, "errors": event.errors,
                      "loss_percent": round(event.loss_percent, 4), "time_ms": event.time_ms,
                      "rtt_min_ms": rtt["min"], "rtt_avg_ms": rtt["avg"], "rtt_max_ms": rtt["max"],
                      "rtt_mdev_ms": rtt["mdev"], "pipe": event.pipe})
