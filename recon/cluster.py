"""Sweeps beyond one process: shards of the seeded permutation run as tasks on a Dask cluster.

``recon sweep ... --cluster tcp://SCHEDULER:8786`` (or ``--cluster local:N``) splits the targets with
``TargetSet.order(seed, (i, N))``, which is disjoint and complete, and submits one task per shard.
Each task (``sweep_shard``) runs on a worker: it imports recon there and sweeps its shard with the
ordinary raw-socket engine (``Prober.sweep``) from that worker's host and network namespace, so a
shard is seen from that worker's vantage point. Results come back through ``as_completed`` and are
merged into one ``SweepResult`` (the same rows as a local sweep, in address order) plus one
``ShardStats`` per shard.

Failure model: a task is pure and idempotent (a shard is a pure function of the target set, the
seed and the shard number), so when its worker dies the scheduler simply runs it again elsewhere;
``retries`` on submit covers a task that raises unexpectedly. The merge is keyed by shard and by
address: a shard that arrives twice is dropped, and a sweep whose shards do not add up to the
target set is an error, never a silent gap. Errors recon raises on purpose (bad options, no
CAP_NET_RAW on a worker) come back as data, so they are not retried and keep their exit code.

Dask is an optional dependency (``pip install 'recon[cluster]'``) and is imported only here,
only when a cluster sweep starts. See ARCHITECTURE.md.
"""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeGuard

from recon.engine import check_sweep_options
from recon.errors import ExitStatus, InputError, InvalidOption, ReconEnvironmentError, ReconError
from recon.models import HostResult, ShardStats, SweepResult, SweepStats, as_dict, from_dict

if TYPE_CHECKING:
    from recon.resume import Journal
    from recon.targets import TargetSet

__all__ = [
    "INSTALL_HINT",
    "ClusterError",
    "ShardOutcome",
    "ShardTask",
    "cluster_sweep",
    "merge_outcomes",
    "parse_cluster",
    "shard_plan",
    "shard_size",
    "sweep_shard",
]

INSTALL_HINT = "pip install 'recon[cluster]'"
TASK_RETRIES = 2  # reruns of a task that raised; a dead worker's tasks are rerun by the scheduler on its own
CONNECT_TIMEOUT = 10.0
RESUME_PART = 65536  # with --resume, at most this many targets per part: what a stopped run can lose


class ClusterError(ReconEnvironmentError):
    """The cluster cannot be reached, or a shard failed on every worker that tried it (exit 3)."""


@dataclass(frozen=True, slots=True)
class ShardTask:
    """Everything a worker needs to sweep one shard; small and picklable (intervals, not addresses)."""

    intervals: tuple[tuple[int, int], ...]
    names: tuple[tuple[int, str], ...]
    seed: int
    shard: tuple[int, int]
    prober: tuple[tuple[str, Any], ...]  # Prober(**dict(prober)): method, probe, engine, interface, source, rate
    timeout: float
    retries: int | None
    resolve: bool


@dataclass(frozen=True, slots=True)
class ShardOutcome:
    """What a worker sends back: the answered hosts of its shard (down ones are implied) and its counters."""

    shard: tuple[int, int]
    worker: str
    host: str
    hosts: tuple[HostResult, ...]  # up and unreachable only: the merge fills in the silent as down
    stats: SweepStats | None
    error: str | None = None
    error_exit: int = int(ExitStatus.ENVIRONMENT)


def sweep_shard(task: ShardTask) -> ShardOutcome:
    """Sweep one shard from this host (runs on a Dask worker; also callable directly)."""
    from recon.engine import Prober
    from recon.targets import TargetSet

    worker, host = _worker_identity(), socket.gethostname()
    targets = TargetSet(task.intervals, dict(task.names))
    try:
        with Prober(**dict(task.prober)) as prober, \
                prober.sweep_iter(targets, timeout=task.timeout, retries=task.retries, seed=task.seed, shard=task.shard,
                                  resolve=task.resolve, down=False) as stream:  # the silent are implied: no row each
            answered = tuple(stream)
    except ReconError as exc:  # as data: retrying cannot fix it, and its exit code must survive
        return ShardOutcome(task.shard, worker, host, (), None, f"{worker} ({host}): {exc}", int(exc.exit_status))
    return ShardOutcome(task.shard, worker, host, answered, stream.stats)


def _worker_identity() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):  # not inside a Dask task
        return "local"


def _small_number(text: str, digits: int) -> bool:
    """ASCII digits only (str.isdigit also takes '١'), and few enough that int() cannot refuse them."""
    return text.isascii() and text.isdigit() and len(text) <= digits


