"""The only module that formats for humans (and for JSON/CSV consumers).

Library code returns dataclasses; the CLI hands them here. Text that came off
the wire goes through ``safe()`` first so that packet bytes never reach the
terminal raw.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
import time as _time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from recon.decode import LINKTYPES, icmp_name, quoted
from recon.models import (
    CraftedPacket,
    CraftField,
    CraftResult,
    DecodedPacket,
    DeviceState,
    Event,
    HookFailed,
    IPHeader,
    IPOption,
    KernelRewrite,
    LabInfo,
    PingError,
    PingPending,
    PingReply,
    PingSent,
    PingStart,
    PingStats,
    StateSetAside,
    TargetWarning,
    WatchNote,
    WatchRound,
    as_dict,
)
from recon.protocols import proto_name

if TYPE_CHECKING:
    from recon.models import HostResult, ShardStats, SweepResult, SweepStats, WorkerStats

__all__ = ["Console", "console", "csv_rows", "err", "error_line", "json_line", "json_safe", "lab_status", "out", "safe", "stderr",
           "stdout", "table"]

# Characters that must never reach a terminal raw: C0 controls, DEL, C1 controls (U+0080..U+009F:
# CSI U+009B, OSC U+009D and ST U+009C drive terminals as ESC [, ESC ] and ESC backslash do), the bidi
# embedding/override/isolate controls and marks (they reorder what follows: "Trojan Source"), and
# the Unicode line/paragraph separators.
_UNSAFE = [*range(0x20), 0x7F, *range(0x80, 0xA0), 0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F),
           *range(0x2066, 0x206A), 0x2028, 0x2029]
_CONTROL = {c: (f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in _UNSAFE}
_CONTROL.update({9: "\\t", 10: "\\n", 13: "\\r"})
# In JSON the same characters become \\uXXXX escapes, which keeps the line valid JSON (they can
# only occur inside strings, so escaping the encoded text is the same as escaping each string).
_JSON_CONTROL = {c: f"\\u{c:04x}" for c in _UNSAFE if c >= 0x7F}


def safe(text: object) -> str:
    """The one sanitiser for text of outside origin (packets, names, files) in table, CSV and line
    output: control characters (C0, DEL, C1), bidi controls and line separators become visible
    escapes (``\\x1b``, ``\\x9b``, ``\\u202e``), so no byte off the wire can drive the terminal."""
    text = text if isinstance(text, str) else str(text)
    if text.isprintable():  # the common case, at C speed: none of the above is printable
        return text
    return text.translate(_CONTROL)


def json_safe(encoded: str) -> str:
    """Encoded JSON text with DEL, C1 and bidi controls as ``\\uXXXX`` (json escapes C0 itself)."""
    if encoded.isascii() and "\x7f" not in encoded:
        return encoded
    return encoded.translate(_JSON_CONTROL)


@dataclass(frozen=True)
class Console:
    """Where the CLI's output goes. ``None`` means the process's ``sys.stdout`` / ``sys.stderr``,
    looked up at each write (so ``python -m recon`` and pytest's capture behave as before)."""

    stdout: TextIO | None = None
    stderr: TextIO | None = None


_PROCESS = Console()  # the process's own streams
_CONSOLE: ContextVar[Console] = ContextVar("recon_console", default=_PROCESS)


@contextlib.contextmanager
def console(target: Console) -> Iterator[Console]:
    """Send everything render writes to ``target`` for the block (``cli.run`` uses this, so tests
    run the CLI in-process and read what it printed)."""
    token = _CONSOLE.set(target)
    try:
        yield target
    finally:
        _CONSOLE.reset(token)


def stdout() -> TextIO:
    """The stream for results: the current Console's stdout, else ``sys.stdout``."""
    return _CONSOLE.get().stdout or sys.stdout


def stderr() -> TextIO:
    """The stream for diagnostics and summaries: the current Console's stderr, else ``sys.stderr``."""
    return _CONSOLE.get().stderr or sys.stderr


def out(line: str = "", stream: TextIO | None = None) -> None:
    print(line, file=stream or stdout(), flush=True)


# The prefixes err() colours: errors red, warnings and hints yellow (ANSI SGR).
_COLOURED = (("recon: error:", "\033[1;31m"), ("recon: warning:", "\033[33m"), ("warning:", "\033[33m"), ("hint:", "\033[33m"))


def colour(stream: TextIO) -> bool:
    """Colour only on a terminal, never when NO_COLOR is set to anything but "" (https://no-color.org), nor for
    TERM=dumb; so pipes, files, CI logs and tests get plain text."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False


def err(line: str) -> None:
    stream = stderr()
    if line[:1] in "rwh" and colour(stream):
        for prefix, sgr in _COLOURED:
            if line.startswith(prefix):
                line = f"{sgr}{prefix}\033[0m{line[len(prefix):]}"
                break
    print(line, file=stream, flush=True)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A "simple" table; every string cell goes through ``safe()``."""
    from tabulate import tabulate

    cells = [[_cell(v) for v in row] for row in rows]
    text: str = tabulate(cells, headers=list(headers), tablefmt="simple", disable_numparse=True)
    return text


def json_line(obj: Mapping[str, Any]) -> str:
    return json_safe(json.dumps(obj, separators=(", ", ": "), ensure_ascii=False))


def _cell(v: Any) -> Any:
    """A table or CSV cell: None as empty, strings through ``safe()``, numbers as they are."""
    return "" if v is None else safe(v) if isinstance(v, str) else v


def csv_rows(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], stream: TextIO | None = None) -> None:
    writer = csv.DictWriter(stream or stdout(), fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})


def error_line(exc: BaseException) -> str:
    return f"recon: error: {safe(str(exc))}"


def target_warning(warning: TargetWarning) -> str:
    """A skipped target (a name that does not resolve), as one stderr line; the rest is still swept."""
    return f"recon: warning: skipping {safe(repr(warning.target))}: {safe(warning.reason)}"


# --- lab and demo -------------------------------------------------------------------------


def demo_step(title: str, argv: Sequence[str]) -> str:
    import shlex

    return f"\n== {title}\n$ {shlex.join(argv)}"


def lab_status(info: LabInfo) -> str:
    lines = [
        f"lab {info.name}: scanner namespace {info.scanner_ns} ({info.scanner_ipv4}, {info.scanner_ipv6}, no default route)",
        f"run inside it: recon lab exec -- <command>   (or: ip netns exec {info.scanner_ns} <command>)",
        "",
        table(
            [[h.hostname, h.ipv4, h.ipv6, h.ipv6_ll, h.mac, h.vendor, h.netns] for h in info.hosts]
            + [["router.lab", info.router_ipv4, info.router_ipv6, info.router_ipv6_ll, info.router_mac, "Cisco", info.router_ns]],
            ["host", "ipv4", "ipv6", "link-local", "mac", "vendor", "namespace"],
        ),
        "",
        table(
            [[r.name, r.cidr, "all" if r.up is None else len(r.up), " ".join(r.answers), r.note] for r in info.ranges]
            + [["unreachable", info.unreachable_cidr, 0, "", "the router answers 'host unreachable'"]],
            ["range", "cidr", "up", "answers", "note"],
        ),
        "",
        f"impairments: loss {info.loss:g}% toward the scanner; wan link delay {info.delay_ms:g} ms, jitter {info.jitter_ms:g} ms",
        f"namespaces: {' '.join(info.namespaces)}",
    ]
    return "\n".join(lines)


