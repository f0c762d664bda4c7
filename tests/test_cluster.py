"""recon sweep --cluster: shards of the seeded permutation run on a real Dask cluster inside the lab.

The lab tests start a real `dask scheduler` and `dask worker` processes inside the scanner namespace
(loopback only: nothing leaves the lab), sweep the lab's sparse /17 through the CLI and compare the
merged result with the lab's truth. Every process a test starts is killed in a finally.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recon.cluster import ClusterError, ShardOutcome, merge_outcomes, parse_cluster, shard_plan, shard_size, sweep_shard
from recon.errors import InvalidOption
from recon.lab import netns
from recon.models import HostResult, SweepStats
from recon.targets import TargetSet, build_targets, int_to_ip, ip_to_int
from tests.conftest import ROOT, LabHandle, offline_argv

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


def test_merge_drops_a_duplicate_shard_and_refuses_a_missing_one() -> None:
    targets = build_targets(["198.18.1.0/30"])
    plan = shard_plan(2)
    addrs = [sorted(targets.order(7, s)) for s in plan]
    up = HostResult(int_to_ip(addrs[0][0]), "up", 1.0, 64, "echo-reply")
    first = _outcome(plan[0], len(addrs[0]), (up,))
    second = _outcome(plan[1], len(addrs[1]), ())
    merged = merge_outcomes(targets, 7, (1, 1), [first, second, first], 1.0)
    assert [h.address for h in merged.hosts] == list(targets)
    assert [h.address for h in merged.up] == [up.address]
    assert merged.stats.targets == 4 and merged.stats.sent == 4 and len(merged.shards) == 2
    with pytest.raises(ClusterError, match="covered 2 of 4"):
        merge_outcomes(targets, 7, (1, 1), [first], 1.0)


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


def test_killed_worker_loses_nothing(lab: LabHandle, tmp_path: Path) -> None:
    """SIGKILL one of two workers while it sweeps its shard: the scheduler reruns it; the result is still exactly the truth."""
    with dask_cluster(lab, tmp_path, workers=2) as cluster:
        victim_addr, victim = next(iter(cluster.workers.items()))
        sweep = lab.popen([sys.executable, "-m", "recon", "sweep", SPARSE17, "--cluster", cluster.address, "--json", "--all",
                           "--rate", "10000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())
        try:
            _wait_for(lambda: _has_raw_socket(victim.pid) or sweep.poll() is not None, "the victim to start sweeping")
            assert sweep.poll() is None, "the sweep ended before the victim worker started its shard"
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
            stdout, stderr = sweep.communicate(timeout=120)
        finally:
            if sweep.poll() is None:
                sweep.kill()
                sweep.communicate()
    assert sweep.returncode == 0, stderr
    rows, shard_lines = _parse(stdout, stderr)
    _check_sparse17(lab, rows, shard_lines, shards=2)
    sweepers = [line.split(" by ")[1].split()[0] for line in shard_lines]
    assert victim_addr not in sweepers  # the killed worker's shard was rerun by the survivor
    assert len(set(sweepers)) == 1


def test_local_cluster_of_two_processes(lab: LabHandle) -> None:
    res = lab.recon("sweep", SPARSE17, "--cluster", "local:2", "--json", "--all", timeout=180)
    assert res.returncode == 0, res.stderr
    rows, shard_lines = _parse(res.stdout, res.stderr)
    _check_sparse17(lab, rows, shard_lines, shards=2)


def test_shards_swept_directly_merge_to_the_local_sweep(lab: LabHandle) -> None:
    """sweep_shard over every part (one part twice) merges to what one local sweep reports, row for row."""
    from recon.cluster import ShardTask
    from recon.engine import Prober

    targets = build_targets(["198.18.1.0/24", "198.18.2.0/28"])
    with netns(lab.ns):
        with Prober() as prober:
            local = prober.sweep(targets, seed=3)
        base = ShardTask(tuple(targets.intervals), (), 3, (1, 1), (), 1.0, 1, False)
        outcomes = [sweep_shard(ShardTask(base.intervals, (), 3, s, (), 1.0, 1, False)) for s in shard_plan(3)]
    merged = merge_outcomes(targets, 3, (1, 1), [*outcomes, outcomes[0]], 2.0)
    strip = lambda hosts: [(h.address, h.status, h.reply, h.ttl) for h in hosts]
    assert strip(merged.hosts) == strip(local.hosts)
    assert len(merged.up) == 16 + 16 and merged.stats.targets == 256 + 16


# --- --resume: the journal, and a sweep killed mid-run that carries on ----------------------------


def test_journal_refuses_another_sweep_and_cuts_a_torn_tail(tmp_path: Path) -> None:
    from recon.errors import InputError
    from recon.resume import Journal

    path = tmp_path / "run.resume"
    header = {"targets": [[1, 9]], "seed": 4, "parts": 2}
    with Journal.open(str(path), header) as journal:
        journal.record((1, 2), {"hosts": []})
    with open(path, "a") as fh:
        fh.write('{"part": [2, 2], "hos')  # the process died mid-write
    with Journal.open(str(path), {**header, "seed": 0, "parts": 9}, defaults=("seed", "parts")) as journal:
        assert journal.done == {(1, 2): {"hosts": []}} and journal.header["seed"] == 4 and journal.header["parts"] == 2
    assert path.read_text().endswith("}\n")  # the torn line is gone, so new parts append cleanly
    with pytest.raises(InputError, match="seed differs"):
        Journal.open(str(path), {**header, "seed": 5})
    other = tmp_path / "other.txt"
    other.write_text("hello\n")
    with pytest.raises(InputError, match="not a recon sweep --resume file"):
        Journal.open(str(other), header)


def test_resume_after_a_kill_carries_on_and_equals_the_truth(lab: LabHandle, tmp_path: Path) -> None:
    """SIGKILL `sweep --resume` after its first part is recorded; the same command then sweeps only the rest."""
    journal = tmp_path / "sweep.resume"
    argv = [sys.executable, "-m", "recon", "sweep", SPARSE17, "198.19.0.0/16", "--yes", "--json", "--resume", str(journal),
            "--rate", "20000"]
    first = lab.popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())
    try:
        _wait_for(lambda: (journal.exists() and journal.read_text().count("\n") >= 2) or first.poll() is not None,
                  "the first part in the journal")
        assert first.poll() is None, "the sweep ended before it could be killed"
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate()
    assert journal.read_text().count("\n") == 2  # header + one part: the killed run got no further
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