def parse_cluster(text: str) -> tuple[str, int | None]:
    """``tcp://HOST:PORT`` → (address, None); ``local:N`` → ("local", N); anything else: InvalidOption."""
    if text.startswith("local:"):
        count = text[len("local:"):]
        if _small_number(count, 3) and 1 <= int(count) <= 256:
            return "local", int(count)
        raise InvalidOption("--cluster", text, "local:N with N from 1 to 256 worker processes, e.g. local:2")
    scheme, sep, rest = text.partition("://")
    host, colon, port = rest.rpartition(":")
    if sep and scheme in ("tcp", "tls") and host and colon and _small_number(port, 5) and 0 < int(port) < 65536:
        return text, None
    raise InvalidOption("--cluster", text, "a Dask scheduler address such as tcp://198.18.0.10:8786, or local:N")


def shard_plan(parts: int, shard: tuple[int, int] = (1, 1)) -> list[tuple[int, int]]:
    """Split shard I/N of the permutation into ``parts`` shards of it: (I + N·(j-1)) / (N·parts), j = 1..parts.

    ``order`` gives shard k/M the positions ≡ k-1 (mod M); the positions ≡ I-1 (mod N) are exactly the
    union of these ``parts`` residues mod N·parts, so the split is disjoint and complete.
    """
    k, n = shard
    return [(k + n * j, n * parts) for j in range(parts)]


def shard_size(size: int, shard: tuple[int, int]) -> int:
    """How many of ``size`` positions shard k/M holds (positions k-1, k-1+M, ... below size)."""
    k, m = shard
    return len(range(k - 1, size, m))