# --- craft ------------------------------------------------------------------------------


def _craft_offset(f: CraftField) -> str:
    span = str(f.offset) if f.length == 1 else f"{f.offset}-{f.offset + f.length - 1}"
    return f"{span} (bits {f.bits})" if f.bits else span


def _craft_value(f: CraftField, packet: CraftedPacket) -> str:
    """A field's value; a checksum field also says whether it is right: ``0xb1e6 (ok)``."""
    check = next((c for c in packet.checksums if c.offset == f.offset and f.name.endswith("checksum")), None)
    if check is None:
        return f.value
    return f"{f.value} (ok)" if check.ok else f"{f.value} (BAD, correct 0x{check.correct:04x})"


def craft_table(packet: CraftedPacket) -> str:
    """The field table: layer, name, value, hex, byte offset (bits 0 = most significant)."""
    rows = [[f.layer, f.name, safe(_craft_value(f, packet)), f.hex if len(f.hex) <= 34 else f.hex[:32] + "…", _craft_offset(f)]
            for f in packet.fields]
    return table(rows, ["layer", "field", "value", "hex", "offset"])


def hexdump(data: bytes, *, indent: str = "", halves: bool = True) -> str:
    """Offsets, 16 bytes a line (in two groups of 8 with ``halves``), printable ASCII at the right."""
    lines = []
    for at in range(0, len(data), 16):
        chunk = data[at:at + 16]
        hexes = f"{chunk[:8].hex(' '):<23}  {chunk[8:].hex(' '):<23}" if halves else f"{chunk.hex(' '):<47}"
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{indent}{at:04x}  {hexes}  {text}")
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


def craft_rewrite(r: KernelRewrite) -> str:
    """``total length 28 -> 1400``, ``id 0 -> chosen by the kernel``, ``header checksum 0xdead -> 0xeea6``."""
    if r.field == "header checksum":
        before = f"0x{r.before:04x}" if isinstance(r.before, int) else r.before
        return f"{r.field} {before} -> " + ("recomputed" if r.after is None else f"0x{r.after:04x}")
    if r.after is not None:
        return f"{r.field} {r.before} -> {r.after}"
    return f"{r.field} {r.before} -> " + ("the route's source address" if r.field == "source" else "chosen by the kernel")


def _rewrites(rewrites: Sequence[KernelRewrite]) -> str:
    return "; ".join(craft_rewrite(r) for r in rewrites)


def craft_reason(result: CraftResult) -> str:
    """Why and how the packet went out the way it did."""
    if result.via == "none":
        return "dry run: nothing sent"
    if result.via == "raw":
        if result.requested == "auto" or not result.rewrites:
            return "IPPROTO_RAW socket with IP_HDRINCL"
        return f"IPPROTO_RAW socket with IP_HDRINCL (the kernel changed: {_rewrites(result.rewrites)})"
    if result.via == "l2":
        if result.requested == "auto":
            return f"Linux rewrites IP_HDRINCL packets ({_rewrites(result.rewrites)}), so sent at layer 2 (AF_PACKET), bytes as built"
        return "AF_PACKET with a hand-built Ethernet header, bytes as built"
    return "Scapy send() (a packet socket on Linux), bytes as built"


def craft_summary(result: CraftResult) -> list[str]:
    """Lines for stderr: what was sent and how, and what the kernel changes."""
    p = result.packet
    lines = []
    if result.via == "none":
        lines.append(f"dry run: nothing sent ({len(p.data)} bytes built)")
        if result.kernel_rewrites:
            lines.append("note: through IP_HDRINCL Linux would change " + _rewrites(result.kernel_rewrites)
                         + " (so 'auto' sends this at layer 2)")
    else:
        where = f" on {safe(result.interface)} to {result.next_hop_mac}" if result.interface else ""
        plural = "" if result.sent == 1 else "s"
        stopped = " (interrupted)" if result.interrupted else ""
        lines.append(f"sent {result.sent} packet{plural}{stopped} to {p.dst} via {result.via}{where}: {craft_reason(result)}")
        if result.via == "raw" and result.kernel_rewrites:
            lines.append("warning: the wire differs from the table: the kernel changed " + _rewrites(result.kernel_rewrites)
                         + " (use --via l2 to send the bytes as built)")
    if result.pcap:
        lines.append(f"saved {result.pcap_written} packet(s) to {safe(result.pcap)}")
    return lines


def craft_json(result: CraftResult) -> str:
    p = result.packet
    return json_line({
        "src": p.src, "dst": p.dst, "proto": p.proto, "length": len(p.data), "header_length": p.header_length,
        "packet": p.data.hex(),
        "fields": [
            {"layer": f.layer, "name": f.name, "value": _craft_value(f, p), "number": f.number, "hex": f.hex,
             "offset": f.offset, "length": f.length, "bits": f.bits}
            for f in p.fields
        ],
        "checksums": [{"layer": c.layer, "offset": c.offset, "value": c.value, "correct": c.correct, "ok": c.ok} for c in p.checksums],
        "via": result.via, "sent": result.sent, "reason": craft_reason(result),
        "kernel_rewrites": [craft_rewrite(r) for r in result.kernel_rewrites],
        "interface": result.interface, "next_hop_mac": result.next_hop_mac, "pcap": result.pcap,
        "interrupted": result.interrupted,
    })


# --- ping ---------------------------------------------------------------------------------
# Lines shaped exactly like iputils ping (ping_common.c / ping.c / ping6_common.c).



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


def _ping_rtts(values: tuple[int | None, ...]) -> str | None:
    """``a/b/c/d`` (ms, 3 decimals), or None while a value is missing (nothing received yet)."""
    parts = []
    for us in values:
        if us is None:
            return None
        parts.append(_ping_us3(us))
    return "/".join(parts)


def _ping_who(address: str | None, name: str | None) -> str:
    return f"{safe(name)} ({address})" if name else str(address)


def _ping_stamp(timestamp: float, show: bool) -> str:
    if not show:
        return ""
    micros = round(timestamp * 1_000_000)
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


def ping_reply(reply: PingReply, *, timestamps: bool = False, mark_duplicate: bool = True) -> str:
    """One reply line; ``mark_duplicate`` False for multicast targets (iputils marks DUP! there only with -v)."""
    who = _ping_who(reply.address, reply.hostname)
    line = f"{_ping_stamp(reply.timestamp, timestamps)}{reply.bytes} bytes from {who}: icmp_seq={reply.seq}"
    if reply.ttl is not None:
        line += f" ttl={reply.ttl}"
    if reply.truncated:
        return line + " (truncated)"
    if reply.rtt_us is not None:
        line += f" time={_ping_ms(reply.rtt_us)} ms"
    if reply.duplicate and mark_duplicate:
        line += " (DUP!)"
    return line


_UNREACH4 = {
    0: "Destination Net Unreachable",
    1: "Destination Host Unreachable",
    2: "Destination Protocol Unreachable",
    3: "Destination Port Unreachable",
    5: "Source Route Failed",
    6: "Destination Net Unknown",
    7: "Destination Host Unknown",
    8: "Source Host Isolated",
    9: "Destination Net Prohibited",
    10: "Destination Host Prohibited",
    11: "Destination Net Unreachable for Type of Service",
    12: "Destination Host Unreachable for Type of Service",
    13: "Packet filtered",
    14: "Precedence Violation",
    15: "Precedence Cutoff",
}
_UNREACH6 = {0: "No route", 1: "Administratively prohibited", 2: "Beyond scope of source address",
             3: "Address unreachable", 4: "Port unreachable"}


