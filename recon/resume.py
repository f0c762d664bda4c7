"""The ``--resume FILE`` journal of a sharded sweep: what was asked, and each shard once it is done.

JSON lines. The first line is the header: the format version (``FORMAT``) and the sweep's identity
(IPv4 target intervals, IPv6 runs as address pairs, scoped targets as text, seed, shard, number of parts,
probe options). A file of another format version is refused with one line that says what to do.
Every later line is one finished part (its answered hosts, IPv4, IPv6 and scoped, and its counters),
appended and fsynced as soon as the part's result is known, so after Ctrl-C, SIGKILL or a crash the
file holds every part that finished and nothing else. A torn last line (the process died mid-write) is
dropped when the file is read back, and cut off before the next part is appended. A run that records no
part leaves the file as it found it: one it found missing and created is removed, one it found empty is emptied
again (only while it holds nothing but what this run wrote), so a sweep that fails before its first part is done
(an unreachable cluster, say) leaves no journal behind; one found holding a sweep is not written to.
A run holds an exclusive ``flock`` on the file from ``load`` to ``close``: a second run given the same file
while the first runs is refused with one line (its parts would be lost when the first ends without one).
Opening an existing journal with a different sweep is refused: merging parts of two different sweeps
would be wrong silently. Resume is shard-granular: a part that was running when the process stopped
is swept again from its start (see ARCHITECTURE.md, cluster.py).

The file is handled as the pcap writer and watch's state file are (issue 14): opened with
``O_NOFOLLOW`` (a planted symbolic link is refused, never written through), only a regular file (a
FIFO, a device or a directory is refused instead of hanging or writing into it), read line by line
with a cap on a line, and a write that fails (a full disk) is cut back to the last whole line and
reported as one environment error.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
from pathlib import Path
from types import TracebackType
from typing import Any

from recon.errors import InputError, ReconEnvironmentError

__all__ = ["FORMAT", "MAX_LINE", "Journal"]

FORMAT = "recon-sweep-resume/2"  # 2: the header holds the IPv6 runs and the scoped targets; rows may be IPv6
_FAMILY = "recon-sweep-resume/"
MAX_LINE = 64 << 20  # the longest line read: a header of MAX_RUNS intervals, or one part's answered hosts, fit well
_OPEN_TRIES = 5  # opens of a journal that a run ending meanwhile removes, before giving up


class Journal:
    """An append-only journal: ``Journal.load`` reads it, ``start`` puts the header in force, ``record`` appends parts.

    A journal this run started (the file was missing or empty) and never wrote a part to is left as it was found
    when it is closed: removed if this run created it, else emptied, and only while its size is no more than what
    this run wrote (anything more is not ours to drop). So a run that fails before its first part is done (an
    unreachable cluster, a shard that fails, Ctrl-C) leaves nothing behind. A journal that held a sweep before is
    never written to until a part is recorded (its torn tail, if any, is cut then), and never emptied or removed.
    The file is locked (``flock``, exclusive) while it is open: another run given it is refused.
    """

    def __init__(self, path: Path, fd: int, header: dict[str, Any], done: dict[tuple[int, int], dict[str, Any]],
                 valid: int = 0, *, created: bool = False) -> None:
        self.path = path
        self.header = header  # {} until ``start`` (a new file) or the recorded one (a journal there before)
        self.done = done
        self._fd = fd
        self._size = valid  # bytes of whole lines: the valid prefix read back (a torn tail past it is cut at the first write)
        self._found_fresh = not header  # the file held no sweep when loaded: closed without a part, it is left as found
        self._created = created  # this run created the file (it was missing)
        self._end = valid  # the size this run's writes leave the file at, a write under way counted whole
        self._part_from: int | None = None  # where this run's first part line starts, once its write has begun
        self._part_written = False  # a part line of this run is fsynced (set at once, before ``done`` is)

    @classmethod
    def load(cls, path: str) -> Journal:
        """The journal at ``path`` as it was left: its header and the parts done, both empty for a new (or empty)
        file (``fresh``). Nothing is written until ``start``, so a caller can see what is done before it decides
        what the sweep needs (a cluster only for parts still to do)."""
        p = Path(path)
        fd, created = _open(p)
        try:
            if os.fstat(fd).st_size == 0:
                return cls(p, fd, {}, {}, created=created)
            recorded, done, valid = _read(fd, p)
            return cls(p, fd, recorded, done, valid)
        except BaseException:
            os.close(fd)
            raise

    @property
    def fresh(self) -> bool:
        """Whether the file holds no sweep yet: ``start`` writes its header."""
        return not self.header

    def start(self, header: dict[str, Any], *, defaults: tuple[str, ...] = ()) -> None:
        """Write ``header`` to a fresh journal, or check it against the recorded one (writing nothing).

        Continuing requires the same sweep: every key of ``header`` must match the recorded one, except the
        keys named in ``defaults`` (values the caller chose, not the user: there the recorded value wins).
        """
        if self.fresh:
            self.header = header
            self._append({"format": FORMAT, **header})
            return
        recorded = self.header
        for key, wanted in header.items():
            if key not in defaults and _norm(recorded.get(key)) != _norm(wanted):
                raise InputError(f"{self.path} records another sweep ({key} differs: {recorded.get(key)!r}, not {wanted!r})",
                                 hint="run the same command to resume it, or give a new --resume file to start over")

    def record(self, part: tuple[int, int], payload: dict[str, Any]) -> None:
        """Append one finished part and make it durable before the sweep moves on."""
        self._append({"part": list(part), **payload}, part=True)
        self.done[part] = payload

    @property
    def holds_parts(self) -> bool:
        """Whether the file holds a finished part (read back, or recorded by this run): after ``close`` too, when a
        run that ends without one has left the file as it found it."""
        return bool(self.done) or self._part_written

    def _append(self, row: dict[str, Any], *, part: bool = False) -> None:
        """One whole line, fsynced, or none of it: a failed write is cut back and raised (exit 3)."""
        data = (json.dumps(row, separators=(",", ":")) + "\n").encode()
        self._end = self._size + len(data)  # before the write: Ctrl-C may land anywhere in it (``close`` looks)
        if part and self._part_from is None:
            self._part_from = self._size
        try:
            os.ftruncate(self._fd, self._size)  # a torn last line from a process that died mid-write goes first
            os.lseek(self._fd, self._size, os.SEEK_SET)
            done = 0
            while done < len(data):
                more = os.write(self._fd, data[done:])
                if more <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                done += more
            os.fsync(self._fd)
            self._part_written = self._part_written or part  # first: a second Ctrl-C may land before ``done`` is set
        except OSError as exc:
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                pass
            self._end = self._size
            if part and self._part_from == self._size:
                self._part_from = None  # the first part was cut back: none is in the file
            if self._found_fresh and not self.holds_parts:  # ``close`` leaves the file as found: nothing to carry on from
                raise ReconEnvironmentError(f"cannot write --resume file {str(self.path)!r}: {exc.strerror}; nothing was "
                                            "recorded in it", hint="free some space; the same command then starts over") from None
            raise ReconEnvironmentError(
                f"cannot write --resume file {str(self.path)!r}: {exc.strerror}; it holds the {len(self.done)} "
                f"part{'s' if len(self.done) != 1 else ''} finished before",
                hint="free some space; the same command then carries on from there") from None
        self._size += done

    def close(self) -> None:
        if self._fd < 0:
            return
        try:
            if self._found_fresh and not self.holds_parts:
                self._leave_as_found()
        finally:
            os.close(self._fd)  # and with it the lock
            self._fd = -1

    def _leave_as_found(self) -> None:
        """Empty the file again (a header this run wrote), and remove it if this run created it and it is still
        the file at the path (another one put there meanwhile is not ours to remove). Not when it holds more than
        this run wrote, nor when this run's first part line is whole in it (Ctrl-C landed after its write, before it
        was counted: it is kept, ``holds_parts``). Best effort: an empty file left behind is a new journal to the
        next run."""
        try:
            size = os.fstat(self._fd).st_size
            if self._part_from is not None and size == self._end:
                self._part_written = True
                return
            if size > self._end:
                return
            os.ftruncate(self._fd, 0)
            if self._created:
                here, ours = os.stat(self.path, follow_symlinks=False), os.fstat(self._fd)
                if (here.st_dev, here.st_ino) == (ours.st_dev, ours.st_ino):
                    os.unlink(self.path)
        except OSError:
            pass

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _open(p: Path) -> tuple[int, bool]:
    """The journal's descriptor, locked for this run, and whether it was created here (see ``_open_once``). The lock
    is taken on the file still at the path: one that a run ending meanwhile removed is opened again."""
    for _ in range(_OPEN_TRIES):
        fd, created = _open_once(p)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InputError(f"--resume file {str(p)!r} is in use by another recon sweep",
                             hint="wait until that sweep ends, or give another --resume file") from None
        except BaseException:
            os.close(fd)
            raise
        try:
            here, ours = os.stat(p, follow_symlinks=False), os.fstat(fd)
        except OSError:  # gone, or the path changed under us (ENOTDIR, EACCES): not the file we locked
            here = None
        if here is not None and (here.st_dev, here.st_ino) == (ours.st_dev, ours.st_ino):
            return fd, created
        os.close(fd)  # removed (or replaced) between the open and the lock: by the run that held it, ending
    raise InputError(f"--resume file {str(p)!r} keeps changing while it is opened", hint="give another --resume file")


def _open_once(p: Path) -> tuple[int, bool]:
    """The journal's descriptor, and whether it was created here: a regular file, created if missing, never
    through a symbolic link (O_EXCL does not follow one, and the second open refuses it)."""
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # O_NONBLOCK: a FIFO at the path must not hang the open
    created = True
    try:
        try:
            fd = os.open(p, flags | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            created = False
            fd = os.open(p, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and p.is_symlink():
            raise InputError(f"will not use --resume file {str(p)!r}: it is a symbolic link",
                             hint="remove the link, or give the path it points to") from None
        raise InputError(f"cannot open --resume file {str(p)!r}: {exc.strerror}", hint="check the path") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InputError(f"--resume file {str(p)!r} is not a regular file", hint="give a new file name, or the file a sweep wrote")
    return fd, created


def _read(fd: int, p: Path) -> tuple[dict[str, Any], dict[tuple[int, int], dict[str, Any]], int]:
    """(header, parts done, byte length of the valid prefix), reading line by line from the start."""
    done: dict[tuple[int, int], dict[str, Any]] = {}
    header: dict[str, Any] | None = None
    valid = 0
    os.lseek(fd, 0, os.SEEK_SET)
    with os.fdopen(os.dup(fd), "rb") as fh:
        while raw := fh.readline(MAX_LINE + 1):
            row = _row(raw)
            if row is None:
                break  # a torn or garbled line: it and everything after it are dropped
            if header is None:
                if row.get("format") != FORMAT:
                    _other_format(row.get("format"), p)
                    break
                header = row
            else:
                part = _part(row.pop("part", None))
                if part is None:
                    break
                done.setdefault(part, row)
            valid += len(raw)
    if header is None:
        raise InputError(f"{p} is not a recon sweep --resume file", hint="give a new file name, or the file a sweep wrote")
    return header, done, valid


def _other_format(fmt: object, p: Path) -> None:
    """A journal of another format version is refused with what to do (its parts cannot be merged with this one's)."""
    if isinstance(fmt, str) and fmt.startswith(_FAMILY) and fmt != FORMAT:
        shown = fmt[:60].encode("ascii", "backslashreplace").decode()
        raise InputError(f"{p} is a --resume file of another recon version ({shown}; this one reads {FORMAT})",
                         hint="give a new --resume file to start over, or finish it with the recon that wrote it")


def _row(raw: bytes) -> dict[str, Any] | None:
    """One whole line as a JSON object, or None (torn, too long, not UTF-8, nested too deep, not an object)."""
    if not raw.endswith(b"\n"):
        return None
    try:
        row = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return row if isinstance(row, dict) else None


def _part(value: Any) -> tuple[int, int] | None:
    """``[k, m]`` with 1 <= k <= m (a part is shard k/m of the permutation), else None."""
    if (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            and 1 <= value[0] <= value[1]):
        return value[0], value[1]
    return None


def _norm(value: Any) -> Any:
    """JSON round-trips tuples as lists: compare in that form."""
    return json.loads(json.dumps(value))
