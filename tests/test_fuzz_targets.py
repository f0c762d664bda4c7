"""Fuzz the target parser: whatever the specs or file bytes, a valid TargetSet or one InputError.

Seeds are the specs of tests/test_targets.py and the README; Hypothesis mutates and
combines them. Every example must finish in bounded time and memory and never raise
anything but InputError (InvalidTarget, InvalidOption are InputErrors).

CI runs a brief, derandomized pass. A longer, random run by hand:

    RECON_FUZZ_EXAMPLES=20000 python -m pytest tests/test_fuzz_targets.py -q
"""

from __future__ import annotations

import re
import socket
import tempfile
import time
import tracemalloc
from typing import ClassVar

from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from recon.errors import InputError
from recon.targets import MAX_WITHOUT_YES, TargetSet, build_targets, is_ipv4, parse_shard
from tests.conftest import fuzz_settings

FUZZ = fuzz_settings(300, HealthCheck.filter_too_much)
SECONDS = 15.0  # one example under tracemalloc, on a loaded 2-core machine (the largest allowed set takes ~3 s)
PEAK_BYTES = 96 << 20  # the largest allowed set (MAX_RUNS runs) peaks near 60 MiB

SEEDS = [
    # accepted forms (tests/test_targets.py, README)
    "198.18.0.7", "198.18.0.1-120", "198.18.0.1-198.18.1.10", "198.18.0.250-198.18.1.10", "198.18.0.0/24",
    "198.18.0.77/30", "198.18.0-3.1-254", "198.18.0.1,198.18.0.9", "198.18.0.1,5,9", "198.18.0.*", "localhost",
    "phone.lab", "gateway.lab", "198.18.128.0/17", "198.18.3.1-2", "198.18.1.16-17", "10.0.0.0/8",
    "2001:db8::7", "2001:db8::1-2001:db8::ff", "2001:db8::1-ff", "2001:db8::/120", "2001:db8::77/126",
    "2001:db8::fffe-2001:db8::1:1", "::ffff:198.18.0.1", "fe80::1%lo", "ff02::1%lo", "ff02::1%1",
    # rejected forms
    "300.1.1.1", "1.2.3.4-2", "10.0.0.0/33", "1.2.3", "", "   ", "10.0.0.1-", "1.2.3.4/24/1", "1.2.3.4,",
    "198.18.0.9-198.18.0.1", "bad_name!", "2001:db8::/64", "198.18.0.١٠", "１９８.18.0.10", "0xc612000a", "0x7f.1",
    "0-255.0-255.0-255.1", "10.0-255.0-255.1,3,5", "fe80::1", "ff02::1", "fe80::1%nosuch0", "2001:db8::1%lo",
    "198.18.0.1%lo", "fe80::1-ff%lo", "2001:db8::1-12345", "nosuch.lab",
]
NOISE = [*"0123456789.-/,*:%xXaAfF #\t\n\x00\x1b ", "١", "０", "é", "\u00a0", "\u2028", "\udcff", "99999", "::", "255", "/"]


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """A seed with a few characters inserted, replaced or removed, or glued to another seed."""
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["insert", "replace", "delete", "glue", "repeat"]))
        at = draw(st.integers(0, len(text)))
        if op == "insert":
            text = text[:at] + draw(st.sampled_from(NOISE)) + text[at:]
        elif op == "replace" and text:
            text = text[:at] + draw(st.sampled_from(NOISE)) + text[at + 1:]
        elif op == "delete":
            text = text[:at] + text[at + 1:]
        elif op == "glue":
            text = text + draw(st.sampled_from([",", " ", "-", "/"])) + draw(st.sampled_from(SEEDS))
        else:
            text = text[:at] * draw(st.integers(1, 200)) + text[at:]
    return text


specs = st.lists(st.one_of(mutated(), st.text(max_size=40)), min_size=0, max_size=5)

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


class LabResolver:
    """The lab's names without any DNS query; checks that nothing numeric-looking is ever asked."""

    TABLE: ClassVar[dict[str, list[str]]] = {
        "localhost": ["127.0.0.1"], "phone.lab": ["198.18.0.10", "2001:db8::10"], "gateway.lab": ["198.18.0.1"]}

    def __call__(self, name: str) -> list[str]:
        assert _NAME.fullmatch(name) and not is_ipv4(name), f"the resolver was asked {name!r}"
        last = name.rstrip(".").rsplit(".", 1)[-1]
        numeric = re.fullmatch(r"[0-9]+|0[xX][0-9A-Fa-f]*", last)  # WHATWG URL: "ends in a number"
        assert not numeric, f"numeric-looking name {name!r} reached the resolver"
        if name.rstrip(".") not in self.TABLE:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.TABLE[name.rstrip(".")]


def check_bounded(run) -> TargetSet | None:  # type: ignore[no-untyped-def]
    """Run one parse: a TargetSet or an InputError, within SECONDS and PEAK_BYTES."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        result: TargetSet | None = run()
    except InputError as exc:
        assert "\n" not in str(exc), str(exc)  # one line
        result = None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.perf_counter() - start < SECONDS
    assert peak < PEAK_BYTES, f"{peak:,} bytes"
    return result


def check_set(t: TargetSet, yes: bool) -> None:
    assert t.total == len(t) + len(t.v6) + len(t.scoped) > 0
    assert yes or t.total <= MAX_WITHOUT_YES
    if len(t):
        assert is_ipv4(t[0]) and is_ipv4(t[-1]) and len(t) <= 1 << 32
    if len(t.v6):
        assert 0 <= t.v6[0] <= t.v6[-1] < 1 << 128
    assert all(s.ifindex > 0 and s.interface for s in t.scoped)


@FUZZ
@given(specs, specs, st.booleans())
def test_fuzz_specs(include: list[str], exclude: list[str], yes: bool) -> None:
    """Mutated and random specs (and exclusions): a valid TargetSet or an InputError, never anything else."""
    t = check_bounded(lambda: build_targets(include, exclude=exclude, yes=yes, resolver=LabResolver()))
    if t is not None:
        check_set(t, yes)


@FUZZ
@given(st.lists(st.one_of(mutated().map(lambda s: s.encode("utf-8", "surrogatepass")), st.binary(max_size=60)), max_size=6),
       st.sampled_from([b"\n", b"\r\n", b"\x00", b""]))
def test_fuzz_target_files(lines: list[bytes], newline: bytes) -> None:
    """Arbitrary bytes in an --input-file: a valid TargetSet or one InputError naming the file."""
    with tempfile.NamedTemporaryFile(prefix="recon-fuzz-", suffix=".txt") as f:
        f.write(newline.join(lines))
        f.flush()
        t = check_bounded(lambda: build_targets(input_file=f.name, resolver=LabResolver()))
    if t is not None:
        check_set(t, False)


@FUZZ
@given(st.one_of(st.none(), mutated(), st.text(max_size=12)), st.one_of(st.none(), st.text(max_size=8), st.integers(-5, 10**6)))
def test_fuzz_shard(text: str | None, shards: str | int | None) -> None:
    """Any --shard / --shards pair: a valid (I, N) with 1 <= I <= N, or InvalidOption."""
    try:
        i, n = parse_shard(text, shards)
    except InputError:
        return
    assert 1 <= i <= n <= 65_535