def _icmp4_words(t: int, code: int, info: int | None, mtu: int | None) -> str:
    """ping.c pr_icmph() wording for an ICMPv4 error."""
    if t == 3:
        return f"Frag needed and DF set (mtu = {mtu})" if code == 4 else _UNREACH4.get(code, f"Dest Unreachable, Bad Code: {code}")
    if t == 11:
        return "Time to live exceeded" if code == 0 else "Frag reassembly time exceeded"
    if t == 4:
        return "Source Quench"
    if t == 5:
        return "Redirect"
    if t == 12:
        return f"Parameter problem: pointer = {info}"
    return f"Bad ICMP type: {t}"


def _icmp6_words(t: int, code: int, mtu: int | None) -> str:
    """ping6_common.c print_icmp() wording for an ICMPv6 error."""
    if t == 1:
        return "Destination unreachable: " + _UNREACH6.get(code, f"Unknown code {code}")
    if t == 2:
        return f"Packet too big: mtu={mtu}"
    if t == 3:
        return "Time exceeded: " + ("Hop limit" if code == 0 else "Defragmentation failure")
    if t == 4:
        return f"Parameter problem: code {code}"
    return f"Unknown icmp type: {t}"


def ping_error_message(error: PingError) -> str:
    """What iputils says about an error: "Time to live exceeded", "local error: message too long, mtu=1500"."""
    if error.local:
        if error.kind == "message-too-long":
            sep = ": " if error.version == 6 else "="
            return "local error: message too long" + (f", mtu{sep}{error.mtu}" if error.mtu else "")
        return f"local error: {error.detail or error.kind}"
    t, code = error.icmp_type or 0, error.icmp_code or 0
    return _icmp6_words(t, code, error.mtu) if error.version == 6 else _icmp4_words(t, code, error.info, error.mtu)


def ping_error(error: PingError, *, timestamps: bool = False) -> tuple[str, bool]:
    """(line, to_stderr): ICMP errors go to stdout as ping prints them, local errors to stderr."""
    message = ping_error_message(error)
    if error.local:
        return f"ping: {message}", True
    who = _ping_who(error.reporter, error.reporter_name)
    return f"{_ping_stamp(error.timestamp, timestamps)}From {who} icmp_seq={error.seq} {message}", False


def ping_pattern(start: PingStart) -> str | None:
    """ping -p prints ``PATTERN: 0x...`` before anything else."""
    return None if start.pattern is None else f"PATTERN: 0x{start.pattern.hex()}"


def ping_pending(pending: PingPending, *, timestamps: bool = False) -> str:
    """ping -O: ``no answer yet for icmp_seq=N``."""
    return f"{_ping_stamp(pending.timestamp, timestamps)}no answer yet for icmp_seq={pending.seq}"


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
    rtts = _ping_rtts((stats.rtt_min_us, stats.rtt_avg_us, stats.rtt_max_us, stats.rtt_mdev_us))
    if rtts is not None and stats.received:
        tail.append(f"rtt min/avg/max/mdev = {rtts} ms")
    if stats.pipe > 1:
        tail.append(f"pipe {stats.pipe}")
    if stats.received and stats.interval_us == 0 and stats.transmitted > 1 and stats.time_us is not None:
        ipg = stats.time_us // (stats.transmitted - 1)
        ewma = stats.rtt_ewma_us or 0
        tail.append(f"ipg/ewma {ipg // 1000}.{ipg % 1000:03d}/{ewma // 1000}.{ewma % 1000:03d} ms")
    return ["", f"--- {safe(stats.host)} ping statistics ---", counts, ", ".join(tail)]


def ping_status(stats: PingStats) -> str:
    """SIGQUIT's running line: ``N/M packets, P% loss, min/avg/ewma/max = a/b/c/d ms``."""
    loss = (stats.transmitted - stats.received) * 100 // stats.transmitted if stats.transmitted else 0
    line = f"{stats.received}/{stats.transmitted} packets, {loss}% loss"
    rtts = _ping_rtts((stats.rtt_min_us, stats.rtt_avg_us, stats.rtt_ewma_us, stats.rtt_max_us))
    if stats.received and rtts is not None:
        line += f", min/avg/ewma/max = {rtts} ms"
    return line


def ping_json(event: PingReply | PingError | PingPending | PingStats) -> str:
    """One JSON object per reply, per error, per -O notice and for the summary (``type`` says which)."""
    if isinstance(event, PingPending):
        return json_line({"type": "pending", "seq": event.seq, "timestamp": round(event.timestamp, 6)})
    if isinstance(event, PingReply):
        return json_line({"type": "reply", "seq": event.seq, "address": event.address, "hostname": event.hostname,
                          "bytes": event.bytes, "ttl": event.ttl,
                          "rtt_ms": None if event.rtt_ms is None else round(event.rtt_ms, 6),
                          "duplicate": event.duplicate, "truncated": event.truncated,
                          "timestamp": round(event.timestamp, 6)})
    if isinstance(event, PingError):
        return json_line({"type": "error", "seq": event.seq, "kind": event.kind, "message": ping_error_message(event),
                          "reporter": event.reporter, "icmp_type": event.icmp_type, "icmp_code": event.icmp_code,
                          "mtu": event.mtu, "local": event.local, "timestamp": round(event.timestamp, 6)})
    rtt = event.rtt_ms
    return json_line({"type": "summary", "host": event.host, "address": event.address,
                      "transmitted": event.transmitted, "received": event.received,
                      "duplicates": event.duplicates, "errors": event.errors,
                      "loss_percent": round(event.loss_percent, 4), "time_ms": event.time_ms,
                      "rtt_min_ms": rtt["min"], "rtt_avg_ms": rtt["avg"], "rtt_max_ms": rtt["max"],
                      "rtt_mdev_ms": rtt["mdev"], "pipe": event.pipe})


def put(text: str) -> None:
    """Write ``text`` to stdout as it is (no newline) and flush: ping -f's dots and backspaces."""
    stream = stdout()
    stream.write(text)
    stream.flush()


class PingPrinter:
    """Prints a ping session's events as iputils ping does, in its modes (-q, -D, -f, -a, --json)."""

    def __init__(self, *, as_json: bool = False, quiet: bool = False, timestamps: bool = False,
                 flood: bool = False, audible: bool = False) -> None:
        self.as_json, self.quiet, self.timestamps = as_json, quiet, timestamps
        self.flood, self.bell = flood, "\a" if audible else ""
        self.multicast = False

    def start(self, start: PingStart) -> None:
        self.multicast = start.multicast
        if self.as_json:
            return
        pattern = ping_pattern(start)
        if pattern is not None and not self.quiet:
            out(pattern)
        out(ping_header(start))

    def event(self, event: PingReply | PingError | PingPending | PingSent | PingStats) -> PingStats | None:
        """Print one event; the final statistics are returned once printed."""
        if isinstance(event, PingSent):
            if not self.quiet and not self.as_json:
                put(".")
            return None
        if self.as_json:
            if not isinstance(event, PingStats) or event.final:
                out(ping_json(event))
        elif isinstance(event, PingReply):
            self._reply(event)
        elif isinstance(event, PingError):
            self._error(event)
        elif isinstance(event, PingPending):
            out(ping_pending(event, timestamps=self.timestamps))  # iputils prints it even with -q
        elif not event.final:
            err(ping_status(event))
        else:
            out("\n".join(ping_summary(event)))
        return event if isinstance(event, PingStats) and event.final else None

    def _reply(self, reply: PingReply) -> None:
        if self.quiet:
            return
        if self.flood:
            put("\b \b" + self.bell)
        else:
            out(ping_reply(reply, timestamps=self.timestamps, mark_duplicate=not self.multicast) + self.bell)

    def _error(self, error: PingError) -> None:
        if self.quiet:
            return
        if self.flood:
            put("E" if error.local else "\bE")
            return
        line, to_stderr = ping_error(error, timestamps=self.timestamps)
        err(line) if to_stderr else out(line)


