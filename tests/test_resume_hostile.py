"""A hostile or damaged `sweep --resume FILE` (issue 14, items 3, 6 and 9 for the journal that came after
them): a planted symbolic link, a FIFO, a device, deep nesting, foreign lines, damaged parts and a full disk
each end in one clean error or a cut-back file, never a traceback, a hang or a write through a link."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recon.cluster import ClusterStream
from recon.errors import InputError, ReconEnvironmentError
from recon.resume import FORMAT, Journal
from recon.targets import TargetSet, build_targets
from recon.transport import ReplayTransport
from tests.conftest import ROOT, need_lab, offline, recon_offline, small_tmpfs

HEADER = {"targets": [[1, 9]], "seed": 4, "parts": 2}


def _journal(path: Path, *lines: object, header: dict[str, object] | None = None) -> None:
    rows = [{"format": FORMAT, **(header or HEADER)}, *lines]
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


@pytest.mark.parametrize("dangling", [True, False])
def test_a_symbolic_link_at_the_path_is_refused_not_written_through(tmp_path: Path, dangling: bool) -> None:
    target = tmp_path / "precious"
    if not dangling:
        target.write_text("")  # empty: the old code took it for a new journal and wrote its header into it
    link = tmp_path / "run.resume"
    link.symlink_to(target)
    with pytest.raises(InputError, match="symbolic link"):
        Journal.load(str(link))
    assert target.exists() is not dangling and (dangling or target.read_text() == "")


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_a_fifo_device_or_directory_is_refused_at_once(tmp_path: Path, kind: str) -> None:
    """In a child process with a deadline: the old code blocked forever opening a FIFO to write."""
    path = {"fifo": tmp_path / "fifo", "device": Path("/dev/zero"), "directory": tmp_path}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    code = ("import sys\nfrom recon.resume import Journal\nfrom recon.errors import InputError\n"
            f"try:\n    Journal.load({str(path)!r}).start({HEADER!r})\nexcept InputError as e:\n    print(e)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20, cwd=ROOT)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    assert "not a regular file" in res.stdout or "Is a directory" in res.stdout, res.stdout


@pytest.mark.parametrize("bad", [
    "[" * 100_000,  # nesting: RecursionError in json
    json.dumps({"worker": "w"}),  # no part
    json.dumps([1, 2]),  # not an object
    json.dumps({"part": ["a", "b"], "hosts": []}),
    json.dumps({"part": [3, 2], "hosts": []}),  # part 3 of 2
    "\xff\xfe not UTF-8",
])
def test_a_garbled_line_ends_the_journal_there(tmp_path: Path, bad: str) -> None:
    """What follows the last good part is dropped (those parts are swept again), never raised; it is cut off
    before the next part is appended (not before: a run that records nothing leaves the file as it was)."""
    path = tmp_path / "run.resume"
    _journal(path, {"part": [1, 2], "hosts": []}, bad, {"part": [2, 2], "hosts": []})
    found = path.read_bytes()
    good = len(found.split(b"\n", 2)[0]) + 1 + len(json.dumps({"part": [1, 2], "hosts": []})) + 1
    with Journal.load(str(path)) as journal:
        journal.start(HEADER)
        assert journal.done == {(1, 2): {"hosts": []}}
    assert path.read_bytes() == found
    with Journal.load(str(path)) as journal:
        journal.start(HEADER)
        journal.record((2, 2), {"hosts": []})
    assert path.read_bytes() == found[:good] + b'{"part":[2,2],"hosts":[]}\n'


def test_a_deeply_nested_header_is_not_a_journal(tmp_path: Path) -> None:
    path = tmp_path / "run.resume"
    path.write_text("[" * 100_000 + "\n")
    with pytest.raises(InputError, match="not a recon sweep --resume file"):
        Journal.load(str(path))


def _sweep(targets: TargetSet, path: Path) -> None:
    """``sweep TARGETS --resume PATH -W 0 -r 0 --probe echo`` as the CLI runs it (``ClusterStream``), to the end."""
    with ClusterStream(targets, None, timeout=0, retries=0, resume=str(path), probe="echo") as stream:
        for _ in stream:
            pass


@pytest.mark.parametrize(("row", "header"), [
    ({"part": [1, 1], "worker": "w", "host": "h", "hosts": [{"address": "\x1b[2J", "status": "up"}], "stats": None}, None),
    ({"part": [1, 1], "worker": "w", "host": "h", "hosts": [{"address": "198.18.0.1", "status": "up", "rtt_ms": "fast"}],
      "stats": None}, None),
    ({"part": [1, 1], "worker": "w", "host": "h", "hosts": [], "stats": {"sent": "many"}}, None),
    ({"part": [1, 1], "worker": "w", "host": "h", "hosts": "198.18.0.1", "stats": None}, None),
    ({"part": [1, 1], "hosts": []}, None),  # no worker
    (None, {"seed": "x", "parts": 1}),  # recorded values that win when the user gave none
    (None, {"seed": 0, "parts": 10**9}),
])
def test_a_damaged_record_is_one_input_error(tmp_path: Path, row: dict[str, object] | None,
                                            header: dict[str, object] | None) -> None:
    """Through the sweep that reads it (the old code raised TypeError, or built a host from any string)."""
    targets = build_targets(["198.18.0.1"])
    path = tmp_path / "run.resume"
    with offline(ReplayTransport()) as transport:  # refused before a part is swept; were it not, nothing could leave
        _sweep(targets, path)  # writes a true header
        recorded = json.loads(path.read_text().splitlines()[0])
        _journal(path, *([row] if row else []), header={**{k: v for k, v in recorded.items() if k != "format"}, **(header or {})})
        transport.sent.clear()
        with pytest.raises(InputError, match="damaged"):
            _sweep(targets, path)
        assert transport is not None and transport.sent == []


@pytest.mark.lab  # mounting a small tmpfs needs root: in the root-only set, so the unprivileged "not lab" run never skips it
def test_a_full_disk_is_one_environment_error_and_whole_lines(tmp_path: Path) -> None:
    need_lab()  # root; skips without it, fails under CI=true
    with small_tmpfs(tmp_path / "small", "16k") as where:
        path = where / "run.resume"
        with Journal.load(str(path)) as journal, pytest.raises(ReconEnvironmentError) as exc:
            journal.start(HEADER)
            for k in range(1, 1000):
                journal.record((k, 1000), {"hosts": [], "pad": "x" * 1000})
        data = path.read_bytes()
    assert "cannot write --resume file" in str(exc.value) and "parts finished before" in str(exc.value)
    assert data.endswith(b"\n") and all(json.loads(line) for line in data.splitlines())


def test_a_journal_in_use_by_another_run_is_refused_and_keeps_its_parts(tmp_path: Path) -> None:
    """Run A creates the journal and writes its header; run B, given the same file meanwhile, is refused with one
    line (exit 2), before it sends anything. The old code let B record its parts there, and A, interrupted with no
    part, then emptied and removed the file with B's parts in it."""
    path = tmp_path / "run.resume"
    with Journal.load(str(path)) as first:
        first.start(HEADER)
        header = path.read_bytes()
        with pytest.raises(InputError, match="in use by another recon sweep") as exc:
            Journal.load(str(path))
        assert "give another --resume file" in str(exc.value) and path.read_bytes() == header
        res = recon_offline("sweep", "198.18.0.1", "--resume", str(path))  # another process: its own lock
        assert res.returncode == 2 and res.stdout == "", res.stderr
        assert res.stderr.count("\n") == 1 and "in use by another recon sweep" in res.stderr, res.stderr
        assert path.read_bytes() == header
    assert not path.exists()  # A recorded no part: the file it created is removed, and nobody else's went with it
    with Journal.load(str(path)) as again:  # the lock went with A: the next run takes the file
        again.start(HEADER)


