"""The ``--resume FILE`` journal of a sharded sweep: what was asked, and each shard once it is done.

JSON lines. The first line is the header: the sweep's identity (target intervals, seed, shard, number
of parts, probe options). Every later line is one finished part, appended and fsynced as soon as the
part's result is known, so after Ctrl-C, SIGKILL or a crash the file holds every part that finished
and nothing else. A torn last line (the process died mid-write) is cut off when the file is reopened.
Opening an existing journal with a different sweep is refused: merging parts of two different sweeps
would be wrong silently. Resume is shard-granular: a part that was running when the process stopped
is swept again from its start (see ARCHITECTURE.md, cluster.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import TracebackType
from typing import Any

from recon.errors import InputError

__all__ = ["FORMAT", "Journal"]

FORMAT = "recon-sweep-resume/1"


class Journal:
    """An append-only journal; ``Journal.open`` returns it with the header in force and the parts already done."""

    def __init__(self, path: Path, header: dict[str, Any], done: dict[tuple[int, int], dict[str, Any]]) -> None:
        self.path = path
        self.header = header
        self.done = done
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close() / the context manager

    @classmethod
    def open(cls, path: str, header: dict[str, Any], *, defaults: tuple[str, ...] = ()) -> Journal:
        """Start a journal at ``path`` with ``header``, or continue the one there.

        Continuing requires the same sweep: every key of ``header`` must match the recorded one, except the
        keys named in ``defaults`` (values the caller chose, not the user: there the recorded value wins).
        """
        p = Path(path)
        if not p.exists() or p.stat().st_size == 0:
            with open(p, "w", encoding="utf-8") as fh:
                fh.write(json.dumps({"format": FORMAT, **header}) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            return cls(p, header, {})
        recorded, done, valid = _read(p)
        for key, wanted in header.items():
            if key not in defaults and _norm(recorded.get(key)) != _norm(wanted):
                raise InputError(f"{path} records another sweep ({key} differs: {recorded.get(key)!r}, not {wanted!r})",
                                 hint="run the same command to resume it, or give a new --resume file to start over")
        if valid < p.stat().st_size:
            os.truncate(p, valid)  # a torn last line from a process that died mid-write
        return cls(p, recorded, done)

    def record(self, part: tuple[int, int], payload: dict[str, Any]) -> None:
        """Append one finished part and make it durable before the sweep moves on."""
        self._fh.write(json.dumps({"part": list(part), **payload}, separators=(",", ":")) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.done[part] = payload

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _read(p: Path) -> tuple[dict[str, Any], dict[tuple[int, int], dict[str, Any]], int]:
    """(header, parts done, byte length of the valid prefix)."""
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read --resume file {p}: {exc.strerror}", hint="check the path") from None
    done: dict[tuple[int, int], dict[str, Any]] = {}
    header: dict[str, Any] | None = None
    valid = 0
    for raw in data.splitlines(keepends=True):
        try:
            if not raw.endswith(b"\n"):
                raise ValueError("torn line")
            row = json.loads(raw)
        except ValueError:
            break  # a torn or garbled tail: everything after it is dropped
        if header is None:
            header = row if isinstance(row, dict) and row.get("format") == FORMAT else None
            if header is None:
                break
        else:
            k, m = row.pop("part")
            done.setdefault((int(k), int(m)), row)
        valid += len(raw)
    if header is None:
        raise InputError(f"{p} is not a recon sweep --resume file", hint="give a new file name, or the file a sweep wrote")
    return header, done, valid


def _norm(value: Any) -> Any:
    """JSON round-trips tuples as lists: compare in that form."""
    return json.loads(json.dumps(value))