# --- sniff ------------------------------------------------------------------------------


_ETHERTYPES = {0x0806: "ARP", 0x8035: "RARP", 0x88CC: "LLDP", 0x8863: "PPPoE-discovery", 0x8864: "PPPoE",
               0x8847: "MPLS", 0x88E5: "MACsec", 0x888E: "EAPOL", 0x0842: "Wake-on-LAN"}
_DSCP = {0: "CS0", 8: "CS1", 10: "AF11", 12: "AF12", 14: "AF13", 16: "CS2", 18: "AF21", 20: "AF22", 22: "AF23",
         24: "CS3", 26: "AF31", 28: "AF32", 30: "AF33", 32: "CS4", 34: "AF41", 36: "AF42", 38: "AF43", 40: "CS5",
         44: "VOICE-ADMIT", 46: "EF", 48: "CS6", 56: "CS7"}
_ECN = ("Not-ECT", "ECT(1)", "ECT(0)", "CE")
_FLAG_TEXT = ("", "MF", "DF", "DF MF", "RF", "RF MF", "RF DF", "RF DF MF")
_FLAG_JSON = ("[]", '["MF"]', '["DF"]', '["DF", "MF"]', '["RF"]', '["RF", "MF"]', '["RF", "DF"]', '["RF", "DF", "MF"]')
_clock: list[object] = [-1, ""]


def _clock_text(time_ns: int) -> str:
    """Local wall-clock time HH:MM:SS.ffffff (tcpdump's default), the seconds part cached."""
    sec, ns = divmod(time_ns, 1_000_000_000)
    if sec != _clock[0]:
        _clock[0], _clock[1] = sec, _time.strftime("%H:%M:%S", _time.localtime(sec))
    return f"{_clock[1]}.{ns // 1000:06d}"


_l4_cache: dict[tuple[int, int, int | None, int | None], str] = {}


def _l4_text(pkt: DecodedPacket, proto: int, version: int) -> str:
    key = (version, proto, pkt.icmp_type, pkt.icmp_code)
    text = _l4_cache.get(key)
    if text is None:
        if pkt.icmp_type is not None:
            text = f"{proto_name(proto)} {icmp_name(pkt.icmp_type, pkt.icmp_code or 0, version)}"
        else:
            text = proto_name(proto)
        _l4_cache[key] = text
    return text


def sniff_line(pkt: DecodedPacket) -> str:
    """One line: time, src → dst, protocol, ttl, length, id, flags, offset, checksum; ICMP names or ports."""
    ip = pkt.ip
    when = _clock_text(pkt.time_ns)
    if ip is None:
        what = _ETHERTYPES.get(pkt.ethertype, f"ethertype 0x{pkt.ethertype:04x}") if pkt.ethertype is not None else "frame"
        line = f"{when} non-IP {what} {pkt.caplen} bytes"
        rest = [p for p in pkt.problems if not p.startswith("non-IP")]
        return line + (" [" + safe("; ".join(rest)) + "]" if rest else "")
    elif type(ip) is IPHeader:
        src, dst = ip.src, ip.dst
        if pkt.sport is not None:
            src, dst = f"{src}:{pkt.sport}", f"{dst}:{pkt.dport}"
        ok = "ok" if ip.checksum_ok else ("BAD" if ip.checksum_ok is False else "?")
        l4 = _l4_text(pkt, ip.proto, 4)
        if pkt.icmp_id is not None:
            l4 = f"{l4} id {pkt.icmp_id} seq {pkt.icmp_seq}"
        line = (f"{when} {src} → {dst} {l4} ttl {ip.ttl} len {ip.total_length} id {ip.id}"
                f" flags [{_FLAG_TEXT[ip.flags]}] off {ip.frag_offset * 8} cksum {ok}")
    else:
        src, dst = ip.src, ip.dst
        if pkt.sport is not None:
            src, dst = f"[{src}]:{pkt.sport}", f"[{dst}]:{pkt.dport}"
        upper = ip.upper_proto if ip.upper_proto is not None else ip.next_header
        l4 = _l4_text(pkt, upper, 6)
        if pkt.icmp_id is not None:
            l4 = f"{l4} id {pkt.icmp_id} seq {pkt.icmp_seq}"
        line = (f"{when} {src} → {dst} {l4} hlim {ip.hop_limit} plen {ip.payload_length} flow 0x{ip.flow_label:05x}")
        if ip.frag_offset is not None:
            line += f" frag id {ip.frag_id} off {ip.frag_offset * 8}{' MF' if ip.mf else ''}"
    if pkt.problems:
        line += " [" + safe("; ".join(pkt.problems)) + "]"
    return line


_SNIFF_UNREACH4 = {0: "net {dst} unreachable", 1: "host {dst} unreachable", 2: "{dst} protocol {proto} unreachable",
                   3: "{dst} {l4} port {dport} unreachable", 4: "{dst} unreachable - need to frag (mtu {mtu})",
                   9: "net {dst} unreachable - admin prohibited", 10: "host {dst} unreachable - admin prohibited",
                   13: "{dst} unreachable - admin prohibited filter"}


def _icmp_error_text(pkt: DecodedPacket, inner: DecodedPacket, version: int) -> str:
    """What an ICMP error says about the datagram it quotes, in tcpdump's words ("host 198.18.3.7 unreachable")."""
    ip = inner.ip
    dst = ip.dst if ip is not None else "?"
    upper = (ip.proto if isinstance(ip, IPHeader) else ip.upper_proto) if ip is not None else None
    at = (pkt.l4_offset or 0) + 4
    rest = int.from_bytes(pkt.data[at:at + 4], "big") if len(pkt.data) >= at + 4 else 0
    kind, code = pkt.icmp_type, pkt.icmp_code or 0
    if version == 4 and kind == 3:
        return _SNIFF_UNREACH4.get(code, "{dst} unreachable").format(
            dst=dst, proto=upper, l4=proto_name(upper or 0).lower(), dport=inner.dport, mtu=rest & 0xFFFF)
    if version == 4 and kind == 5:
        return f"redirect {dst} to host {'.'.join(str(b) for b in rest.to_bytes(4, 'big'))}"
    if version == 6 and kind == 1:
        return f"{dst} unreachable ({icmp_name(1, code, 6)})"
    if version == 6 and kind == 2:
        return f"packet too big for {dst}, mtu {rest}"
    if kind in ((11, 3)[version == 6],):
        return "time exceeded in-transit" if code == 0 else "reassembly time exceeded"
    return f"{icmp_name(kind or 0, code, version)} about {dst}"


