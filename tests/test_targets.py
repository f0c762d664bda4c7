"""Target specs: the accepted forms, the rejected ones, and set properties (hypothesis)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recon.errors import InputError, InvalidTarget
from recon.targets import TargetSet, build_targets, int_to_ip, ip_to_int


def addrs(*specs: str, **kw) -> list[str]:
    return list(build_targets(list(specs), **kw))


@pytest.mark.parametrize(
    ("spec", "first", "last", "size"),
    [
        ("198.18.0.1-120", "198.18.0.1", "198.18.0.120", 120),
        ("198.18.0.250-198.18.1.10", "198.18.0.250", "198.18.1.10", 17),
        ("198.18.0.0/24", "198.18.0.0", "198.18.0.255", 256),
        ("198.18.0.77/30", "198.18.0.76", "198.18.0.79", 4),
        ("198.18.0-3.1-254", "198.18.0.1", "198.18.3.254", 4 * 254),
        ("198.18.0.1,198.18.0.9", "198.18.0.1", "198.18.0.9", 2),
        ("198.18.0.1,5,9", "198.18.0.1", "198.18.0.9", 3),
        ("198.18.0.*", "198.18.0.0", "198.18.0.255", 256),
        ("198.18.0.7", "198.18.0.7", "198.18.0.7", 1),
        ("localhost", "127.0.0.1", "127.0.0.1", 1),
    ],
)
def test_accepted_forms(spec: str, first: str, last: str, size: int) -> None:
    """Each documented form parses to exactly the expected addresses."""
    t = build_targets([spec])
    assert (t[0], t[-1], len(t)) == (first, last, size)
    assert len(list(t)) == size


def test_octet_ranges_are_not_contiguous() -> None:
    """nmap octet ranges leave out .0 and .255 of every third octet."""
    t = build_targets(["198.18.0-1.1-254"])
    assert "198.18.0.255" not in t and "198.18.1.0" not in t and "198.18.1.1" in t


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("300.1.1.1", "octet 300 is over 255"),
        ("1.2.3.4-2", "range end 2 is below its start 4"),
        ("10.0.0.0/33", "prefix /33 is over 32"),
        ("1.2.3", "4 octets"),
        ("", "empty target"),
        ("   ", "empty target"),
        ("10.0.0.1-", "has no end"),
        ("1.2.3.4/24/1", "more than one '/'"),
        ("1.2.3.4,", "empty item"),
        ("198.18.0.9-198.18.0.1", "below its start"),
        ("bad_name!", "not an address"),
        ("2001:db8::/64", "IPv6"),
    ],
)
def test_rejected_specs_name_the_token(spec: str, reason: str) -> None:
    """A bad spec raises InvalidTarget naming the token, the reason and the accepted forms."""
    with pytest.raises(InvalidTarget) as info:
        build_targets([spec])
    assert reason in str(info.value)
    assert repr(spec) in str(info.value)


def test_dedup_and_exclusions() -> None:
    """Overlapping specs count once; excludes (and exclude files) are exact."""
    t = build_targets(["198.18.0.0/28", "198.18.0.5-20"], exclude=["198.18.0.3", "198.18.0.10-12"])
    expected = {f"198.18.0.{i}" for i in range(21)} - {"198.18.0.3", "198.18.0.10", "198.18.0.11", "198.18.0.12"}
    assert set(t) == expected and len(t) == len(expected)


def test_input_file_comments_and_stdin(tmp_path, monkeypatch) -> None:
    """Spec files take one spec a line with # comments; '-' reads stdin."""
    f = tmp_path / "targets.txt"
    f.write_text("# lab hosts\n198.18.0.10  # phone\n\n198.18.0.20-21\n")
    assert addrs(input_file=str(f)) == ["198.18.0.10", "198.18.0.20", "198.18.0.21"]
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("198.18.0.1\n"))
    assert addrs(input_file="-") == ["198.18.0.1"]
    with pytest.raises(InputError, match="cannot read target file"):
        build_targets([], input_file=str(tmp_path / "missing"))


def test_large_sets_need_yes_and_stay_lazy() -> None:
    """More than 65,536 addresses needs --yes; a /8 is a single interval, never a list."""
    with pytest.raises(InputError, match="--yes"):
        build_targets(["198.0.0.0/15"])
    t = build_targets(["10.0.0.0/8"], yes=True)
    assert len(t) == 1 << 24 and len(t.intervals) == 1
    assert t[123456] == int_to_ip(ip_to_int("10.0.0.0") + 123456)


intervals = st.lists(
    st.tuples(st.integers(0, 5000), st.integers(0, 300)).map(lambda t: (t[0], t[0] + t[1])), min_size=1, max_size=6
)


@settings(max_examples=200, deadline=None)
@given(intervals)
def test_size_equals_count_iterated(runs) -> None:
    """len() equals the number of addresses iterated, with duplicates removed."""
    t = TargetSet(runs)
    listed = list(t.ints())
    assert len(t) == len(listed) == len(set(listed))
    assert set(listed) == {v for lo, hi in runs for v in range(lo, hi + 1)}


@settings(max_examples=200, deadline=None)
@given(intervals, intervals)
def test_exclusion_is_exact(include, exclude) -> None:
    """Exclusion removes exactly the excluded addresses, no more, no fewer."""
    t = TargetSet(include).exclude(TargetSet(exclude))
    want = {v for lo, hi in include for v in range(lo, hi + 1)} - {v for lo, hi in exclude for v in range(lo, hi + 1)}
    assert set(t.ints()) == want and len(t) == len(want)


@settings(max_examples=200, deadline=None)
@given(intervals, st.integers(0, 2**32), st.integers(1, 5))
def test_permutation_is_a_bijection_and_shards_partition(runs, seed, shards) -> None:
    """The seeded order visits every address once; shards are disjoint and complete."""
    t = TargetSet(runs)
    order = list(t.order(seed))
    assert sorted(order) == sorted(t.ints())
    parts = [list(t.order(seed, (k, shards))) for k in range(1, shards + 1)]
    merged = [a for p in parts for a in p]
    assert len(merged) == len(set(merged)) == len(t)


def test_seeded_order_is_reproducible_and_shuffled() -> None:
    """The same seed gives the same order; the order is not address order."""
    t = build_targets(["198.18.0.0/22"])
    assert list(t.order(42)) == list(t.order(42))
    assert list(t.order(42)) != list(t.ints())
    assert list(t.order(42)) != list(t.order(43))


def test_matches_ipaddress_for_cidrs() -> None:
    """CIDR expansion agrees with the standard library."""
    for cidr in ["198.18.0.0/29", "198.18.7.128/25", "198.19.0.0/20"]:
        assert list(build_targets([cidr])) == [str(a) for a in ipaddress.ip_network(cidr)]
