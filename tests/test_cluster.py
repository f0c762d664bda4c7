"""recon sweep --cluster: shards of the seeded permutation run on a real Dask cluster inside the lab.

The lab tests start a real `dask scheduler` and `dask worker` processes inside the scanner namespace
(loopback only: nothing leaves the lab), sweep the lab's sparse /17 through the CLI and compare the
merged result with the lab's truth. Every process a test starts is killed in a finally.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import recon.cluster
from recon import render
from recon.cluster import ClusterError, ClusterStream, ShardOutcome, ShardTask, parse_cluster, shard_plan, shard_size, sweep_shard
from recon.errors import InvalidOption
from recon.lab import netns
from recon.models import HostResult, ScopedTarget, ShardStats, SweepResult, SweepStats
from recon.targets import TargetSet, V6Targets, address_key, build_targets, int_to_ip, int_to_ip6, ip_to_int
from recon.transport import ReplaySocket, ReplayTransport, Sent
from tests.conftest import ROOT, LabHandle, offline, offline_argv, run_cli, run_cli_offline

SPARSE17 = "198.18.128.0/17"
DASK = Path(sys.executable).with_name("dask")  # the venv's dask, next to its python


def _recon(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "recon", *args], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, env={**os.environ, **(env or {})})


# --- no lab: parsing, the shard split, the merge, the optional dependency ---------------------------


def test_parse_cluster_accepts_scheduler_addresses_and_local_counts() -> None:
    assert parse_cluster("tcp://198.18.0.10:8786") == ("tcp://198.18.0.10:8786", None)
    assert parse_cluster("local:2") == ("local", 2)
    for bad in ("198.18.0.10:8786", "tcp://198.18.0.10", "tcp://:8786", "local:0", "local:x", "http://h:1", "tcp://h:70000",
                "local:\u0662", "tcp://h:\u0668\u0667\u0668\u0666",  # Arabic-Indic digits: int() takes them, nothing else should
                "local:" + "9" * 5000, "tcp://h:" + "9" * 5000):  # past int()'s 4,300-digit limit: a ValueError traceback
        with pytest.raises(InvalidOption):
            parse_cluster(bad)


@given(size=st.integers(1, 3000), seed=st.integers(0, 2**32), parts=st.integers(1, 9),
       outer=st.integers(1, 5).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))))
def test_shard_plan_is_disjoint_and_complete(size: int, seed: int, parts: int, outer: tuple[int, int]) -> None:
    """The parts of shard I/N walk exactly the addresses of I/N, each once (as `order` promises)."""
    targets = TargetSet([(ip_to_int("198.18.128.0"), ip_to_int("198.18.128.0") + size - 1)])
    whole = list(targets.order(seed, outer))
    pieces = [list(targets.order(seed, s)) for s in shard_plan(parts, outer)]
    flat = [a for piece in pieces for a in piece]
    assert len(flat) == len(set(flat)) == len(whole)
    assert set(flat) == set(whole)
    assert [shard_size(size, s) for s in shard_plan(parts, outer)] == [len(p) for p in pieces]


def _outcome(shard: tuple[int, int], targets: int, hosts: tuple[HostResult, ...]) -> ShardOutcome:
    return ShardOutcome(shard, "tcp://127.0.0.1:1", "h", hosts, SweepStats(targets=targets, sent=targets, received=len(hosts)))


def _collected(stream: ClusterStream) -> SweepResult:
    """Everything ``stream`` hands back, as one result: the rows in address order, its statistics and shards."""
    with stream:
        hosts = [h for item in stream if not isinstance(item, ShardStats) for h in item]
    return SweepResult(tuple(sorted(hosts, key=lambda h: address_key(h.address))), stream.stats, stream.shards)


def _merged(monkeypatch: pytest.MonkeyPatch, targets: TargetSet, seed: int, outcomes: list[ShardOutcome]) -> SweepResult:
    """``outcomes`` through the merge of the stream the CLI reads (``ClusterStream``, its plan the outcomes' count
    of shards), arriving in this order, as a cluster could deliver them (a shard twice, or one missing): the
    cluster's deliveries are replaced, nothing is swept (the replay transport's record stays empty)."""
    def arriving(*_: object) -> Iterator[ShardOutcome]:
        yield from outcomes

    monkeypatch.setattr(recon.cluster, "_outcomes", arriving)
    with offline(ReplayTransport()) as transport:
        try:
            return _collected(ClusterStream(targets, None, shards=outcomes[0].shard[1], seed=seed, probe="echo"))
        finally:
            assert transport is not None and transport.sent == []


def test_merge_drops_a_duplicate_shard_and_refuses_a_missing_one(monkeypatch: pytest.MonkeyPatch) -> None:
    targets = build_targets(["198.18.1.0/30"])
    plan = shard_plan(2)
    addrs = [sorted(targets.order(7, s)) for s in plan]
    up = HostResult(int_to_ip(addrs[0][0]), "up", 1.0, 64, "echo-reply")
    first = _outcome(plan[0], len(addrs[0]), (up,))
    second = _outcome(plan[1], len(addrs[1]), ())
    merged = _merged(monkeypatch, targets, 7, [first, second, first])
    assert [h.address for h in merged.hosts] == list(targets)
    assert [h.address for h in merged.up] == [up.address]
    assert merged.stats.targets == 4 and merged.stats.sent == 4 and len(merged.shards) == 2
    with pytest.raises(ClusterError, match="covered 2 of 4"):
        _merged(monkeypatch, targets, 7, [first])


def _v6(text: str) -> int:
    return int(ipaddress.IPv6Address(text))


def test_merge_is_keyed_by_family_value_and_scope(monkeypatch: pytest.MonkeyPatch) -> None:
    """IPv4 198.18.1.17 and IPv6 ::c612:111 (::198.18.1.17) share a value, 2001:db8::10 and the group member 2001:db8::10%lo an
    address: four rows, none lost to another's key; a shard that arrives twice adds nothing, a missing one is an
    error. (The old merge keyed by the IPv4 integer: IPv6 rows raised.)"""
    v4, compat, ten = ip_to_int("198.18.1.17"), _v6("::c612:111"), _v6("2001:db8::10")
    assert v4 == compat
    group = ScopedTarget("ff02::1", "lo", socket.if_nametoindex("lo"), multicast=True)
    targets = TargetSet([(v4, v4)], v6=V6Targets([(compat, compat), (ten, ten)]), scoped=[group])
    plan = shard_plan(2)
    answered = {"198.18.1.17": HostResult("198.18.1.17", "up", 1.0, 63, "echo-reply", reason="echo-reply")}
    members = (HostResult("2001:db8::10%lo", "up", 0.5, 64, "echo-reply", reason="echo-reply"),
               HostResult("fe80::1%lo", "up", 0.5, 64, "echo-reply", reason="echo-reply"))
    outcomes = []
    for part in plan:
        mine = {int_to_ip(a) for a in targets.order(3, part)}
        hosts = tuple(h for a, h in answered.items() if a in mine) + (members if part[0] == 1 else ())
        outcomes.append(_outcome(part, targets.count(part), hosts))
    merged = _merged(monkeypatch, targets, 3, [outcomes[1], outcomes[0], outcomes[1], outcomes[0]])
    assert [(h.address, h.status) for h in merged.hosts] == [
        ("198.18.1.17", "up"), ("::198.18.1.17", "down"), ("2001:db8::10", "down"), ("2001:db8::10%lo", "up"),
        ("fe80::1%lo", "up")]
    assert merged.stats.targets == 4 and [(s.shard, s.targets) for s in merged.shards] == [
        (1, targets.count(plan[0])), (2, targets.count(plan[1]))]
    with pytest.raises(ClusterError, match=f"covered {targets.count(plan[1])} of 4"):
        _merged(monkeypatch, targets, 3, [outcomes[1]])


def _mixed_answers(sock: ReplaySocket, sent: Sent) -> list[bytes]:
    """Recorded IPv4 and IPv6 answers (tests/test_sweep_replay.py, tests/test_sweep6.py), and two members of
    ff02::1 answering its echo."""
    from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6

    from tests.test_sweep6 import REC as REC6
    from tests.test_sweep_replay import REC as REC4

    if not sent.kind.endswith("6"):
        return REC4(sock, sent)
    if sent.address[0] != "ff02::1":
        return REC6(sock, sent)
    req = ICMPv6EchoRequest(sent.data)
    return [bytes(IPv6(src=m, dst="fe80::99", hlim=64) / ICMPv6EchoReply(id=req.id, seq=req.seq, data=req.data))
            for m in ("fe80::1", "fe80::2")]


MIXED = ["198.18.1.16/28", "198.18.2.0/29", "2001:db8::e-11", "2001:db8:2::1-5", "ff02::1%lo"]


def test_shards_of_mixed_targets_stream_and_merge_to_the_plain_sweep() -> None:
    """IPv4, routed IPv6 and a scoped group in 3 parts, swept here on recorded answers: each part comes back
    as its ShardStats and then its rows, no row twice, and together they are the plain sweep's rows."""
    from recon.engine import sweep

    targets = build_targets(MIXED)
    options = {"method": "icmp", "probe": "echo", "timeout": 0.05, "retries": 0}
    plain = sweep(targets, transport=ReplayTransport(_mixed_answers), **options)  # type: ignore[arg-type]  # a dict of options
    items = list(ClusterStream(targets, None, shards=3, seed=9, transport=ReplayTransport(_mixed_answers), **options))
    stats = [i for i in items if isinstance(i, ShardStats)]
    rows = [h for i in items if not isinstance(i, ShardStats) for h in i]
    assert [s.shard for s in stats] == [1, 2, 3] and sum(s.targets for s in stats) == targets.total == 16 + 8 + 4 + 5 + 1
    first_rows = items.index(stats[1])  # part 1's rows come before part 2's statistics: each part as it arrives
    assert {h.address for i in items[1:first_rows] for h in i} == {
        int_to_ip(a) for a in targets.order(9, (1, 3))} | {int_to_ip6(a) for a in targets.v6.order(9, (1, 3))} | {
        "fe80::1%lo", "fe80::2%lo"}
    key = lambda h: (h.address, h.status, h.reason, h.reply, h.ttl)
    assert len(rows) == len({h.address for h in rows})
    assert sorted(map(key, rows), key=str) == sorted(map(key, plain.hosts), key=str)
    assert {h.address for h in rows if h.status == "up"} >= {"198.18.1.17", "2001:db8::10", "2001:db8:2::1", "fe80::1%lo"}