def test_a_new_journal_holding_more_than_this_run_wrote_is_not_emptied(tmp_path: Path) -> None:
    """A run that records no part empties a journal it found empty only while it holds nothing but its own header
    (the old code cut whatever was there to nothing)."""
    path = tmp_path / "run.resume"
    path.write_bytes(b"")
    with Journal.load(str(path)) as journal:
        journal.start(HEADER)
        with path.open("ab") as other:
            other.write(b'{"part":[1,2],"hosts":[]}\n')
        kept = path.read_bytes()
    assert path.read_bytes() == kept and kept.count(b"\n") == 2


def test_ctrl_c_after_a_part_is_fsynced_keeps_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second Ctrl-C landing right after the first part's line is written and fsynced, before the journal counts
    it: the part is kept, and read back by the next run (the old code removed the file, part and all)."""
    path = tmp_path / "run.resume"
    fsync = os.fsync
    journal = Journal.load(str(path))
    journal.start(HEADER)

    def fsync_then_ctrl_c(fd: int) -> None:
        fsync(fd)
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", fsync_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        journal.record((1, 2), {"hosts": []})
    monkeypatch.undo()
    journal.close()
    with Journal.load(str(path)) as again:
        again.start(HEADER)
        assert again.done == {(1, 2): {"hosts": []}}
    assert journal.holds_parts  # what the line after Ctrl-C is worded from (cluster.ClusterStream.recorded)


def test_a_full_disk_before_the_first_part_says_nothing_was_recorded(tmp_path: Path) -> None:
    """A write that fails on a journal this run created, before a part is in it: the file is removed, and the line
    says so and that the same command starts over (the old one said it holds the 0 parts finished before and the
    same command carries on from there). In a child with a file size limit (EFBIG, as a full disk's ENOSPC)."""
    path = tmp_path / "run.resume"
    code = ("import resource, signal\nfrom recon.resume import Journal\nfrom recon.errors import ReconEnvironmentError\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\nresource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))\n"
            f"try:\n    with Journal.load({str(path)!r}) as j:\n        j.start({HEADER!r})\n"
            "        j.record((1, 2), {'hosts': [], 'pad': 'x' * 1000})\n"
            "except ReconEnvironmentError as e:\n    print(e)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20, cwd=ROOT)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    assert res.stdout == (f"cannot write --resume file {str(path)!r}: File too large; nothing was recorded in it; "
                          "free some space; the same command then starts over\n")
    assert not path.exists()
