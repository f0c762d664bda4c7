"""Sweeps beyond one process: shards of the seeded permutation run as tasks on a Dask cluster.

``recon sweep ... --cluster tcp://SCHEDULER:8786`` (or ``--cluster local:N``) splits the targets with
``TargetSet.order(seed, (i, N))``, which is disjoint and complete, and submits one task per shard.
A shard is the positions ≡ i-1 (mod N) of the IPv4 walk and of the IPv6 walk (each its own seeded
permutation, as ``engine.Prober.sweep`` shards them), plus the scoped targets (``fe80::1%eth0``,
``ff02::1%eth0``) in shard 1. Each task (``sweep_shard``) runs on a worker: it imports recon there and
sweeps its shard with the ordinary raw-socket engine (``Prober.sweep_iter``: ARP and Neighbor Discovery
on-link, ICMP/ICMPv6 and TCP/UDP routed) from that worker's host and network namespace, so a shard is
seen from that worker's vantage point. A task is small: intervals, never address lists; a scoped target
travels as text and is bound to the worker's interface of that name.

``ClusterStream`` hands the results back as each shard arrives (each task's done callback): the shard's
``ShardStats``, then its answered hosts, then (with ``down``) its silent targets as down rows, so a
printer can write them at once. The merge (``_Merge``) is keyed by shard and by address (family, value, scope:
``targets.address_key``): a shard that arrives twice is dropped before anything of it is recorded or
returned, a host is returned once, and shards that do not add up to the target set are an error, never
a silent gap.

Failure model: a task is pure and idempotent (a shard is a pure function of the target set, the
seed and the shard number), so when its worker dies the scheduler simply runs it again elsewhere;
``retries`` on submit covers a task that raises unexpectedly. Errors recon raises on purpose (bad
options, no CAP_NET_RAW on a worker, no such interface there) come back as data, so they are not
retried and keep their exit code.

Dask is an optional dependency (``pip install 'recon[cluster]'``) and is imported only here,
only when a cluster sweep starts. See ARCHITECTURE.md.
"""

from __future__ import annotations

import logging
import queue
import socket
import sys
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, fields, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeGuard

from recon.engine import check_sweep_options
from recon.errors import ExitStatus, InputError, InvalidOption, ReconEnvironmentError, ReconError
from recon.models import HostResult, ShardStats, SweepStats, WorkerStats, as_dict, from_dict

if TYPE_CHECKING:
    from recon.resume import Journal
    from recon.targets import TargetSet

__all__ = [
    "INSTALL_HINT",
    "ClusterError",
    "ClusterStream",
    "ShardOutcome",
    "ShardTask",
    "parse_cluster",
    "shard_plan",
    "shard_size",
    "sweep_shard",
    "worker_stats",
]

INSTALL_HINT = "pip install 'recon[cluster]'"
TASK_RETRIES = 2  # reruns of a task that raised; a dead worker's tasks are rerun by the scheduler on its own
CONNECT_TIMEOUT = 10.0
RESUME_PART = 65536  # with --resume, at most this many targets per part: what a stopped run can lose
MAX_PARTS = 65536
SORTED_SILENT = 1 << 20  # a shard's down rows come in address order up to this many targets, else in its walk's order
BATCH = 4096  # down rows handed back at a time

Key = tuple[int, int, str]  # targets.address_key: (family, value, scope)
_HOST_FIELDS = tuple(f.name for f in fields(HostResult))


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
    v6: tuple[tuple[int, int], ...] = ()  # IPv6 runs, 128-bit ints
    names6: tuple[tuple[int, str], ...] = ()
    scoped: tuple[str, ...] = ()  # "fe80::1%eth0": bound on the worker to its interface of that name

    def target_set(self) -> TargetSet:
        """The whole target set, as the worker rebuilds it (InvalidTarget when a scope's interface is not here)."""
        from recon.targets import TargetSet, V6Targets, scoped_target

        return TargetSet(self.intervals, dict(self.names), v6=V6Targets(self.v6, dict(self.names6)),
                         scoped=[scoped_target(s) for s in self.scoped])