@pytest.mark.parametrize("outer", [(1, 2), (2, 3)])
def test_the_shards_of_one_shard_of_mixed_targets_merge_to_its_plain_sweep(outer: tuple[int, int]) -> None:
    """--shard I/N with shards: the parts of shard I/N, IPv6 and scoped targets too (these in shard 1 only), are
    what a plain sweep of shard I/N finds, no more and no less."""
    from recon.engine import sweep

    targets = build_targets(MIXED)
    options = {"method": "icmp", "probe": "echo", "timeout": 0.05, "retries": 0, "seed": 4, "shard": outer}
    plain = sweep(targets, transport=ReplayTransport(_mixed_answers), **options)  # type: ignore[arg-type]  # a dict of options
    merged = _collected(ClusterStream(targets, None, shards=2, transport=ReplayTransport(_mixed_answers), **options))
    key = lambda h: (h.address, h.status, h.reason, h.reply, h.ttl)
    assert [key(h) for h in merged.hosts] == [key(h) for h in plain.hosts]
    assert merged.stats.targets == targets.count(outer) and len(merged.shards) == 2
    assert ("fe80::1%lo" in {h.address for h in merged.hosts}) is (outer[0] == 1)


def _resume_argv(journal: Path) -> list[str]:
    """What the in-process --resume tests run: sweep MIXED --json --all --resume JOURNAL, echo only, a short wait."""
    return ["sweep", *MIXED, "--json", "--all", "--resume", str(journal), "--method", "icmp", "--probe", "echo",
            "-W", "0.05", "-r", "0"]