def _option_text(opt: IPOption) -> str:
    if opt.kind in (0, 1):
        return opt.name
    if opt.kind in (7, 131, 137):
        return f"{opt.name} (len {opt.length}, ptr {opt.pointer}): {', '.join(opt.addresses) or '-'}"
    if opt.kind == 68:
        kinds = {0: "timestamps", 1: "address+timestamp", 3: "prespecified"}
        if opt.ts_flag == 0:
            entries = ", ".join(str(t) for t in opt.timestamps)
        else:
            entries = ", ".join(f"{a}@{t}" for a, t in zip(opt.addresses, opt.timestamps, strict=False))
        return (f"TS (len {opt.length}, ptr {opt.pointer}, overflow {opt.overflow}, flag {opt.ts_flag}"
                f" {kinds.get(opt.ts_flag or 0, '?')}): {entries or '-'}")
    if opt.kind == 148 and len(opt.data) == 2:
        return f"RA (len {opt.length}): {int.from_bytes(opt.data, 'big')}"
    return f"{safe(opt.name)} (len {opt.length}): {opt.data.hex(' ') or '-'}"


def sniff_verbose(pkt: DecodedPacket) -> str:
    """Every header field, one group per line, options by name, then the problems."""
    ip = pkt.ip
    head = f"{_clock_text(pkt.time_ns)} frame {pkt.frame} {LINKTYPES.get(pkt.linktype, pkt.linktype)}"
    if pkt.interface:
        head += f" on {safe(pkt.interface)}"
    head += f", {pkt.caplen} bytes captured" + (f" of {pkt.wirelen}" if pkt.wirelen != pkt.caplen else "")
    if pkt.vlans:
        head += f", vlan {' '.join(str(v) for v in pkt.vlans)}"
    lines = [head]
    if ip is None:
        lines.append(f"  {sniff_line(pkt).split(' ', 1)[1]}")
    elif type(ip) is IPHeader:
        ok = "ok" if ip.checksum_ok else ("BAD" if ip.checksum_ok is False else "unverified")
        lines += [
            f"  IPv4 version {ip.version}, ihl {ip.ihl} ({ip.ihl * 4} bytes), dscp {ip.dscp} ({_DSCP.get(ip.dscp, '-')}),"
            f" ecn {ip.ecn} ({_ECN[ip.ecn]}), total length {ip.total_length}, id {ip.id} (0x{ip.id:04x})",
            f"  flags 0x{ip.flags:x} [{_FLAG_TEXT[ip.flags] or 'none'}], fragment offset {ip.frag_offset * 8},"
            f" ttl {ip.ttl}, protocol {ip.proto} ({proto_name(ip.proto)}), checksum 0x{ip.checksum:04x} ({ok})",
            f"  src {ip.src}, dst {ip.dst}",
        ]
        if ip.options:
            lines.append("  options: " + "; ".join(_option_text(o) for o in ip.options))
    else:
        lines += [
            f"  IPv6 version {ip.version}, traffic class 0x{ip.traffic_class:02x} (dscp {ip.dscp} {_DSCP.get(ip.dscp, '-')},"
            f" ecn {ip.ecn} {_ECN[ip.ecn]}), flow label 0x{ip.flow_label:05x}",
            f"  payload length {ip.payload_length}, next header {ip.next_header} ({proto_name(ip.next_header)}),"
            f" hop limit {ip.hop_limit}",
            f"  src {ip.src}, dst {ip.dst}",
        ]
        if ip.extensions:
            lines.append("  extension headers: " + ", ".join(ip.extensions)
                         + (f" (fragment id {ip.frag_id}, offset {(ip.frag_offset or 0) * 8}{', more' if ip.mf else ''})"
                            if ip.frag_id is not None else ""))
    if ip is not None:
        version = ip.version if ip.version in (4, 6) else 4
        if pkt.icmp_type is not None:
            lines.append(f"  {'ICMP' if version == 4 else 'ICMPv6'} {icmp_name(pkt.icmp_type, pkt.icmp_code or 0, version)}"
                         f" (type {pkt.icmp_type}, code {pkt.icmp_code})"
                         + (f", id {pkt.icmp_id}, seq {pkt.icmp_seq}" if pkt.icmp_id is not None else ""))
            inner = quoted(pkt)
            if inner is not None:
                lines.append(f"  {_icmp_error_text(pkt, inner, version)}; quoted: {sniff_line(inner).split(' ', 1)[1]}")
        elif pkt.sport is not None:
            upper = ip.proto if type(ip) is IPHeader else ip.upper_proto
            lines.append(f"  {proto_name(upper or 0)} sport {pkt.sport}, dport {pkt.dport}")
    if pkt.problems:
        lines.append("  problems: " + safe("; ".join(pkt.problems)))
    return "\n".join(lines)


_LINK_ETHERTYPES = {0x0800: "IPv4", 0x86DD: "IPv6", 0x8100: "802.1Q", 0x88A8: "802.1ad"} | _ETHERTYPES
_SLL_DIRECTION = {0: "In", 1: "B", 2: "M", 3: "P", 4: "Out"}  # tcpdump's names for the packet type


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _ethertype(value: int) -> str:
    return f"ethertype {_LINK_ETHERTYPES.get(value, 'Unknown')} (0x{value:04x})"


def sniff_link(pkt: DecodedPacket) -> str:
    """The link layer as ``tcpdump -e`` shows it: MACs, then the ethertype, then the length on the wire."""
    data, lt = pkt.data, pkt.linktype
    if lt == 1 and len(data) >= 14:
        text = f"{_mac(data[6:12])} > {_mac(data[0:6])}, {_ethertype(data[12] << 8 | data[13])}"
        if pkt.vlans:
            text += f", vlan {' '.join(str(v) for v in pkt.vlans)}"
    elif lt == 276 and len(data) >= 20:  # Linux SLL2: protocol, ifindex, hatype, packet type, address
        halen = min(data[11], 8)
        where = f"{safe(pkt.interface)} " if pkt.interface else ""
        text = (f"{where}{_SLL_DIRECTION.get(data[10], 'Unknown')} ifindex {int.from_bytes(data[4:8], 'big')} "
                f"{_mac(data[12:12 + halen])} {_ethertype(data[0] << 8 | data[1])}")
    elif lt == 113 and len(data) >= 16:  # Linux SLL: packet type, hatype, address length, address, protocol
        halen = min(data[5], 8)
        text = (f"{_SLL_DIRECTION.get(data[1], 'Unknown')} {_mac(data[6:6 + halen])} "
                f"{_ethertype(data[14] << 8 | data[15])}")
    elif lt in (0, 108) and len(data) >= 4:
        text = "AF " + ("IPv4" if pkt.ethertype == 0x0800 else "IPv6" if pkt.ethertype == 0x86DD else "?")
    elif lt in (12, 14, 101, 228, 229):
        text = "ip"
    else:
        text = f"link type {lt}, truncated link header"
    return f"{text}, length {pkt.wirelen}"


def sniff_formatter(*, verbose: bool = False, link: bool = False) -> Callable[[DecodedPacket], str]:
    """The text form of a packet for ``sniff``: one line (``sniff_line``) or every field (``sniff_verbose``);
    ``link`` adds the link layer (``-e``) after the time, as tcpdump does."""
    base = sniff_verbose if verbose else sniff_line
    if not link:
        return base

    def with_link(pkt: DecodedPacket) -> str:
        text = base(pkt)
        if verbose:  # the link layer gets its own line under the frame line
            head, _, rest = text.partition("\n")
            return f"{head}\n  {sniff_link(pkt)}" + (f"\n{rest}" if rest else "")
        when, _, rest = text.partition(" ")
        return f"{when} {sniff_link(pkt)}: {rest}"

    return with_link