@dataclass(frozen=True, slots=True)
class ShardOutcome:
    """What a worker sends back: the answered hosts of its shard (down ones are implied) and its counters."""

    shard: tuple[int, int]
    worker: str
    host: str
    hosts: tuple[HostResult, ...]  # up and unreachable, and scoped rows: the merge fills in the other silent as down
    stats: SweepStats | None
    error: str | None = None
    error_exit: int = int(ExitStatus.ENVIRONMENT)


def _task(targets: TargetSet, seed: int, shard: tuple[int, int], prober: dict[str, Any], timeout: float,
          retries: int | None, resolve: bool) -> ShardTask:
    return ShardTask(tuple(targets.intervals), tuple(targets.names.items()), seed, shard, tuple(sorted(prober.items())),
                     timeout, retries, resolve, tuple(targets.v6.intervals), tuple(targets.v6.names.items()),
                     tuple(str(s) for s in targets.scoped))


class _Halt:
    """Ctrl-C for a sweep in shards (``ClusterStream.stop``, from a signal handler: it sets a flag and calls ``wake``,
    nothing else): ``wake`` stops the shard sweeping here, or ends the wait for the cluster's next result."""

    def __init__(self) -> None:
        self.set = False
        self.wake: Callable[[], None] = lambda: None

    def __call__(self) -> None:
        self.set = True
        self.wake()

    def reach(self, stop: Callable[[], None]) -> None:
        """From now on a halt calls ``stop``; at once when the halt came already."""
        self.wake = stop
        if self.set:
            stop()


def sweep_shard(task: ShardTask, halt: _Halt | None = None) -> ShardOutcome:
    """Sweep one shard from this host (runs on a Dask worker; also callable directly). ``halt``: swept here, a
    Ctrl-C stops the engine through it (at its next drain point: the outcome is then partial)."""
    from recon.engine import Prober

    worker, host = _worker_identity(), socket.gethostname()
    try:
        targets = task.target_set()
        with Prober(**dict(task.prober)) as prober, \
                prober.sweep_iter(targets, timeout=task.timeout, retries=task.retries, seed=task.seed, shard=task.shard,
                                  resolve=task.resolve, down=False) as stream:  # the silent are implied: no row each
            if halt is not None:
                halt.reach(stream.stop)
            answered = tuple(stream)
    except ReconError as exc:  # as data: retrying cannot fix it, and its exit code must survive
        return ShardOutcome(task.shard, worker, host, (), None, f"{worker} ({host}): {exc}", int(exc.exit_status))
    return ShardOutcome(task.shard, worker, host, answered, stream.stats)


