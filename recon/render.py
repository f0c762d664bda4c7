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


# --- sweep ----------------------------------------------------------------------------------

from typing import TYPE_CHECKING  # noqa: E402 - section-local import keeps parallel edits apart

if TYPE_CHECKING:  # noqa: E402 - kept in this section so parallel sections do not collide
    from collections.abc import Iterable as _Iterable

    from recon.models import HostResult, SweepResult

SWEEP_COLUMNS = ("address", "status", "rtt_ms", "ttl", "reply", "mac", "vendor", "hostname", "reporter")


def _sweep_hosts(result: "SweepResult", show_all: bool) -> "tuple[HostResult, ...]":
    return result.hosts if show_all else result.up


def sweep_table(result: "SweepResult", show_all: bool = False) -> str:
    """address, rtt, ttl, mac, vendor, hostname (+ status and reporter with --all)."""
    hosts = _sweep_hosts(result, show_all)
    if show_all:
        headers = ["address", "status", "rtt", "ttl", "mac", "vendor", "hostname", "reporter"]
        rows = [[h.address, h.status, _ms(h.rtt_ms), h.ttl, h.mac, safe(h.vendor or ""), safe(h.hostname or ""), h.reporter]
                for h in hosts]
    else:
        headers = ["address", "rtt", "ttl", "mac", "vendor", "hostname"]
        rows = [[h.address, _ms(h.rtt_ms), h.ttl, h.mac, safe(h.vendor or ""), safe(h.hostname or "")] for h in hosts]
    if not rows:
        return ""
    if len(rows) > _TABULATE_MAX:
        return _plain_table(rows, headers)
    return table(rows, headers)


_TABULATE_MAX = 5000


def _plain_table(rows: list[list[Any]], headers: list[str]) -> str:
    """The same look as tabulate's "simple" format, in linear time for tens of thousands of rows."""
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[c]) for r in cells)) for c, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*headers).rstrip(), "  ".join("-" * w for w in widths)]
    lines += [fmt.format(*r).rstrip() for r in cells]
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.2f} ms"


def _host_rows(hosts: "tuple[HostResult, ...]") -> "_Iterable[dict[str, Any]]":
    """Hosts as plain dicts, fast (dataclasses.asdict deep-copies and costs ~30 µs a host)."""
    from operator import attrgetter

    get = attrgetter(*SWEEP_COLUMNS)
    return (dict(zip(SWEEP_COLUMNS, get(h))) for h in hosts)


def sweep_json_lines(result: "SweepResult", show_all: bool = False) -> "_Iterable[str]":
    """One JSON object per host (DESIGN.md §5 fields, plus reporter)."""
    encode = json.JSONEncoder(separators=(", ", ": "), ensure_ascii=False).encode
    return (encode(row) for row in _host_rows(_sweep_hosts(result, show_all)))


def sweep_csv(result: "SweepResult", show_all: bool = False, stream: TextIO | None = None) -> None:
    csv_rows(_host_rows(_sweep_hosts(result, show_all)), SWEEP_COLUMNS, stream)


def out_lines(lines: "_Iterable[str]", stream: TextIO | None = None, chunk: int = 4096) -> None:
    """Write many lines with few system calls (one print per line and flush costs a syscall each)."""
    target = stream or sys.stdout
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= chunk:
            target.write("\n".join(batch) + "\n")
            batch.clear()
    if batch:
        target.write("\n".join(batch) + "\n")
    target.flush()


def sweep_summary(result: "SweepResult") -> str:
    """``12 hosts up of 120 scanned in 1.23 s`` (+ unreachable, duplicates, late when there were any)."""
    s = result.stats
    up = len(result.up)
    line = f"{up} host{'' if up == 1 else 's'} up of {s.targets} scanned in {s.duration_s:.2f} s"
    extra = [f"{v} {k}" for k, v in (("unreachable", s.unreachable), ("duplicates", s.duplicates), ("late", s.late)) if v]
    return line + (f" ({', '.join(extra)})" if extra else "")


class SweepProgress:
    """A one-line progress bar on stderr, shown only on a TTY and only once the sweep has run for a second."""

    def __init__(self, stream: TextIO | None = None, delay: float = 1.0) -> None:
        import time

        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.start = time.monotonic()
        self.delay = delay
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        import time

        if not self.enabled or time.monotonic() - self.start < self.delay:
            return
        width = 30
        frac = done / total if total else 1.0
        bar = "#" * int(frac * width)
        self.stream.write(f"\r[{bar:<{width}}] {done}/{total} {frac:4.0%}  {time.monotonic() - self.start:5.1f} s")
        self.stream.flush()
        self.shown = True

    def finish(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()


# --- watch ----------------------------------------------------------------------------------

from recon.models import DeviceState, Event, WatchRound, as_dict  # noqa: E402 - section-local, keeps parallel edits apart


def watch_inventory(devices: Sequence[DeviceState], new: frozenset[str] | set[str] = frozenset()) -> str:
    """The first round's table: one row per device that answered; ``new``: addresses never seen before."""
    rows = [[d.address, d.mac, safe(d.vendor or ""), safe(d.hostname or ""), d.first_seen,
             "NEW" if d.address in new else ""] for d in devices]
    return table(rows, ["address", "mac", "vendor", "hostname", "first seen", ""]) if rows else "(no device answered)"


def watch_round(rnd: WatchRound, *, as_json: bool = False) -> list[str]:
    """A round's stdout lines. The first round starts with the inventory; in text mode its NEW events are
    marked in the table rather than repeated as lines."""
    lines: list[str] = []
    events = list(rnd.events)
    if rnd.inventory is not None:
        if as_json:
            lines.extend(watch_inventory_json(rnd.inventory, rnd.time))
        else:
            listed = {d.address for d in rnd.inventory}
            new = {e.address for e in events if e.event == "NEW" and e.address in listed}
            lines.append(watch_inventory(rnd.inventory, new))
            events = [e for e in events if not (e.event == "NEW" and e.address in new)]
    lines.extend(watch_event_json(e) if as_json else watch_event(e) for e in events)
    return lines


def watch_inventory_json(devices: Sequence[DeviceState], when: str) -> list[str]:
    """The first round as JSON lines: ``event`` INVENTORY, one per device that answered."""
    return [json_line({"event": "INVENTORY", "address": d.address, "mac": d.mac, "time": when, "vendor": d.vendor,
                       "hostname": d.hostname, "first_seen": d.first_seen, "last_seen": d.last_seen}) for d in devices]


def watch_event(event: Event) -> str:
    """One event as a text line: time, kind, address, MAC, vendor, hostname (and what it moved from)."""
    parts = [event.time, f"{event.event:<5}", f"{event.address:<15}", event.mac or "-", safe(event.vendor or "-"),
             safe(event.hostname or "-")]
    if event.previous:
        parts.append(f"(was {event.previous})")
    return "  ".join(parts)


def watch_event_json(event: Event) -> str:
    """One event as a JSON line with at least event, address, mac, time."""
    return json_line(as_dict(event))


def watch_summary(targets: int, up: int, period: float, misses: int) -> str:
    return (f"watching {targets:,} address{'es' if targets != 1 else ''}: {up} up; a round every {period:g} s, "
            f"DOWN after {misses} silent round{'s' if misses != 1 else ''} (Ctrl-C to stop)")