def sniff_hex(pkt: DecodedPacket) -> str:
    """The captured bytes as a hexdump; the text column shows printable ASCII only ('.' for the rest)."""
    return hexdump(pkt.data, indent="  ", halves=False)


def _epoch(time_ns: int) -> str:
    sec, us = divmod(time_ns // 1000, 1_000_000)
    return f"{sec}.{us:06d}"


def sniff_json(pkt: DecodedPacket, hexdump: bool = False) -> str | None:
    """One JSON object per IP packet (None for non-IP frames). ``frag_offset`` is the header field (8-byte units, as tshark shows it)."""
    ip = pkt.ip
    if ip is None:
        return None
    problems = json.dumps(list(pkt.problems)) if pkt.problems else "[]"
    if hexdump:
        problems += f', "hex": "{pkt.data.hex()}"'
    if pkt.icmp_type is not None:
        l4 = f', "icmp_type": {pkt.icmp_type}, "icmp_code": {pkt.icmp_code}'
        if pkt.icmp_id is not None:
            l4 += f', "icmp_id": {pkt.icmp_id}, "icmp_seq": {pkt.icmp_seq}'
    elif pkt.sport is not None:
        l4 = f', "sport": {pkt.sport}, "dport": {pkt.dport}'
    else:
        l4 = ""
    if type(ip) is IPHeader:
        ok = "true" if ip.checksum_ok else ("false" if ip.checksum_ok is False else "null")
        opts = json.dumps([o.name for o in ip.options]) if ip.options else "[]"
        return (f'{{"frame": {pkt.frame}, "time": {_epoch(pkt.time_ns)}, "version": {ip.version}, "ihl": {ip.ihl},'
                f' "tos": {ip.tos}, "len": {ip.total_length}, "id": {ip.id}, "ttl": {ip.ttl}, "proto": {ip.proto},'
                f' "checksum": {ip.checksum}, "checksum_ok": {ok}, "flags": {_FLAG_JSON[ip.flags]},'
                f' "frag_offset": {ip.frag_offset}, "src": "{ip.src}", "dst": "{ip.dst}"{l4},'
                f' "options": {opts}, "problems": {problems}}}')
    frag = "null" if ip.frag_offset is None else ip.frag_offset
    upper = "null" if ip.upper_proto is None else ip.upper_proto
    return (f'{{"frame": {pkt.frame}, "time": {_epoch(pkt.time_ns)}, "version": {ip.version},'
            f' "traffic_class": {ip.traffic_class}, "flow_label": {ip.flow_label}, "payload_length": {ip.payload_length},'
            f' "next_header": {ip.next_header}, "hop_limit": {ip.hop_limit}, "src": "{ip.src}", "dst": "{ip.dst}",'
            f' "proto": {upper}, "extensions": {json.dumps(list(ip.extensions))}, "frag_offset": {frag}{l4},'
            f' "problems": {problems}}}')


def sniff_summary(shown: int, seconds: float, path: str | None = None) -> str:
    line = f"{shown} packet{'s' if shown != 1 else ''} in {seconds:.2f} s"
    if path is not None:
        line += f", recorded to {safe(path)}"
    return line


def sniff_emitter(live: bool) -> Any:
    """A function that prints one block of output; ``None`` flushes. Live output (or a terminal) is
    flushed per packet; replayed output to a file or pipe is written 256 blocks at a time, for speed."""
    stream = stdout()
    if live or stream.isatty():
        def emit_now(text: str | None) -> None:
            if text is not None:
                stream.write(text + "\n")
            stream.flush()

        return emit_now
    pending: list[str] = []
    append = pending.append

    def emit(text: str | None) -> None:
        if text is not None:
            append(text)
            if len(pending) < 256:
                return
        if pending:
            stream.write("\n".join(pending) + "\n")
            pending.clear()
        if text is None:
            stream.flush()

    return emit

# --- sweep ----------------------------------------------------------------------------------


SWEEP_COLUMNS = ("address", "status", "rtt_ms", "ttl", "reply", "mac", "vendor", "hostname", "reporter", "reason")


def sweep_table_lines(hosts: Sequence[HostResult], show_all: bool) -> Iterable[str]:
    """The table's lines: address, rtt, ttl, reason (what answered), mac, vendor, hostname (+ status and reporter
    with ``show_all``), for ``hosts`` in the order given; nothing when there are none."""
    headers, cells = (_ALL_HEADERS, _all_cells) if show_all else (_UP_HEADERS, _up_cells)
    if not hosts:
        return ()
    if len(hosts) > _TABULATE_MAX:
        return _plain_table(hosts, cells, headers)
    return table([cells(h) for h in hosts], headers).split("\n")


_UP_HEADERS = ["address", "rtt", "ttl", "reason", "mac", "vendor", "hostname"]
_ALL_HEADERS = ["address", "status", "rtt", "ttl", "reason", "mac", "vendor", "hostname", "reporter"]


def _up_cells(h: HostResult) -> list[Any]:
    return [h.address, _ms(h.rtt_ms), h.ttl, h.reason, h.mac, safe(h.vendor or ""), safe(h.hostname or "")]


def _all_cells(h: HostResult) -> list[Any]:
    return [h.address, h.status, _ms(h.rtt_ms), h.ttl, h.reason, h.mac, safe(h.vendor or ""), safe(h.hostname or ""),
            h.reporter]


_TABULATE_MAX = 5000


def _plain_table(hosts: Sequence[HostResult], cells: Callable[[HostResult], list[Any]], headers: list[str]) -> Iterator[str]:
    """The same look as tabulate's "simple" format, in linear time for tens of thousands of rows; two passes over
    the hosts (the widths, then the lines as they are written), so the cells are never all held at once."""
    def text(v: Any) -> str:
        return "" if v is None else safe(v)

    widths = [len(h) for h in headers]
    for host in hosts:
        for c, v in enumerate(cells(host)):
            widths[c] = max(widths[c], len(text(v)))
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    yield fmt.format(*headers).rstrip()
    yield "  ".join("-" * w for w in widths)
    for host in hosts:
        yield fmt.format(*map(text, cells(host))).rstrip()


class SweepPrinter:
    """The one sweep renderer. A sweep's hosts as they come (``recon.sweep_iter``, ``cluster.ClusterStream``), in
    the format ``fmt`` (``--json``, ``--csv``, ``--grep``, ``-a/--alive``, or "" for the table): rows are written
    and flushed once per ``add()``, as soon as the hosts are decided; the table is sorted by address
    (``targets.address_key``: IPv4, then IPv6, scope as tiebreak) and printed by ``finish()``, so it holds only the
    rows it shows. ``show_all``: down and unreachable rows too (not with ``-a/--alive``, which lists the hosts that
    are up). ``stream``: stdout of the current ``Console`` unless given."""

    def __init__(self, fmt: str, show_all: bool, progress: SweepProgress | None = None,
                 argv: Sequence[str] = ("recon", "sweep"), stream: TextIO | None = None) -> None:
        self.fmt, self.show_all, self.progress = fmt, show_all and fmt != "-a/--alive", progress
        self.up = 0
        self.rows: list[HostResult] = []
        self.stream = stream or stdout()
        self.encode = json.JSONEncoder(separators=(", ", ": "), ensure_ascii=False).encode
        self.csv = csv.writer(self.stream, lineterminator="\n") if fmt == "--csv" else None
        if self.csv is not None:
            self.csv.writerow(SWEEP_COLUMNS)
        elif fmt == "--grep":
            from recon import __version__

            self.stream.write(f"# recon {__version__} sweep as: {safe(' '.join(argv))}\n")
        self.stream.flush()

    def add(self, hosts: Iterable[HostResult]) -> None:
        shown = [h for h in hosts if (h.status == "up" or self.show_all)]
        self.up += sum(1 for h in shown if h.status == "up")
        if not shown:
            return
        if not self.fmt:
            self.rows += shown
            return
        if self.progress is not None:
            self.progress.finish()  # the bar's line is cleared before rows are printed under it
        if self.csv is not None:
            self.csv.writerows([_cell(v) for v in row] for row in _host_values(shown))
        elif self.fmt == "--json":
            self.stream.write("".join(json_safe(self.encode(row)) + "\n" for row in _host_rows(shown)))
        elif self.fmt == "--grep":
            self.stream.write("".join(sweep_grep_line(h) + "\n" for h in shown))
        else:
            self.stream.write("".join(h.address + "\n" for h in shown))
        self.stream.flush()

    def finish(self, stats: SweepStats) -> None:
        """Print the table (sorted by address; with the reporter and status columns when ``show_all``), or
        ``--grep``'s closing line."""
        if self.fmt == "--grep":
            up = self.up
            self.stream.write(f"# recon done -- {stats.targets} IP addresses ({up} host{'' if up == 1 else 's'} up) "
                              f"scanned in {stats.duration_s:.2f} seconds\n")
            self.stream.flush()
        if self.fmt or not self.rows:
            return
        from recon.targets import address_key

        rows, self.rows = self.rows, []
        rows.sort(key=lambda h: address_key(h.address))
        out_lines(sweep_table_lines(rows, self.show_all), self.stream)


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.2f} ms"