def _worker_identity() -> str:
    if "distributed" not in sys.modules:  # not on a Dask worker (--resume here): do not pay for importing it
        return "local"
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
    union of these ``parts`` residues mod N·parts, so the split is disjoint and complete (for the IPv4 and
    the IPv6 walk alike; the scoped targets go with the one part whose k is 1, as they go with shard 1).
    """
    k, n = shard
    return [(k + n * j, n * parts) for j in range(parts)]


def shard_size(size: int, shard: tuple[int, int]) -> int:
    """How many of ``size`` positions shard k/M holds (positions k-1, k-1+M, ... below size)."""
    k, m = shard
    return len(range(k - 1, size, m))


def _parts(targets: TargetSet, shard: tuple[int, int], threads: int, shards: int | None, resume: bool) -> int:
    """How many parts to cut shard I/N into: one per worker thread (each part ends with its own reply wait), with
    ``resume`` at least one per RESUME_PART targets, and always enough that no part holds more IPv6 addresses
    than one sweep may (engine6.MAX_V6_SWEEP, a /104); ``shards`` (given) is checked against that instead."""
    from recon.engine6 import MAX_V6_SWEEP

    v6 = shard_size(len(targets.v6), shard)
    least = -(-v6 // MAX_V6_SWEEP)
    if least > MAX_PARTS:
        raise InputError(f"{v6:,} IPv6 addresses is more than {MAX_PARTS:,} shards of {MAX_V6_SWEEP:,} (a /104) each",
                         hint="give fewer or longer IPv6 prefixes")
    if shards is not None:
        if shards < least:
            raise InvalidOption("shards", shards, f"at least {least} for {v6:,} IPv6 addresses (a /104 a shard at most)")
        return shards
    parts = max(threads, -(-targets.count(shard) // RESUME_PART)) if resume else threads
    return min(MAX_PARTS, max(parts, least))


class ClusterStream:
    """A sweep cut into shards, on a Dask cluster or here one after another, handed back as each shard arrives.

    Iterating gives, per shard: its ``ShardStats`` (``resumed`` for a shard read back from the ``--resume``
    journal), then lists of its ``HostResult``s: the answered hosts, then (with ``down``) its silent targets as
    down rows. A shard that arrives twice is dropped; a missing one ends the iteration with a ClusterError.
    ``plan`` lists the shards (k, M) of the sweep; ``stats`` and ``shards`` are final once the iteration has
    ended. The options are checked, the journal opened and the cluster reached (or started) here, before anything
    is swept; a journal that already holds every part needs no cluster, and none is reached or started. ``stop()``
    (Ctrl-C) ends the iteration early, with what arrived. ``close()`` (or leaving the ``with`` block) cancels what
    is still running and closes them.
    """

    def __init__(self, targets: TargetSet, cluster: str | None, *, shards: int | None = None, timeout: float = 1.0,
                 retries: int | None = 1, seed: int | None = None, shard: tuple[int, int] = (1, 1), resolve: bool = False,
                 resume: str | None = None, down: bool = True, **prober: Any) -> None:
        check_sweep_options(timeout=timeout, retries=retries)  # retries None: the engine's adaptive retries
        if shards is not None and not 1 <= shards <= MAX_PARTS:
            raise InvalidOption("shards", shards, "a whole number from 1 to 65536")
        if cluster is not None:
            parse_cluster(cluster)  # a bad address is refused before anything else happens
        _check_prober(prober)
        _parts(targets, shard, 1, shards, False)  # too much IPv6 for any number of parts: refused before a cluster starts
        self._stack = ExitStack()
        self.wall = 0.0
        self._halt = _Halt()
        self._journal: Journal | None = None
        try:
            journal = self._journal = self._stack.enter_context(_load(resume)) if resume is not None else None
            # A cluster only for parts still to do: a journal that holds every part is printed without one.
            client = self._connect(cluster) if cluster is not None and (journal is None or journal.fresh) else None
            threads = max(1, sum(client.nthreads().values())) if client is not None else 1
            parts = _parts(targets, shard, threads, shards, resume is not None)  # a journal's own count wins (below)
            given_seed, seed = seed, 0 if seed is None else seed  # every part must walk the same permutation
            if journal is not None:
                _start(journal, targets, seed, shard, parts, timeout, retries, resolve, prober,
                       defaults=tuple(k for k, v in (("seed", given_seed), ("parts", shards)) if v is None))
                seed, parts = int(journal.header["seed"]), int(journal.header["parts"])
            plan = [s for s in shard_plan(parts, shard) if targets.count(s)]
            self.plan: tuple[tuple[int, int], ...] = tuple(plan)  # every shard of the sweep, done before or not
            self._merge = _Merge(targets, seed, shard, plan, down)
            done = _resumed(journal, targets)
            base = _task(targets, seed, shard, prober, timeout, retries, resolve)
            tasks = [replace(base, shard=s) for s in plan if s not in done]
            if tasks and cluster is not None and client is None:
                client = self._connect(cluster)  # a journal with parts left: they run there
        except BaseException:
            self._stack.close()
            raise
        self._items = self._generate(client, tasks, done, journal)

    def _connect(self, cluster: str) -> Any:
        """A Dask client on ``cluster`` (a LocalCluster started for ``local:N``), closed with the stream."""
        return self._stack.enter_context(_client(cluster))

    def _generate(self, client: Any, tasks: list[ShardTask], done: dict[tuple[int, int], ShardOutcome],
                  journal: Journal | None) -> Generator[ShardStats | list[HostResult], None, None]:
        t0 = time.monotonic()
        arriving = _outcomes(client, tasks, self._halt)
        try:
            # After a halt (Ctrl-C) nothing more is recorded or handed back, and no shard is missed (the merge's check
            # is skipped); a shard recorded before it is handed back whole.
            for outcome in done.values():
                if self._halt.set:
                    return
                yield from self._merge.add(outcome, resumed=True)
            for outcome in arriving:
                if self._halt.set:
                    return
                if self._merge.has(outcome.shard):
                    continue  # arrived twice: dropped before it is recorded or handed back
                if journal is not None:
                    journal.record(outcome.shard, _outcome_to_json(outcome))
                yield from self._merge.add(outcome)
        finally:
            arriving.close()
            self.wall = time.monotonic() - t0  # also when it ends early (Ctrl-C): the time until then
        if not self._halt.set:
            self._merge.check()

    def __iter__(self) -> Iterator[ShardStats | list[HostResult]]:
        return self._items

    def stop(self) -> None:
        """End the sweep early; safe from a signal handler (``cli._sigint_calls``: Ctrl-C). A shard sweeping here
        stops at its engine's next drain point and is dropped, the wait for a cluster's next result ends at once;
        the iteration then ends with the shards recorded and handed back by then (the others are cancelled when the
        stream closes, and swept again by a --resume run), and ``interrupted`` is True."""
        self._halt()

    @property
    def interrupted(self) -> bool:
        return self._halt.set

    @property
    def recorded(self) -> bool:
        """Whether the ``--resume`` journal holds a finished part (read back or recorded by this run; after the stream
        is closed too): without one it is left as it was found, and a run of the same command starts over."""
        return self._journal is not None and self._journal.holds_parts

    @property
    def stats(self) -> SweepStats:
        """The shards' counters added up; duration is the run's wall time (submit to last result)."""
        return self._merge.stats(self.wall)

    @property
    def shards(self) -> tuple[ShardStats, ...]:
        return self._merge.shard_stats()

    def close(self) -> None:
        try:
            self._items.close()  # cancels the tasks still running (their generator's finally)
        finally:
            self._stack.close()

    def __enter__(self) -> ClusterStream:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _check_prober(prober: dict[str, Any]) -> None:
    """Refuse bad Prober options here, before a cluster starts (the interface is checked where each part runs)."""
    from recon.engine import Prober

    Prober(**{k: v for k, v in prober.items() if k != "interface"}).close()  # validates; opens no socket


def _outcomes(client: Any, tasks: list[ShardTask], halt: _Halt) -> Generator[ShardOutcome, None, None]:
    """Each part's outcome as it completes (on the cluster, or here one after another when ``client`` is None);
    a part that failed on purpose raises its error, and closing the iterator cancels the parts still running.
    After ``halt`` nothing more comes: a part stopped here midway is dropped (a --resume run sweeps it again)."""
    if client is None:
        for task in tasks:
            if halt.set:
                return
            swept = sweep_shard(task, halt)
            if halt.set:
                return
            yield _checked(swept)
        return
    run_id = uuid.uuid4().hex[:12]
    futures = [client.submit(sweep_shard, t, key=f"recon-sweep-{run_id}-{t.shard[0]}of{t.shard[1]}", retries=TASK_RETRIES)
               for t in tasks]
    # As distributed.as_completed, but a halt ends the wait at once: each finished future, and the halt's None, go
    # into one queue (a SimpleQueue: its put is safe from a signal handler, and its get runs the handler while it waits).
    finished: queue.SimpleQueue[Any] = queue.SimpleQueue()
    for future in futures:
        future.add_done_callback(finished.put)
    halt.reach(lambda: finished.put(None))
    try:
        for _ in futures:
            future = finished.get()
            if halt.set:
                return
            try:
                outcome: ShardOutcome = future.result()
            except Exception as exc:  # KilledWorker after too many worker deaths, or a task that kept raising
                raise ClusterError(f"a shard failed on every worker that tried it: {type(exc).__name__}: {exc}",
                                   hint="check the workers' logs; each needs recon installed and CAP_NET_RAW") from None
            yield _checked(outcome)
    finally:
        client.cancel([f for f in futures if not f.done()])


def _checked(outcome: ShardOutcome) -> ShardOutcome:
    if outcome.error is not None:
        err = ClusterError(outcome.error)
        err.exit_status = ExitStatus(outcome.error_exit)
        raise err
    return outcome


class _Merge:
    """Shards' outcomes → rows, keyed by shard and by address (family, value, scope), each target once.

    ``add`` hands back a shard's statistics and rows (its answered hosts, then with ``down`` its silent
    targets as down, from the shard's own walk: nothing is kept per target); ``check`` says whether every
    planned shard arrived. Per shard only its answered hosts' keys are held, and across shards the keys of
    the hosts already handed back (bounded by the hosts that answered, as a table is)."""

    def __init__(self, targets: TargetSet, seed: int, shard: tuple[int, int], plan: list[tuple[int, int]], down: bool) -> None:
        self.targets, self.seed, self.shard, self.down = targets, seed, shard, down
        self.plan = set(plan)
        self.outcomes: dict[tuple[int, int], ShardOutcome] = {}
        self.resumed: set[tuple[int, int]] = set()
        self.seen: set[Key] = set()

    def has(self, part: tuple[int, int]) -> bool:
        return part in self.outcomes

    def add(self, outcome: ShardOutcome, *, resumed: bool = False) -> Iterator[ShardStats | list[HostResult]]:
        """The shard's ShardStats and its rows; nothing when the shard was here already or is not in the plan."""
        from recon.targets import address_key

        if outcome.shard in self.outcomes or outcome.shard not in self.plan:
            return
        self.outcomes[outcome.shard] = outcome
        if resumed:
            self.resumed.add(outcome.shard)
        yield self._shard_stats(outcome)
        answered: set[Key] = set()
        rows = []
        for h in outcome.hosts:
            key = address_key(h.address)
            answered.add(key)
            if key not in self.seen:
                self.seen.add(key)
                rows.append(h)
        if rows:
            yield rows
        if self.down:
            yield from self._silent(outcome.shard, answered)

    def _silent(self, part: tuple[int, int], answered: set[Key]) -> Iterator[list[HostResult]]:
        """The shard's unscoped targets that did not answer, as down rows (scoped ones come from the worker)."""
        from recon.targets import int_to_ip, int_to_ip6

        for family, runs, text in ((4, self.targets, int_to_ip), (6, self.targets.v6, int_to_ip6)):
            names = runs.names
            walk: Iterable[int] = runs.order(self.seed, part)
            if shard_size(len(runs), part) <= SORTED_SILENT:
                walk = sorted(walk)
            batch: list[HostResult] = []
            for value in walk:
                if (family, value, "") not in answered:
                    batch.append(HostResult(text(value), "down", hostname=names.get(value)))
                    if len(batch) >= BATCH:
                        yield batch
                        batch = []
            if batch:
                yield batch

    def check(self) -> None:
        """A ClusterError when a planned shard is missing: never a silent gap."""
        if self.plan - set(self.outcomes):
            covered = sum(self.targets.count(p) for p in self.outcomes)
            raise ClusterError(f"the shards covered {covered} of {self.targets.count(self.shard)} targets",
                               hint="run the sweep again")

    def _shard_stats(self, o: ShardOutcome) -> ShardStats:
        s = o.stats if o.stats is not None else SweepStats()
        up = sum(1 for h in o.hosts if h.status == "up")
        return ShardStats(o.shard[0], o.shard[1], o.worker, o.host, self.targets.count(o.shard), up, s.sent, s.received,
                          s.duration_s, resumed=o.shard in self.resumed)

    def shard_stats(self) -> tuple[ShardStats, ...]:
        return tuple(self._shard_stats(self.outcomes[s]) for s in sorted(self.outcomes))

    def stats(self, wall: float) -> SweepStats:
        """The arrived shards' counters added up: ``targets`` those they hold, ``interrupted`` when some are missing."""
        stats = _sum_stats([o.stats for o in self.outcomes.values() if o.stats is not None],
                           sum(self.targets.count(p) for p in self.outcomes), wall)
        return replace(stats, interrupted=bool(self.plan - set(self.outcomes)))


