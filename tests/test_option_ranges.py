"""Numeric options share one range check (recon.errors.check_range), each with its own bounds and
words: NaN, infinities and booleans never pass, the bounds themselves do (unless the range opens
above its low end), and the error names the option and its range. No root, no lab, nothing sent."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from recon.capture import _check as sniff_check
from recon.cluster import ClusterStream
from recon.craft import _check_send_options as craft_check
from recon.engine import check_sweep_options
from recon.errors import InvalidOption, check_range
from recon.ping_options import PingOptions
from recon.targets import build_targets
from recon.watch import check_options as watch_check

BAD = [math.nan, math.inf, -math.inf, True]


def test_check_range_refuses_what_is_not_a_finite_number_within_bounds() -> None:
    for value in (0, 0.5, 1):
        check_range("--x", value, 0, 1, "0 to 1")
    for value in (*BAD, -0.01, 1.01, "1"):
        with pytest.raises(InvalidOption, match=r"^invalid --x .*: 0 to 1$"):
            check_range("--x", value, 0, 1, "0 to 1")  # type: ignore[arg-type]  # a str from a careless caller
    with pytest.raises(InvalidOption):
        check_range("--x", 0, 0, 1, "above 0", above_low=True)
    check_range("--x", None, 0, 1, "0 to 1")


# (option as named in the error, a call with the value, the lowest and highest accepted values, low end open)
CALLERS: list[tuple[str, Callable[[float], object], float, float, bool]] = [
    ("--timeout", lambda v: check_sweep_options(timeout=v), 0, 3600, False),
    ("--rate", lambda v: check_sweep_options(rate=v), 0.01, 1e8, False),
    ("--retries", lambda v: check_sweep_options(retries=v), 0, 100, False),  # type: ignore[arg-type]  # floats: a library caller
    ("--timeout", lambda v: ClusterStream(build_targets(["127.0.0.1"]), None, timeout=v, shards=0), 0, 3600, False),
    ("--period", lambda v: watch_check(period=v, misses=1), 0, 86400, False),
    ("--timeout", lambda v: watch_check(period=1, misses=1, timeout=v), 0, 3600, True),
    ("--rate", lambda v: watch_check(period=1, misses=1, rate=v), 1, 1e7, False),
    ("--timeout", lambda v: sniff_check(None, None, None, None, v), 0, 31 * 86400, True),
    ("-i/--interval", lambda v: PingOptions(interval=v), 0, 3600, True),
    ("-W/--timeout", lambda v: PingOptions(timeout=v), 0, 3600, True),
    ("--interval", lambda v: craft_check("auto", 1, v), 0, 3600, False),
]


@pytest.mark.parametrize(("option", "call", "low", "high", "above_low"), CALLERS,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CALLERS)])
def test_every_numeric_option_keeps_its_range(option: str, call: Callable[[float], object], low: float, high: float,
                                               above_low: bool) -> None:
    """Outside: InvalidOption naming the option; the high end (and the low one, unless open) passes the check
    (the cluster's call then stops at shards=0, before anything starts)."""
    for value in (*BAD, low - 1, high * 1.5, *([low] if above_low else [])):
        with pytest.raises(InvalidOption) as exc:
            call(value)
        assert exc.value.option == option, (value, exc.value)
    for value in (high, *([] if above_low else [low])):
        try:
            call(value)
        except InvalidOption as exc:
            assert exc.option != option, f"{option} {value!r} refused: {exc}"