def _host_rows(hosts: Sequence[HostResult]) -> Iterable[dict[str, Any]]:
    """Hosts as plain dicts, fast (dataclasses.asdict deep-copies and costs ~30 µs a host)."""
    return (dict(zip(SWEEP_COLUMNS, values, strict=True)) for values in _host_values(hosts))


def _host_values(hosts: Sequence[HostResult]) -> Iterable[tuple[Any, ...]]:
    from operator import attrgetter

    return map(attrgetter(*SWEEP_COLUMNS), hosts)


_GREP_STATUS = {"up": "Up", "down": "Down", "unreachable": "Unreachable"}


def sweep_grep_line(h: HostResult) -> str:
    """One host for ``--grep``, in nmap's -oG layout: ``Host: ADDR (NAME)`` and ``Status: Up`` first, then
    recon's fields as more TAB-separated ``Key: value`` fields, every one always present (``-`` when
    empty), so ``awk -F'\t'`` columns never shift. Values never contain a TAB (``safe`` escapes it).
    The file starts with ``# recon VERSION sweep as: ARGV`` and ends with ``# recon done -- N IP addresses
    (U hosts up) scanned in S seconds``, as nmap's -oG does (``SweepPrinter``)."""
    rtt = "-" if h.rtt_ms is None else f"{h.rtt_ms:.3f}"
    fields = (f"Host: {h.address} ({safe(h.hostname or '')})", f"Status: {_GREP_STATUS.get(h.status, safe(h.status))}",
              f"Reason: {safe(h.reason or '-')}", f"RTT-ms: {rtt}", f"TTL: {'-' if h.ttl is None else h.ttl}",
              f"MAC: {h.mac or '-'}", f"Vendor: {safe(h.vendor or '-')}", f"Reporter: {h.reporter or '-'}")
    return "\t".join(fields)


def out_lines(lines: Iterable[str], stream: TextIO | None = None, chunk: int = 4096) -> None:
    """Write many lines with few system calls (one print per line and flush costs a syscall each)."""
    target = stream or stdout()
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= chunk:
            target.write("\n".join(batch) + "\n")
            batch.clear()
    if batch:
        target.write("\n".join(batch) + "\n")
    target.flush()


def sweep_summary(result: SweepResult, up: int | None = None) -> str:
    """``12 hosts up of 120 scanned in 1.23 s`` (+ unreachable, duplicates, late when there were any).
    ``up``: the count, when ``result`` does not hold the hosts (a streamed sweep)."""
    s = result.stats
    up = len(result.up) if up is None else up
    line = f"{up} host{'' if up == 1 else 's'} up of {s.targets} scanned in {s.duration_s:.2f} s"
    extra = [f"{v} {k}" for k, v in (("unreachable", s.unreachable), ("duplicates", s.duplicates), ("late", s.late),
                                      ("probes the kernel refused to send", s.send_errors)) if v]
    if result.shards:
        workers = len({sh.worker for sh in result.shards})
        count = len(result.shards)
        extra.append(f"{count} shard{'' if count == 1 else 's'} on {workers} worker{'' if workers == 1 else 's'}")
    return line + (f" ({', '.join(extra)})" if extra else "")


def sweep_interrupted(shards: int | None = None, resume: str | None = None, *, recorded: bool = True) -> str:
    """The line after a sweep stopped by Ctrl-C: what was printed is what was decided by then (in a sweep in
    ``shards``, the hosts of the shards that arrived); with a ``resume`` journal, how to carry on: from it when it
    holds a finished part (``recorded``, read back or done by this run), else over again."""
    if resume is not None and not recorded:  # the journal was left as found (resume.py): there is nothing to carry on from
        return (f"recon: sweep interrupted before a shard was done: nothing is listed and nothing was recorded in "
                f"{safe(resume)}; the same command starts over")
    which = "decided before Ctrl-C" if shards is None else f"of the {shards} shard{'' if shards == 1 else 's'} done"
    then = (f"the same command carries on from {safe(resume)}" if resume is not None
            else "the other targets were not decided (not down)")
    return f"recon: sweep interrupted: only the hosts {which} are listed; {then}"


def sweep_hint(result: SweepResult, probes: Sequence[str]) -> str:
    """One line when nothing answered: what to try next, given the probes that went out."""
    s = result.stats
    if s.method == "arp":
        return ("hint: nothing answered ARP; check --interface, or that the targets are on this segment "
                "(routed targets take --method icmp)")
    if s.method == "ndp":
        return ("hint: nothing answered Neighbor Discovery; check the address and the interface after '%', "
                "or hear every host on the link with ff02::1%IFACE or --local IFACE")
    if s.unreachable and s.unreachable == s.targets:
        return "hint: a router reported every target unreachable; the range is not reachable from here"
    if s.send_errors and s.send_errors >= s.sent:
        return ("hint: the kernel refused to send every probe: this machine has no route to the targets (or a firewall "
                "here drops them); check 'ip route get ADDRESS'")
    if not any(p.startswith(("syn:", "ack:", "udp:")) for p in probes):
        return ("hint: the hosts may drop ICMP; try TCP probes as nmap does: --probe syn:22,80,443 --probe ack:80 "
                "(or -PS22,80,443 -PA80), or a longer --timeout")
    return ("hint: nothing answered these probes; try other ports (--probe syn:22,3389,8080 --probe udp:53,161), "
            "a longer --timeout, or check the route with 'recon ping'")