def worker_stats(shards: Iterable[ShardStats]) -> tuple[WorkerStats, ...]:
    """Per worker (address and host), the shards it swept in this run added up (resumed shards are left out)."""
    by: dict[tuple[str, str], list[ShardStats]] = {}
    for s in shards:
        if not s.resumed:
            by.setdefault((s.worker, s.host), []).append(s)
    return tuple(WorkerStats(w, h, len(ss), sum(s.targets for s in ss), sum(s.up for s in ss), sum(s.sent for s in ss),
                             sum(s.received for s in ss), round(sum(s.duration_s for s in ss), 6))
                 for (w, h), ss in sorted(by.items()))


def _sum_stats(stats: list[SweepStats], targets: int, wall: float) -> SweepStats:
    """The shards' counters added up; duration is the cluster run's wall time (submit to last result)."""
    duration = max(wall, 1e-9)
    sent = sum(s.sent for s in stats)
    methods = list(dict.fromkeys(m for s in stats for m in s.method.split("+")))
    return SweepStats(
        targets=targets, sent=sent, received=sum(s.received for s in stats), duplicates=sum(s.duplicates for s in stats),
        late=sum(s.late for s in stats), retries=sum(s.retries for s in stats), unreachable=sum(s.unreachable for s in stats),
        ignored=sum(s.ignored for s in stats), send_errors=sum(s.send_errors for s in stats), duration_s=round(duration, 6),
        pps=round(sent / duration, 1), engine=stats[0].engine if stats else "raw",
        method="+".join(methods) if methods else "icmp",
    )