def cluster_sweep(targets: TargetSet, cluster: str | None, *, shards: int | None = None, timeout: float = 1.0,
                  retries: int | None = 1, seed: int | None = None, shard: tuple[int, int] = (1, 1), resolve: bool = False,
                  resume: str | None = None, on_shard: Callable[[ShardStats], None] | None = None,
                  **prober: Any) -> SweepResult:
    """Sweep ``targets`` (or shard I/N of them) in parts, on a Dask cluster or here; one merged SweepResult.

    ``cluster``: ``tcp://SCHEDULER:PORT``, ``local:N``, or None to sweep the parts one after another in this
    process. ``shards``: how many parts (default: one per worker thread, since every part ends with its own
    reply wait; with ``resume`` at least one per RESUME_PART targets). ``resume``: a journal file (recon.resume)
    that records the seed, the parts and each finished part, so a stopped run carries on where it stopped.
    ``on_shard`` is called with each part's statistics as it arrives. ``prober``: Prober options (method,
    probe, engine, interface, source, rate), applied wherever a part runs.
    """
    check_sweep_options(timeout=timeout, retries=retries)  # retries None: the engine's adaptive retries
    if shards is not None and not 1 <= shards <= 65536:
        raise InvalidOption("shards", shards, "a whole number from 1 to 65536")
    if cluster is not None:
        parse_cluster(cluster)  # a bad address is refused before anything else happens
    _check_prober(prober)
    given_seed = seed
    journal: Journal | None = None
    try:
        with _client(cluster) if cluster is not None else nullcontext(None) as client:
            threads = max(1, sum(client.nthreads().values())) if client is not None else 1
            parts = shards or (max(threads, -(-shard_size(len(targets), shard) // RESUME_PART)) if resume else threads)
            seed = 0 if seed is None else seed  # every part must walk the same permutation
            if resume is not None:
                journal = _journal(resume, targets, seed, shard, parts, timeout, retries, resolve, prober,
                                   defaults=tuple(k for k, v in (("seed", given_seed), ("parts", shards)) if v is None))
                seed, parts = int(journal.header["seed"]), int(journal.header["parts"])
            base = ShardTask(tuple(targets.intervals), tuple(targets.names.items()), seed, shard,
                             tuple(sorted(prober.items())), timeout, retries, resolve)
            done = _resumed(journal, on_shard)
            plan = [s for s in shard_plan(parts, shard) if shard_size(len(targets), s) and s not in done]
            t0 = time.monotonic()
            outcomes = _run(client, [replace(base, shard=s) for s in plan], _recorder(journal, on_shard))
            wall = time.monotonic() - t0
    finally:
        if journal is not None:
            journal.close()
    return merge_outcomes(targets, seed, shard, [*done.values(), *outcomes], wall)


def _check_prober(prober: dict[str, Any]) -> None:
    """Refuse bad Prober options here, before a cluster starts (the interface is checked where each part runs)."""
    from recon.engine import Prober

    Prober(**{k: v for k, v in prober.items() if k != "interface"}).close()  # validates; opens no socket


def _journal(resume: str, targets: TargetSet, seed: int, shard: tuple[int, int], parts: int, timeout: float,
             retries: int | None, resolve: bool, prober: dict[str, Any], defaults: tuple[str, ...]) -> Journal:
    from recon.resume import Journal

    options = {k: prober.get(k) for k in ("method", "probe", "engine", "interface", "source")}
    header = {"targets": targets.intervals, "seed": seed, "shard": list(shard), "parts": parts,
              "timeout": timeout, "retries": retries, "resolve": resolve, **options}
    journal = Journal.open(resume, header, defaults=defaults)
    kept_seed, kept_parts = journal.header.get("seed"), journal.header.get("parts")  # the recorded ones win (``defaults``)
    if not (_whole(kept_seed) and 0 <= kept_seed < 2**64 and _whole(kept_parts) and 1 <= kept_parts <= 65536):
        journal.close()
        raise InputError(f"{resume}: its header is damaged (seed {kept_seed!r}, parts {kept_parts!r})",
                         hint="give a new --resume file to start over")
    return journal


def _whole(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _resumed(journal: Journal | None, on_shard: Callable[[ShardStats], None] | None) -> dict[tuple[int, int], ShardOutcome]:
    """The parts a previous run finished, from the journal (reported through ``on_shard`` as resumed)."""
    if journal is None:
        return {}
    done = {}
    for part, row in sorted(journal.done.items()):
        try:
            done[part] = _outcome_from_json(part, row)
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{journal.path}: the record of part {part[0]}/{part[1]} is damaged",
                             hint="give a new --resume file to start over") from None
    if on_shard is not None:
        for outcome in done.values():
            on_shard(replace(_shard_stats(outcome), resumed=True))
    return done


def _recorder(journal: Journal | None, on_shard: Callable[[ShardStats], None] | None) -> Callable[[ShardOutcome], None]:
    def record(outcome: ShardOutcome) -> None:
        if journal is not None:
            journal.record(outcome.shard, _outcome_to_json(outcome))
        if on_shard is not None:
            on_shard(_shard_stats(outcome))

    return record


def _outcome_to_json(o: ShardOutcome) -> dict[str, Any]:
    return {"worker": o.worker, "host": o.host, "hosts": [as_dict(h) for h in o.hosts],
            "stats": as_dict(o.stats) if o.stats is not None else None}


def _outcome_from_json(part: tuple[int, int], row: dict[str, Any]) -> ShardOutcome:
    """A part the journal recorded (ValueError, KeyError or TypeError when it is not what ``record`` wrote)."""
    from recon.targets import is_ipv4

    stats = from_dict(SweepStats, row["stats"]) if row.get("stats") is not None else None
    if not isinstance(row["hosts"], list):
        raise ValueError("hosts: not a list")
    hosts = tuple(from_dict(HostResult, h) for h in row["hosts"])
    if not all(is_ipv4(h.address) and h.status in ("up", "down", "unreachable") for h in hosts):
        raise ValueError("hosts: an address or status this sweep cannot have written")
    return ShardOutcome(part, str(row["worker"]), str(row["host"]), hosts, stats)


def _run(client: Any, tasks: list[ShardTask], record: Callable[[ShardOutcome], None]) -> list[ShardOutcome]:
    """Run every part (on the cluster, or here one after another when ``client`` is None); ``record`` each as it arrives."""
    outcomes: dict[tuple[int, int], ShardOutcome] = {}

    def accept(outcome: ShardOutcome) -> None:
        if outcome.error is not None:
            err = ClusterError(outcome.error)
            err.exit_status = ExitStatus(outcome.error_exit)
            raise err
        if outcome.shard not in outcomes:  # a part that arrives twice is dropped
            outcomes[outcome.shard] = outcome
            record(outcome)

    if client is None:
        for task in tasks:
            accept(sweep_shard(task))
    else:
        _run_on(client, tasks, accept)
    return [outcomes[s] for s in sorted(outcomes)]


def _run_on(client: Any, tasks: list[ShardTask], accept: Callable[[ShardOutcome], None]) -> None:
    """Submit every part to the cluster and accept them as they complete; the first error cancels the rest."""
    from distributed import as_completed

    run_id = uuid.uuid4().hex[:12]
    futures = [client.submit(sweep_shard, t, key=f"recon-sweep-{run_id}-{t.shard[0]}of{t.shard[1]}", retries=TASK_RETRIES)
               for t in tasks]
    try:
        for future in as_completed(futures):
            try:
                outcome: ShardOutcome = future.result()
            except Exception as exc:  # KilledWorker after too many worker deaths, or a task that kept raising
                raise ClusterError(f"a shard failed on every worker that tried it: {type(exc).__name__}: {exc}",
                                   hint="check the workers' logs; each needs recon installed and CAP_NET_RAW") from None
            accept(outcome)
    finally:
        client.cancel([f for f in futures if not f.done()])


def _shard_stats(o: ShardOutcome) -> ShardStats:
    s = o.stats if o.stats is not None else SweepStats()
    up = sum(1 for h in o.hosts if h.status == "up")
    return ShardStats(o.shard[0], o.shard[1], o.worker, o.host, s.targets, up, s.sent, s.received, s.duration_s)


def merge_outcomes(targets: TargetSet, seed: int, shard: tuple[int, int], outcomes: list[ShardOutcome],
                   wall: float) -> SweepResult:
    """One SweepResult from the shards' outcomes, keyed by address; every target of ``shard`` exactly once.

    A duplicate outcome (same shard twice) is dropped; a missing shard, or shards whose target counts
    do not add up to the size of ``shard``, is a ClusterError rather than a silent gap.
    """
    unique: dict[tuple[int, int], ShardOutcome] = {}
    for o in outcomes:
        unique.setdefault(o.shard, o)
    expected = shard_size(len(targets), shard)
    counted = sum(o.stats.targets for o in unique.values() if o.stats is not None)
    if counted != expected:
        raise ClusterError(f"the shards covered {counted} of {expected} targets", hint="run the sweep again")
    from recon.targets import ip_to_int

    answered: dict[int, HostResult] = {}
    for o in unique.values():
        for h in o.hosts:
            answered.setdefault(ip_to_int(h.address), h)
    hosts = tuple(_rows(targets, seed, shard, answered))
    stats = [o.stats for o in unique.values() if o.stats is not None]
    return SweepResult(hosts=hosts, stats=_sum_stats(stats, expected, wall),
                       shards=tuple(_shard_stats(unique[s]) for s in sorted(unique)))


def _rows(targets: TargetSet, seed: int, shard: tuple[int, int], answered: dict[int, HostResult]) -> Iterator[HostResult]:
    """Every target of the shard in address order (as a local sweep lists them); the unanswered are down."""
    from recon.targets import int_to_ip

    members = targets.ints() if shard == (1, 1) else iter(sorted(targets.order(seed, shard)))
    names = targets.names
    for a in members:
        hit = answered.get(a)
        yield hit if hit is not None else HostResult(int_to_ip(a), "down", hostname=names.get(a))


def _sum_stats(stats: list[SweepStats], targets: int, wall: float) -> SweepStats:
    """The shards' counters added up; duration is the cluster run's wall time (submit to last result)."""
    duration = max(wall, 1e-9)
    sent = sum(s.sent for s in stats)
    methods = {s.method for s in stats}
    return SweepStats(
        targets=targets, sent=sent, received=sum(s.received for s in stats), duplicates=sum(s.duplicates for s in stats),
        late=sum(s.late for s in stats), retries=sum(s.retries for s in stats), unreachable=sum(s.unreachable for s in stats),
        ignored=sum(s.ignored for s in stats), send_errors=sum(s.send_errors for s in stats), duration_s=round(duration, 6),
        pps=round(sent / duration, 1), engine=stats[0].engine if stats else "raw",
        method=methods.pop() if len(methods) == 1 else "arp+icmp",
    )


@contextmanager
def _client(cluster: str) -> Iterator[Any]:
    """A Dask client on the scheduler at ``cluster``, or on a LocalCluster of N worker processes for ``local:N``."""
    address, local_workers = parse_cluster(cluster)
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ReconEnvironmentError("--cluster needs dask and distributed", hint=f"install them with {INSTALL_HINT}") from None
    if local_workers is not None:
        # Worker processes are children of this one: they share its network namespace and privileges.
        with LocalCluster(n_workers=local_workers, processes=True, threads_per_worker=1, dashboard_address=None,
                          silence_logs=logging.ERROR) as lc, \
                Client(lc) as client:
            yield client
        return
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {exc}",
                           hint="start one with 'dask scheduler' and workers with 'dask worker ADDRESS'") from None
    with client:
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
        except TimeoutError:
            raise ClusterError(f"the Dask scheduler at {address} has no workers",
                               hint="start them with 'dask worker ADDRESS' where the sweep should run from") from None
        yield client