def shard_line(s: ShardStats) -> str:
    """One shard of a cluster sweep, printed on stderr as it arrives: which worker swept it and what it cost."""
    done = " (done before, from the --resume file)" if s.resumed else ""
    return (f"shard {s.shard}/{s.shards}: {s.up} up of {s.targets}, {s.sent} sent, {s.received} received "
            f"in {s.duration_s:.2f} s by {safe(s.worker)} ({safe(s.host)}){done}")


def worker_line(w: WorkerStats) -> str:
    """One worker of a cluster sweep, after the summary: the shards it swept in this run, added up."""
    return (f"worker {safe(w.worker)} ({safe(w.host)}): {w.shards} shard{'' if w.shards == 1 else 's'}, {w.up} up of "
            f"{w.targets}, {w.sent} sent, {w.received} received, {w.duration_s:.2f} s sweeping")


class SweepProgress:
    """A one-line progress bar on stderr, shown only on a TTY and only once the sweep has run for ``delay`` s.

    The engine reports ``(done, total)``: targets probed while the first pass sends, then targets answered
    while it waits and retries. The bar shows the most done so far, so it never moves backward when the
    retries start, and an ETA from the rate so far (``ETA 3 s``), or ``waiting`` once every target was
    probed and the sweep waits out its replies and retries. ``clock`` is ``time.monotonic`` unless a test
    gives its own."""

    WIDTH = 30

    def __init__(self, stream: TextIO | None = None, delay: float = 1.0, clock: Callable[[], float] | None = None) -> None:
        self.stream = stream or stderr()
        self.enabled = self.stream.isatty()
        self.clock = clock or _time.monotonic
        self.start = self.clock()
        self.delay = delay
        self.shown = False
        self.best = 0

    def __call__(self, done: int, total: int) -> None:
        self.best = max(self.best, min(done, total))
        elapsed = self.clock() - self.start
        if not self.enabled or elapsed < self.delay:
            return
        self.stream.write("\r" + progress_line(self.best, total, elapsed) + "\033[K")
        self.stream.flush()
        self.shown = True

    def finish(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()


def progress_line(done: int, total: int, elapsed: float) -> str:
    """``[#####     ] 1200/4096  29%  1.2 s  ETA 3 s``: the ETA assumes the rest goes at the rate so far."""
    frac = done / total if total else 1.0
    bar = "#" * int(frac * SweepProgress.WIDTH)
    if done >= total:
        eta = "waiting"
    elif done:
        eta = f"ETA {elapsed * (total - done) / done:.0f} s"
    else:
        eta = "ETA ?"
    return f"[{bar:<{SweepProgress.WIDTH}}] {done}/{total} {frac:4.0%}  {elapsed:5.1f} s  {eta}"


# --- watch ----------------------------------------------------------------------------------


def watch_inventory(devices: Sequence[DeviceState], new: frozenset[str] | set[str] = frozenset()) -> str:
    """The first round's table: one row per device that answered; ``new``: addresses never seen before."""
    rows = [[d.address, d.mac, safe(d.vendor or ""), safe(d.hostname or ""), d.first_seen,
             "NEW" if d.address in new else ""] for d in devices]
    return table(rows, ["address", "mac", "vendor", "hostname", "first seen", ""]) if rows else "(no device answered)"


def watch_round(rnd: WatchRound, *, as_json: bool = False, width: int = 15) -> list[str]:
    """A round's stdout lines. The first round starts with the inventory, each device once: its NEW
    events are marked in the table (JSON: ``"new": true`` on the INVENTORY line), not repeated.
    ``width``: the event lines' address column (``Watch.address_width``)."""
    lines: list[str] = []
    events = list(rnd.events)
    if rnd.inventory is not None:
        listed = {d.address for d in rnd.inventory}
        new = {e.address for e in events if e.event == "NEW" and e.address in listed}
        events = [e for e in events if not (e.event == "NEW" and e.address in new)]
        if as_json:
            lines.extend(watch_inventory_json(rnd.inventory, rnd.time, new))
        else:
            lines.append(watch_inventory(rnd.inventory, new))
    lines.extend(watch_event_json(e) if as_json else watch_event(e, width) for e in events)
    return lines


def watch_inventory_json(devices: Sequence[DeviceState], when: str, new: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """The first round as JSON lines: ``event`` INVENTORY, one per device that answered; ``new``: never seen before."""
    return [json_line({"event": "INVENTORY", "address": d.address, "mac": d.mac, "time": when, "vendor": d.vendor,
                       "hostname": d.hostname, "first_seen": d.first_seen, "last_seen": d.last_seen,
                       "new": d.address in new}) for d in devices]


def watch_event(event: Event, width: int = 15) -> str:
    """One event as a text line: time, kind, address (padded to ``width``, the watch's widest address, so the
    columns after it line up for IPv6 too), MAC, vendor, hostname (and what it moved from)."""
    parts = [event.time, f"{event.event:<5}", f"{event.address:<{width}}", event.mac or "-", event.vendor or "-",
             event.hostname or "-"]
    if event.previous:
        parts.append(f"(was {event.previous})")
    return safe("  ".join(parts))  # every field may come from the wire or the state file


def watch_event_json(event: Event) -> str:
    """One event as a JSON line with at least event, address, mac, time."""
    return json_line(as_dict(event))


_STATE_PROBLEMS = {
    "shape": "no 'devices' list",
    "not-utf8": "not UTF-8",
    "too-deep": "nested too deeply",
    "not-regular": "not a regular file",
}


def watch_note(note: WatchNote) -> str:
    """A note from a watch round as one stderr line."""
    if isinstance(note, StateSetAside):
        if note.problem == "field":
            why = f"device {note.device}: " + (f"bad {note.field!r}" if note.field else "not an object")
        elif note.problem == "json":
            why = f"not JSON: {note.detail}"
        elif note.problem == "too-big":
            why = f"larger than {int(note.detail or 0) >> 20} MiB"
        else:
            why = _STATE_PROBLEMS.get(note.problem, note.problem)
        return safe(f"recon: warning: state file {note.path!r} is corrupt ({why}); moved it to {note.aside!r} "
                    "and started afresh")
    if isinstance(note, HookFailed):
        what = f"recon: warning: {note.kind} hook {note.program!r}"
        if note.failure == "timeout":
            return safe(f"{what} ran over {note.timeout:g} s and was killed")
        if note.failure == "status":
            return safe(f"{what} exited with status {note.status}")
        return safe(f"{what} failed: {note.error}")
    return ("recon: --notify: no desktop notifier found (install notify-send, e.g. 'apt install libnotify-bin'); "
            "events are only printed")


def watch_notification(event: Event) -> tuple[str, str]:
    """A desktop notification's title and body for an event (handed to notify-send as plain argv words)."""
    body = " ".join(x for x in (event.hostname, event.mac, event.vendor) if x) or event.address
    return safe(f"recon: {event.event} {event.address}"), safe(body)


def watch_summary(targets: int, up: int, period: float, misses: int) -> str:
    return (f"watching {targets:,} address{'es' if targets != 1 else ''}: {up} up; a round every {period:g} s, "
            f"DOWN after {misses} silent round{'s' if misses != 1 else ''} (Ctrl-C to stop)")