# --- the --resume journal ---------------------------------------------------------------------------


def _load(resume: str) -> Journal:
    from recon.resume import Journal

    return Journal.load(resume)


def _start(journal: Journal, targets: TargetSet, seed: int, shard: tuple[int, int], parts: int, timeout: float,
           retries: int | None, resolve: bool, prober: dict[str, Any], defaults: tuple[str, ...]) -> None:
    """Write the sweep's identity to a fresh journal, or check it against the one recorded (whose seed and number
    of parts win where the user gave none: ``defaults``)."""
    from recon.targets import int_to_ip6

    options = {k: prober.get(k) for k in ("method", "probe", "engine", "interface", "source")}
    header = {"targets": targets.intervals, "targets6": [[int_to_ip6(lo), int_to_ip6(hi)] for lo, hi in targets.v6.intervals],
              "scoped": [str(s) for s in targets.scoped], "seed": seed, "shard": list(shard), "parts": parts,
              "timeout": timeout, "retries": retries, "resolve": resolve, **options}
    journal.start(header, defaults=defaults)
    kept_seed, kept_parts = journal.header.get("seed"), journal.header.get("parts")  # the recorded ones win (``defaults``)
    if not (_whole(kept_seed) and 0 <= kept_seed < 2**64 and _whole(kept_parts) and 1 <= kept_parts <= MAX_PARTS):
        raise InputError(f"{journal.path}: its header is damaged (seed {kept_seed!r}, parts {kept_parts!r})",
                         hint="give a new --resume file to start over")