def test_cli_resume_takes_ipv6_and_prints_each_part_as_it_is_done(tmp_path: Path) -> None:
    """sweep --resume with IPv4, IPv6 and a scoped group, in-process on recorded answers: the JSON rows, then
    the same command again prints them all from the file (every part "done before"), nothing twice. The old
    CLI refused IPv6 with --resume (exit 2)."""
    journal = tmp_path / "run.resume"
    argv = _resume_argv(journal)
    with offline(ReplayTransport(_mixed_answers)):
        first = run_cli(*argv)
        again = run_cli(*argv)
    assert first.code == 0, first.stderr
    rows = [json.loads(line) for line in first.stdout.splitlines()]
    assert len(rows) == len({r["address"] for r in rows}) == 16 + 8 + 4 + 5 + 2  # the group is its two members
    assert {r["address"] for r in rows if r["status"] == "up"} >= {"2001:db8::10", "fe80::1%lo", "fe80::2%lo"}
    assert again.code == 0 and "done before" in again.stderr
    assert not [line for line in again.stderr.splitlines() if line.startswith("worker ")]  # no worker swept anything
    assert sorted(again.stdout.splitlines()) == sorted(first.stdout.splitlines())


def test_a_finished_journal_is_printed_without_a_cluster(tmp_path: Path) -> None:
    """`--cluster local:2 --resume FILE` with every part of FILE done prints the merged result from the file:
    no cluster is started (here `distributed` cannot even be imported: the old code's LocalCluster made that
    exit 3, and took seconds where it can), and nothing is sent (the replay transport's record is empty)."""
    journal = tmp_path / "run.resume"
    argv = _resume_argv(journal)
    with offline(ReplayTransport(_mixed_answers)):
        first = run_cli(*argv)
    assert first.code == 0, first.stderr
    code = ("import sys\nsys.modules['distributed'] = None\nsys.modules['dask'] = None\n"
            "import recon.transport\nrecon.transport._DEFAULT = replay = recon.transport.ReplayTransport()\n"
            "from recon.cli import run\ncode = run(sys.argv[1:])\n"
            "print('sent', len(replay.sent), file=sys.stderr)\nsys.exit(code)")
    again = subprocess.run(offline_argv([sys.executable, "-c", code, *argv, "--cluster", "local:2"]),
                           capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert again.returncode == 0, again.stderr
    assert again.stderr.splitlines()[-1] == "sent 0"
    shard_lines = [line for line in again.stderr.splitlines() if line.startswith("shard ")]
    assert shard_lines and all("done before" in line for line in shard_lines), again.stderr
    assert sorted(again.stdout.splitlines()) == sorted(first.stdout.splitlines())


def _sweep_on_an_unreachable_cluster(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """``recon ARGV --cluster tcp://127.0.0.1:PORT`` with nothing listening there, in a network namespace of its
    own (its loopback is down: nothing answers, nothing leaves), the connect timeout cut to a second."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the sweep: nobody listens there
    code = ("import sys\nimport recon.cluster\nrecon.cluster.CONNECT_TIMEOUT = 1.0\n"
            "from recon.cli import run\nsys.exit(run(sys.argv[1:]))")
    return subprocess.run(offline_argv([sys.executable, "-c", code, *argv, "--cluster", f"tcp://127.0.0.1:{port}"]),
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_an_unreachable_cluster_leaves_the_resume_file_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--resume FILE with a scheduler nobody answers at: exit 3, one line, and the file as it was: none when
    there was none (the old code left an empty one behind, created before the cluster was tried), still empty
    when it was empty, and byte for byte the same when it held parts, a torn last line included (the old code
    cut that before it tried the cluster)."""
    missing, empty, partial = tmp_path / "missing.resume", tmp_path / "empty.resume", tmp_path / "partial.resume"
    empty.write_bytes(b"")
    monkeypatch.setattr(recon.cluster, "RESUME_PART", 20)  # 34 targets: two parts (the file's count wins later)
    with offline(ReplayTransport(_mixed_answers)):
        assert run_cli(*_resume_argv(partial)).code == 0
    lines = partial.read_bytes().splitlines(keepends=True)
    assert len(lines) == 3  # the header and two parts
    partial.write_bytes(b"".join(lines[:-1]) + lines[-1][:20])  # the last part torn: it is swept again
    found = partial.read_bytes()
    for journal in (missing, empty, partial):
        res = _sweep_on_an_unreachable_cluster(_resume_argv(journal))
        assert res.returncode == 3, res.stderr
        assert res.stderr.count("\n") == 1 and "cannot reach the Dask scheduler" in res.stderr, res.stderr
    assert not missing.exists()
    assert empty.read_bytes() == b""
    assert partial.read_bytes() == found


def _ctrl_c_at(addresses: set[str], stopped: list[str]) -> Callable[[ReplaySocket, Sent], list[bytes]]:
    """The recorded answers, and Ctrl-C (SIGINT to this process, as a terminal sends it) at the first probe to one of
    ``addresses``, noted in ``stopped``: the sweep's handler (``cli._sigint_calls``) runs on the main thread."""
    def answers(sock: ReplaySocket, sent: Sent) -> list[bytes]:
        if not stopped and sent.address[0] in addresses:
            stopped.append(sent.address[0])
            os.kill(os.getpid(), signal.SIGINT)
        return _mixed_answers(sock, sent)

    return answers


def test_ctrl_c_in_a_resumed_sweep_lists_the_parts_done_and_the_same_command_carries_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C (SIGINT at the first probe of part 2) ends a --resume sweep of two parts with part 1's hosts listed,
    one line saying so, the summary of what was done, exit 130, and the journal holding part 1 only, whole; the
    same command then sweeps part 2 only, and the two runs together print every target once."""
    monkeypatch.setattr(recon.cluster, "RESUME_PART", 20)  # 34 targets: two parts
    targets = build_targets(MIXED)
    second = {int_to_ip(a) for a in targets.order(0, (2, 2))} | {int_to_ip6(a) for a in targets.v6.order(0, (2, 2))}
    stopped: list[str] = []
    journal = tmp_path / "run.resume"
    argv = _resume_argv(journal)
    with offline(ReplayTransport(_ctrl_c_at(second, stopped))):
        first = run_cli(*argv)
        recorded = [json.loads(line) for line in journal.read_text().splitlines()]
        rest = run_cli(*argv)
    assert first.code == 130 and stopped, first.stderr
    lines = first.stderr.splitlines()
    assert lines[0].startswith("shard 1/2: ") and lines[1] == (
        f"recon: sweep interrupted: only the hosts of the 1 shard done are listed; the same command carries on from {journal}")
    assert lines[2].endswith(" of 18 scanned in " + lines[2].split(" scanned in ")[1]) and len(lines) == 3
    assert {json.loads(r)["address"] for r in first.stdout.splitlines()}.isdisjoint(second)
    assert [r.get("part") for r in recorded] == [None, [1, 2]]  # the header, and part 1: part 2 was dropped midway
    assert rest.code == 0 and "shard 1/2" in rest.stderr and "done before" in rest.stderr.splitlines()[0]
    again = [json.loads(r)["address"] for r in rest.stdout.splitlines()]
    assert len(again) == len(set(again)) == 16 + 8 + 4 + 5 + 2 and second <= set(again)


@pytest.mark.parametrize("empty_before", [False, True])
def test_ctrl_c_before_the_first_part_is_done_leaves_no_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                empty_before: bool) -> None:
    """Ctrl-C during part 1 of a new --resume sweep: exit 130, nothing listed, and no journal left behind (the old
    code left its header, which a later sweep of other targets then refused); a file that was there empty is
    left there empty. The same command starts over."""
    monkeypatch.setattr(recon.cluster, "RESUME_PART", 20)  # 34 targets: two parts
    targets = build_targets(MIXED)
    first_part = {int_to_ip(a) for a in targets.order(0, (1, 2))} | {int_to_ip6(a) for a in targets.v6.order(0, (1, 2))}
    stopped: list[str] = []
    journal = tmp_path / "run.resume"
    if empty_before:
        journal.write_bytes(b"")
    argv = _resume_argv(journal)
    with offline(ReplayTransport(_ctrl_c_at(first_part, stopped))):
        first = run_cli(*argv)
        left = journal.read_bytes() if journal.exists() else None
        again = run_cli(*argv)
    assert first.code == 130 and stopped, first.stderr
    assert first.stdout == "" and first.stderr.splitlines()[0] == (  # it used to say it carries on from the removed file
        f"recon: sweep interrupted before a shard was done: nothing is listed and nothing was recorded in {journal}; "
        "the same command starts over")
    assert left == (b"" if empty_before else None)
    assert again.code == 0 and "done before" not in again.stderr, again.stderr
    assert len(again.stdout.splitlines()) == 16 + 8 + 4 + 5 + 2


def _printed_addresses(fmt: str, stdout: str) -> list[str]:
    lines = stdout.splitlines()
    if fmt == "--json":
        return [json.loads(line)["address"] for line in lines]
    if fmt == "--csv":
        return [line.split(",")[0] for line in lines[1:]]
    if fmt == "--grep":
        return [line.split()[1] for line in lines if line.startswith("Host: ")]
    return lines


@pytest.mark.parametrize("fmt", ["--json", "--csv", "--grep", "-a"])
def test_every_output_format_of_a_resumed_sweep_lists_what_a_plain_sweep_lists(tmp_path: Path, fmt: str) -> None:
    """--json, --csv, --grep and -a with --resume (printed part by part) name the same hosts as the plain
    sweep's streamed output, each once."""
    argv = ["sweep", *MIXED, fmt, "--method", "icmp", "--probe", "echo", "-W", "0.05", "-r", "0"]
    with offline(ReplayTransport(_mixed_answers)):
        plain = run_cli(*argv)
        parts = run_cli(*argv, "--resume", str(tmp_path / "run.resume"))
    assert plain.code == parts.code == 0, parts.stderr
    printed = _printed_addresses(fmt, parts.stdout)
    assert len(printed) == len(set(printed)) >= 14 and sorted(printed) == sorted(_printed_addresses(fmt, plain.stdout))


def test_a_resume_file_of_the_old_format_is_one_line_that_says_what_to_do(tmp_path: Path) -> None:
    from recon.errors import InputError
    from recon.resume import Journal

    path = tmp_path / "old.resume"
    path.write_text(json.dumps({"format": "recon-sweep-resume/1", "targets": [[1, 9]], "seed": 0, "parts": 1}) + "\n")
    with pytest.raises(InputError, match=r"another recon version .*recon-sweep-resume/1.*give a new --resume file"):
        Journal.load(str(path))
    res = run_cli_offline("sweep", "198.18.1.0/30", "--resume", str(path))
    assert res.code == 2 and res.stderr.count("\n") == 1 and "recon-sweep-resume/1" in res.stderr, res.stderr


def test_a_96_of_ipv6_is_cut_into_shards_of_at_most_a_104(tmp_path: Path) -> None:
    """One sweep takes at most a /104 of IPv6 (engine6.MAX_V6_SWEEP); a sweep in shards cuts a /96 into enough
    of them by itself (256 here, one per 65,536 targets with --resume), and a --shards count too small for that
    is refused before anything runs. Nothing is swept: the plan is made when the stream opens."""
    from recon.engine6 import MAX_V6_SWEEP

    targets = build_targets(["198.18.1.0/24", "2001:db8::/96"], yes=True)
    with offline(ReplayTransport()) as transport:
        here = ClusterStream(targets, None, probe="echo")
        journal = tmp_path / "run.resume"
        resumable = ClusterStream(targets, None, probe="echo", resume=str(journal))
        with pytest.raises(InvalidOption, match="at least 256"):
            ClusterStream(targets, None, probe="echo", shards=255)
        header = json.loads(journal.read_text().splitlines()[0])
        here.close()
        resumable.close()
    assert transport is not None and transport.sent == []
    assert len(here.plan) == 256 and max(shard_size(len(targets.v6), s) for s in here.plan) == MAX_V6_SWEEP
    assert sum(targets.count(s) for s in here.plan) == targets.total
    assert len(resumable.plan) == header["parts"] == 65536
    assert not journal.exists()  # closed before a part was done: the journal it created is gone


def test_a_scoped_target_is_bound_on_the_worker_and_a_missing_interface_is_exit_2() -> None:
    """A ShardTask carries fe80::1%IFACE as text; the worker binds it to its own interface of that name. Where
    there is none, the shard comes back as an error with exit 2 (bad input: retrying cannot fix it)."""
    task = ShardTask((), (), 0, (1, 1), (("probe", "echo"),), 0.05, 0, False, scoped=("fe80::1%lo", "ff02::1%lo"))
    assert [(s.address, s.ifindex, s.multicast) for s in task.target_set().scoped] == [
        ("fe80::1", socket.if_nametoindex("lo"), False), ("ff02::1", socket.if_nametoindex("lo"), True)]
    with offline(ReplayTransport()) as transport:
        outcome = sweep_shard(replace(task, scoped=("fe80::1%nosuch0",)))
    assert transport is not None and transport.sent == []
    assert outcome.error_exit == 2 and outcome.error is not None and "no interface 'nosuch0' here" in outcome.error
    assert outcome.error.startswith("local (") and "\n" not in outcome.error


def test_cluster_without_dask_is_one_line_exit_3() -> None:
    """With dask/distributed absent (blocked in sys.modules), --cluster says how to install them.

    The target is loopback: these tests run outside the lab, so even a regression that sent would stay on this host."""
    code = ("import sys\nsys.modules['distributed'] = None\nsys.modules['dask'] = None\n"
            "from recon.cli import run\nsys.exit(run(['sweep', '--cluster', 'local:1', '127.0.0.1']))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 3, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'recon[cluster]'" in lines[0], res.stderr
    assert "Traceback" not in res.stderr


def test_help_does_not_import_dask() -> None:
    code = ("import sys\nfrom recon.cli import run\nrun(['sweep', '--help'])\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.stdout.strip().splitlines()[-1] == "[]", res.stdout + res.stderr
    assert "--cluster" in res.stdout


def test_dask_is_an_optional_extra_only() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith(("dask", "distributed")) for d in project["dependencies"])
    assert {d.split(">")[0] for d in project["optional-dependencies"]["cluster"]} == {"dask", "distributed"}
    assert "cluster" in (ROOT / "scripts" / "setup.sh").read_text().split("pip install")[-1]


def test_bad_cluster_address_is_exit_2() -> None:
    """In a network namespace of its own: were the address taken, no connection could leave for it."""
    res = subprocess.run(offline_argv([sys.executable, "-m", "recon", "sweep", "--cluster", "198.18.0.10", "127.0.0.1"]),
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert res.returncode == 2 and "--cluster" in res.stderr and "Traceback" not in res.stderr


# --- the lab: a real scheduler and real workers in the scanner namespace ------------------------


@dataclass
class Cluster:
    """A scheduler and workers started inside the scanner namespace; every process is killed on exit."""

    lab: LabHandle
    tmp: Path
    address: str = ""
    procs: list[subprocess.Popen[str]] = field(default_factory=list)
    workers: dict[str, subprocess.Popen[str]] = field(default_factory=dict)  # worker address → process

    def start_scheduler(self) -> None:
        sched_file = self.tmp / "scheduler.json"
        self._spawn("scheduler", [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                  "--scheduler-file", str(sched_file)])
        _wait_for(lambda: sched_file.exists() and sched_file.stat().st_size > 0, "the scheduler file")
        self.address = json.loads(sched_file.read_text())["address"]

    def start_worker(self, name: str) -> None:
        log = self.tmp / f"{name}.log"
        proc = self._spawn(name, [str(DASK), "worker", self.address, "--no-nanny", "--nthreads", "1", "--name", name,
                                  "--no-dashboard", "--local-directory", str(self.tmp / name)], log)
        _wait_for(lambda: "Registered to" in log.read_text(), f"worker {name} to register")
        started = next(line for line in log.read_text().splitlines() if "Start worker at" in line)
        self.workers[started.split()[-1]] = proc

    def _spawn(self, name: str, argv: list[str], log: Path | None = None) -> subprocess.Popen[str]:
        out = open(log or self.tmp / f"{name}.log", "w")  # noqa: SIM115 - the process owns it until killed
        proc = self.lab.popen(argv, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy())
        out.close()
        self.procs.append(proc)
        return proc

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            proc.wait(timeout=10)


@contextmanager
def dask_cluster(lab: LabHandle, tmp: Path, workers: int) -> Iterator[Cluster]:
    cluster = Cluster(lab, tmp)
    try:
        cluster.start_scheduler()
        for i in range(workers):
            cluster.start_worker(f"w{i + 1}")
        yield cluster
    finally:
        cluster.kill_all()


def _wait_for(ready: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _has_raw_socket(pid: int) -> bool:
    """Whether process ``pid`` holds a raw socket now (it is sweeping a shard): its fds against its namespace's /proc/net/raw."""
    try:
        rows = Path(f"/proc/{pid}/net/raw").read_text().splitlines()[1:]
        inodes = {f"socket:[{row.split()[9]}]" for row in rows}
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError):
        return False


def _parse(stdout: str, stderr: str) -> tuple[list[dict[str, object]], list[str]]:
    rows = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    shard_lines = [line for line in stderr.splitlines() if line.startswith("shard ")]
    return rows, shard_lines


def _check_sparse17(lab: LabHandle, rows: list[dict[str, object]], shard_lines: list[str], shards: int) -> None:
    truth = set(lab.info.range("sparse17").up or ())
    assert len(truth) == 256
    addresses = [str(r["address"]) for r in rows]
    assert len(addresses) == len(set(addresses)) == 32768  # --all: every target exactly once
    assert {str(r["address"]) for r in rows if r["status"] == "up"} == truth
    assert len(shard_lines) == shards, shard_lines
    numbers = sorted(line.split()[1].rstrip(":") for line in shard_lines)
    assert numbers == sorted(f"{i}/{shards}" for i in range(1, shards + 1))  # each shard once
    counts = [int(line.split(" up of ")[1].split(",")[0]) for line in shard_lines]
    assert sum(counts) == 32768  # the shards' target counts add up: disjoint and complete
    ups = [int(line.split(": ")[1].split(" up")[0]) for line in shard_lines]
    assert sum(ups) == 256


def test_cluster_sweep_of_sparse17_equals_the_truth(lab: LabHandle, tmp_path: Path) -> None:
    with dask_cluster(lab, tmp_path, workers=2) as cluster:
        res = lab.recon("sweep", SPARSE17, "--cluster", cluster.address, "--json", "--all", "--seed", "5", timeout=120)
    assert res.returncode == 0, res.stderr
    rows, shard_lines = _parse(res.stdout, res.stderr)
    _check_sparse17(lab, rows, shard_lines, shards=2)
    assert {line.split(" by ")[1].split()[0] for line in shard_lines} <= set(cluster.workers)
    assert "2 shards on" in res.stderr


def _sweep_killing_a_worker(lab: LabHandle, tmp_path: Path, targets: list[str], timeout: float) -> tuple[str, str, str]:
    """`recon sweep TARGETS --cluster` on a real 2-worker cluster, one worker SIGKILLed as soon as it holds a raw
    socket (it is sweeping its shard); the sweep must still end with exit 0. (victim's address, stdout, stderr)"""
    with dask_cluster(lab, tmp_path, workers=2) as cluster:
        victim_addr, victim = next(iter(cluster.workers.items()))
        sweep = lab.popen([sys.executable, "-m", "recon", "sweep", *targets, "--cluster", cluster.address, "--json", "--all",
                           "--rate", "10000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())
        try:
            _wait_for(lambda: _has_raw_socket(victim.pid) or sweep.poll() is not None, "the victim to start sweeping")
            assert sweep.poll() is None, "the sweep ended before the victim worker started its shard"
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
            stdout, stderr = sweep.communicate(timeout=timeout)
        finally:
            if sweep.poll() is None:
                sweep.kill()
                sweep.communicate()
    assert sweep.returncode == 0, stderr
    return victim_addr, stdout, stderr


def test_ctrl_c_ends_a_cluster_sweep_at_once(lab: LabHandle, tmp_path: Path) -> None:
    """SIGINT to `sweep --cluster --resume` while both workers sweep their shard (each waits 30 s for replies): it
    ends within seconds, not when the shards do (ClusterStream.stop ends the wait for the cluster's next result),
    with exit 130, the line saying no shard was done, the summary, and no journal left (no part was recorded)."""
    journal = tmp_path / "sweep.resume"
    with dask_cluster(lab, tmp_path, workers=2) as cluster:
        sweep = lab.popen([sys.executable, "-m", "recon", "sweep", SPARSE17, "--cluster", cluster.address, "--json",
                           "--resume", str(journal), "-W", "30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=os.environ.copy())
        try:
            _wait_for(lambda: all(_has_raw_socket(w.pid) for w in cluster.workers.values()) or sweep.poll() is not None,
                      "both workers to sweep their shard")
            assert sweep.poll() is None, "the sweep ended before its shards started"
            sent = time.monotonic()
            sweep.send_signal(signal.SIGINT)
            stdout, stderr = sweep.communicate(timeout=60)
            took = time.monotonic() - sent
        finally:
            if sweep.poll() is None:
                sweep.kill()
                sweep.communicate()
    assert sweep.returncode == 130, stderr
    assert took < 15, f"Ctrl-C took {took:.1f} s: it waited for the shards"
    lines = stderr.splitlines()
    assert lines[0] == ("recon: sweep interrupted before a shard was done: nothing is listed and nothing was recorded "
                        f"in {journal}; the same command starts over") and len(lines) == 2, stderr
    assert lines[1].startswith("0 hosts up of 0 scanned in ")
    assert stdout == "" and not journal.exists()


def test_killed_worker_loses_nothing(lab: LabHandle, tmp_path: Path) -> None:
    """SIGKILL one of two workers while it sweeps its shard: the scheduler reruns it; the result is still exactly the truth."""
    victim_addr, stdout, stderr = _sweep_killing_a_worker(lab, tmp_path, [SPARSE17], timeout=120)
    rows, shard_lines = _parse(stdout, stderr)
    _check_sparse17(lab, rows, shard_lines, shards=2)
    sweepers = [line.split(" by ")[1].split()[0] for line in shard_lines]
    assert victim_addr not in sweepers  # the killed worker's shard was rerun by the survivor
    assert len(set(sweepers)) == 1


def test_killed_worker_loses_no_ipv6_or_scoped_host(lab: LabHandle, tmp_path: Path) -> None:
    """The same with IPv6 in the sweep (routed, on-link, a scoped host and the all-nodes group, on `dask worker`
    processes): the shard of the killed worker is rerun by the survivor and every target comes back exactly once,
    the hosts up being the lab's truth."""
    iface, info = lab.info.scanner_if, lab.info
    victim_addr, stdout, stderr = _sweep_killing_a_worker(lab, tmp_path, [SPARSE17, *_mixed_lab_targets(lab)[1:]], timeout=180)
    rows = _by_address(stdout)  # every address once
    members = {f"{h.ipv6_ll}%{iface}" for h in info.hosts} | {f"{info.router_ipv6_ll}%{iface}", f"{info.scanner_ipv6_ll}%{iface}"}
    assert len(rows) == 32768 + 256 + 255 + 1 + len(members)  # fe80::dead:1 down; the phone's address is a member too
    up = {a for a, r in rows.items() if r[0] == "up"}
    assert up == (set(info.range("sparse17").up or ()) | set(info.range("sparse6").up or ()) | members
                  | {h.ipv6 for h in info.hosts} | {info.router_ipv6, info.scanner_ipv6})
    _, shard_lines = _parse(stdout, stderr)
    assert sorted(line.split()[1] for line in shard_lines) == ["1/2:", "2/2:"]
    assert victim_addr not in {line.split(" by ")[1].split()[0] for line in shard_lines}


def test_local_cluster_of_two_processes(lab: LabHandle) -> None:
    res = lab.recon("sweep", SPARSE17, "--cluster", "local:2", "--json", "--all", timeout=180)
    assert res.returncode == 0, res.stderr
    rows, shard_lines = _parse(res.stdout, res.stderr)
    _check_sparse17(lab, rows, shard_lines, shards=2)


def _mixed_lab_targets(lab: LabHandle) -> list[str]:
    """IPv4, routed IPv6 (sparse6), on-link IPv6 by Neighbor Discovery (lan6 without the router's anycast
    2001:db8::, whose advertisements RFC 4861 delays at random by up to a second), a scoped host, a silent
    scoped address and the all-nodes group on the scanner's link."""
    iface, phone = lab.info.scanner_if, lab.info.hosts[0]
    return ["198.18.1.0/24", "2001:db8:1::/120", "2001:db8::1-ff", f"{phone.ipv6_ll}%{iface}", f"fe80::dead:1%{iface}",
            f"ff02::1%{iface}"]


def _by_address(stdout: str) -> dict[str, tuple[object, ...]]:
    rows = [json.loads(line) for line in stdout.splitlines()]
    table = {str(r["address"]): (r["status"], r["reason"], r["mac"], r["reporter"]) for r in rows}
    assert len(table) == len(rows), "an address twice"
    return table


def test_local_cluster_with_ipv6_and_scoped_targets_equals_a_plain_sweep(lab: LabHandle) -> None:
    """--cluster local:2 over IPv4, routed and on-link IPv6 and scoped targets: the same rows as one plain sweep
    of the same targets (status, reason, MAC, reporter); the shards add up to every target once. The old CLI
    refused IPv6 with --cluster."""
    targets = _mixed_lab_targets(lab)
    plain = lab.recon("sweep", *targets, "--json", "--all", timeout=120)
    shards = lab.recon("sweep", *targets, "--json", "--all", "--cluster", "local:2", timeout=180)
    assert plain.returncode == 0 and shards.returncode == 0, plain.stderr + shards.stderr
    assert "Traceback" not in shards.stderr
    assert _by_address(shards.stdout) == _by_address(plain.stdout)
    rows = _by_address(shards.stdout)
    assert {rows[f"{h.ipv6_ll}%{lab.info.scanner_if}"][2] for h in lab.info.hosts} == {h.mac for h in lab.info.hosts}
    assert {a for a, r in rows.items() if a.startswith("2001:db8:1::") and r[0] == "up"} == set(lab.info.range("sparse6").up or ())
    _, shard_lines = _parse(shards.stdout, shards.stderr)
    assert sorted(line.split()[1] for line in shard_lines) == ["1/2:", "2/2:"]
    assert sum(int(line.split(" up of ")[1].split(",")[0]) for line in shard_lines) == 256 + 256 + 255 + 3
    assert len([line for line in shards.stderr.splitlines() if line.startswith("worker ")]) == 2


def test_resume_with_ipv6_killed_mid_run_equals_an_uninterrupted_run(lab: LabHandle, tmp_path: Path) -> None:
    """SIGKILL `sweep --resume` of IPv4 and IPv6 targets once its first part is recorded: by then that part's
    rows are already printed (streamed as the part is done, not after the merge); the same command then sweeps
    only the other part, and its output equals an uninterrupted sweep's, row for row."""
    journal, killed_out = tmp_path / "sweep.resume", tmp_path / "killed.json"
    targets = [SPARSE17, "2001:db8:1::/113", *_mixed_lab_targets(lab)[2:]]  # 32768 + 32768 + 255 + 3: two parts
    argv = [sys.executable, "-m", "recon", "sweep", *targets, "--yes", "--json", "--all", "--rate", "20000"]

    def first_part() -> dict[str, Any]:
        return json.loads(journal.read_text().splitlines()[1])

    with open(killed_out, "w") as out:
        _kill_once_a_part_is_recorded(lab, [*argv, "--resume", str(journal)], journal, out, "the first part's rows",
                                      lambda: {h["address"] for h in first_part()["hosts"]} <= set(_whole_rows(killed_out)))
    part = first_part()
    printed = _whole_rows(killed_out)
    assert {a for a, st in printed.items() if st == "up"} == {h["address"] for h in part["hosts"] if h["status"] == "up"}
    second = lab.run([*argv, "--resume", str(journal)], timeout=180)
    assert second.returncode == 0, second.stderr
    shard_lines = [line for line in second.stderr.splitlines() if line.startswith("shard ")]
    assert len(shard_lines) == 2 and sum("done before" in line for line in shard_lines) == 1, second.stderr
    plain = lab.run(argv, timeout=180)
    assert plain.returncode == 0, plain.stderr
    assert _by_address(second.stdout) == _by_address(plain.stdout)
    assert len(_by_address(plain.stdout)) == 32768 + 32768 + 255 + 2 + 7 - 1  # the group is its 7 members, not a row


def _kill_once_a_part_is_recorded(lab: LabHandle, argv: list[str], journal: Path, stdout: Any, what: str = "",
                                  ready: Callable[[], bool] = lambda: True) -> None:
    """Run the --resume sweep ``argv`` (stdout to ``stdout``) and SIGKILL it as soon as ``journal`` holds its first
    part (and then ``ready()``, ``what`` it waits for); the journal must hold that part and no other."""
    first = lab.popen(argv, stdout=stdout, stderr=subprocess.PIPE, env=os.environ.copy())
    try:
        _wait_for(lambda: (journal.exists() and journal.read_text().count("\n") >= 2) or first.poll() is not None,
                  "the first part in the journal")
        _wait_for(lambda: ready() or first.poll() is not None, what)
        assert first.poll() is None, "the sweep ended before it could be killed"
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate()
    assert journal.read_text().count("\n") == 2  # header + one part: the killed run got no further


def _whole_rows(path: Path) -> dict[str, str]:
    """address → status of the whole JSON lines in ``path`` (a process killed mid-write leaves a torn last line)."""
    lines = path.read_text().split("\n")[:-1]
    return {r["address"]: r["status"] for r in map(json.loads, lines)}


def test_shards_swept_directly_merge_to_the_local_sweep(lab: LabHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    """sweep_shard over every part (one part twice) merges to what one local sweep reports, row for row."""
    from recon.engine import Prober

    targets = build_targets(["198.18.1.0/24", "198.18.2.0/28"])
    with netns(lab.ns):
        with Prober() as prober:
            local = prober.sweep(targets, seed=3)
        base = ShardTask(tuple(targets.intervals), (), 3, (1, 1), (), 1.0, 1, False)
        outcomes = [sweep_shard(ShardTask(base.intervals, (), 3, s, (), 1.0, 1, False)) for s in shard_plan(3)]
    merged = _merged(monkeypatch, targets, 3, [*outcomes, outcomes[0]])
    strip = lambda hosts: [(h.address, h.status, h.reply, h.ttl) for h in hosts]
    assert strip(merged.hosts) == strip(local.hosts)
    assert len(merged.up) == 16 + 16 and merged.stats.targets == 256 + 16


# --- --resume: the journal, and a sweep killed mid-run that carries on ----------------------------


def test_journal_refuses_another_sweep_and_cuts_a_torn_tail(tmp_path: Path) -> None:
    from recon.errors import InputError
    from recon.resume import Journal

    path = tmp_path / "run.resume"
    header = {"targets": [[1, 9]], "seed": 4, "parts": 2}
    with Journal.load(str(path)) as journal:
        journal.start(header)
        journal.record((1, 2), {"hosts": []})
    with open(path, "a") as fh:
        fh.write('{"part": [2, 2], "hos')  # the process died mid-write
    with Journal.load(str(path)) as journal:
        journal.start({**header, "seed": 0, "parts": 9}, defaults=("seed", "parts"))
        assert journal.done == {(1, 2): {"hosts": []}} and journal.header["seed"] == 4 and journal.header["parts"] == 2
        journal.record((2, 2), {"hosts": []})
    assert path.read_text().endswith('}\n{"part":[2,2],"hosts":[]}\n')  # the torn line is gone: new parts append cleanly
    with Journal.load(str(path)) as journal, pytest.raises(InputError, match="seed differs"):
        journal.start({**header, "seed": 5})
    other = tmp_path / "other.txt"
    other.write_text("hello\n")
    with pytest.raises(InputError, match="not a recon sweep --resume file"):
        Journal.load(str(other))


def test_resume_after_a_kill_carries_on_and_equals_the_truth(lab: LabHandle, tmp_path: Path) -> None:
    """SIGKILL `sweep --resume` after its first part is recorded; the same command then sweeps only the rest."""
    journal = tmp_path / "sweep.resume"
    argv = [sys.executable, "-m", "recon", "sweep", SPARSE17, "198.19.0.0/16", "--yes", "--json", "--resume", str(journal),
            "--rate", "20000"]
    _kill_once_a_part_is_recorded(lab, argv, journal, subprocess.DEVNULL)
    second = lab.run(argv, timeout=120)
    assert second.returncode == 0, second.stderr
    shard_lines = [line for line in second.stderr.splitlines() if line.startswith("shard ")]
    assert len(shard_lines) == 2 and sum("done before" in line for line in shard_lines) == 1, second.stderr
    truth = set(lab.info.range("sparse17").up or ()) | set(build_targets(["198.19.0.0/16"], yes=True))
    found = [json.loads(line)["address"] for line in second.stdout.splitlines()]
    assert len(found) == len(set(found)) and set(found) == truth
    assert journal.read_text().count("\n") == 3


def test_bad_probe_options_are_refused_before_a_cluster_starts() -> None:
    """--method is checked here, not on each worker: exit 2, one line, and no local cluster is started."""
    res = _recon("sweep", "--cluster", "local:2", "--method", "bogus", "127.0.0.1")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "--method" in res.stderr, res.stderr
    assert "tcp://" not in res.stderr  # refused by this process, not by a worker


def test_ctrl_c_before_the_parts_read_back_are_listed_still_carries_on_from_the_journal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C before any shard is listed, in a run whose journal holds both parts from before: the line says the same
    command carries on from the journal, which is left as it was. The old code worded it from the shards listed (none)
    and said nothing was recorded and the same command starts over."""
    monkeypatch.setattr(recon.cluster, "RESUME_PART", 20)  # 34 targets: two parts
    journal = tmp_path / "run.resume"
    argv = _resume_argv(journal)
    with offline(ReplayTransport(_mixed_answers)) as transport:
        assert run_cli(*argv).code == 0
        found = journal.read_bytes()
        assert transport is not None
        transport.sent.clear()

        class CtrlCFirst(render.SweepPrinter):
            """The printer, made once the Ctrl-C handler is in place: Ctrl-C (SIGINT to this process) as it is made."""
            def __init__(self, *args: Any, **kw: Any) -> None:
                os.kill(os.getpid(), signal.SIGINT)
                super().__init__(*args, **kw)

        monkeypatch.setattr(render, "SweepPrinter", CtrlCFirst)
        stopped = run_cli(*argv)
    assert stopped.code == 130 and stopped.stdout == "" and transport.sent == [], stopped.stderr
    assert stopped.stderr.splitlines()[0] == (
        f"recon: sweep interrupted: only the hosts of the 0 shards done are listed; the same command carries on from {journal}")
    assert journal.read_bytes() == found