def _whole(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _resumed(journal: Journal | None, targets: TargetSet) -> dict[tuple[int, int], ShardOutcome]:
    """The parts a previous run finished, from the journal."""
    if journal is None:
        return {}
    done = {}
    for part, row in sorted(journal.done.items()):
        try:
            done[part] = _outcome_from_json(part, row, targets)
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{journal.path}: the record of part {part[0]}/{part[1]} is damaged",
                             hint="give a new --resume file to start over") from None
    return done


def _outcome_to_json(o: ShardOutcome) -> dict[str, Any]:
    names = _HOST_FIELDS  # flat fields: read directly (dataclasses.asdict deep-copies, ~80 µs a host)
    return {"worker": o.worker, "host": o.host, "hosts": [{k: getattr(h, k) for k in names} for h in o.hosts],
            "stats": as_dict(o.stats) if o.stats is not None else None}


def _outcome_from_json(part: tuple[int, int], row: dict[str, Any], targets: TargetSet) -> ShardOutcome:
    """A part the journal recorded (ValueError, KeyError or TypeError when it is not what ``record`` wrote)."""
    from recon.targets import exact_address

    stats = from_dict(SweepStats, row["stats"]) if row.get("stats") is not None else None
    if not isinstance(row["hosts"], list):
        raise ValueError("hosts: not a list")
    hosts = tuple(from_dict(HostResult, h) for h in row["hosts"])
    for h in hosts:
        family, value, scope = exact_address(h.address)  # a dotted quad, or compressed IPv6 (+ an interface name)
        ours = scope or (targets.contains_int(value) if family == 4 else targets.v6.contains_int(value))
        if not ours or h.status not in ("up", "down", "unreachable"):
            raise ValueError("hosts: an address or status this sweep cannot have written")
    return ShardOutcome(part, str(row["worker"]), str(row["host"]), hosts, stats)


# --- the cluster ------------------------------------------------------------------------------------


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
