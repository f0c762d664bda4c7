"""Target specs: the accepted forms, the rejected ones, and set properties (hypothesis)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recon.errors import InputError, InvalidTarget
from recon.targets import TargetSet, address_key, build_targets, int_to_ip, ip_to_int
from tests.conftest import offline_argv


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


# --- strict, bounded parsing (issue 14 items 10, 12, 13) ---------------------------------------


class Resolver:
    """A hosts-file resolver for tests: names in ``table`` resolve, others fail as getaddrinfo does.

    Records every name it is asked, so a test can prove what never reached name resolution.
    """

    def __init__(self, table: dict[str, list[str]] | None = None) -> None:
        self.table = table or {}
        self.asked: list[str] = []

    def __call__(self, name: str) -> list[str]:
        import socket

        self.asked.append(name)
        if name not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[name]


LAB_NAMES = {"phone.lab": ["198.18.0.10", "2001:db8::10"], "far6.lab": ["2001:db8:2::1"], "pi.lab": ["198.18.0.11"]}


@pytest.mark.parametrize("spec", ["198.18.0.١٠", "１９８.18.0.10", "198.18.0.1０", "198.18.0.0/２４", "198.18.0.1-１２",
                                  "198.18.0.1-198.18.0.１0"])
def test_only_ascii_digits(spec: str) -> None:
    """Arabic-Indic and full-width digits are refused (they used to become 198.18.0.10 and be probed)."""
    with pytest.raises(InvalidTarget, match="is not ASCII"):
        build_targets([spec], resolver=Resolver())


@pytest.mark.parametrize("spec", ["0xc612000a", "0x7f.1", "0x7f.0.0.1", "127.1.0x1", "3323068426.", "host.0x"])
def test_inet_aton_shorthands_never_reach_the_resolver(spec: str) -> None:
    """Hex, short and other inet_aton forms are refused before any name lookup."""
    resolver = Resolver({spec: ["198.18.0.10"]})
    with pytest.raises(InvalidTarget, match=r"numeric|4 octets|not a number"):
        build_targets([spec], resolver=resolver)
    assert resolver.asked == []


def test_labels_with_a_hyphen_at_either_end_are_not_names() -> None:
    """RFC 1123 labels: '198.18.0x7-' (found by the fuzzer) is refused, never resolved."""
    resolver = Resolver({"198.18.0x7-": ["198.18.0.7"], "-a.lab": ["198.18.0.7"]})
    for spec in ("198.18.0x7-", "-a.lab"):
        with pytest.raises(InvalidTarget, match="not an address, range, CIDR or hostname"):
            build_targets([spec], resolver=resolver)
    assert resolver.asked == []


def test_is_ipv4_is_strict() -> None:
    """inet_aton takes trailing junk and shorthands; is_ipv4 takes four decimal ASCII octets only."""
    from recon.targets import is_ipv4

    assert is_ipv4("198.18.0.10")
    for bad in ("1.2.3.4 \x1b[2J", "1.2.3", "0x7f.0.0.1", "1.2.3.256", "198.18.0.١٠", "1.2.3.4\n", "0001.2.3.4"):
        assert not is_ipv4(bad), bad
    t = build_targets(["198.18.0.0/24"])
    assert "198.18.0.3" in t and "198.18.0.3 junk" not in t and "198.18.3" not in t


def test_leading_zeros_are_decimal_in_membership_and_refused_read_back() -> None:
    """is_ipv4 takes '010.0.0.1' as targets are read, decimal (10.0.0.1); inet_aton reads it as octal 8.0.0.1 and
    refuses '09': membership answers for the decimal address and never raises, and ``exact_address`` (rows read
    back from a --resume journal) refuses both forms with a ValueError, as it refuses any text no sweep writes."""
    from recon.targets import exact_address

    assert "010.0.0.1" in build_targets(["10.0.0.1"]) and "010.0.0.1" not in build_targets(["8.0.0.1"])
    assert "09.0.0.1" in build_targets(["9.0.0.1"]) and "09.0.0.1" not in build_targets(["198.18.0.1"])
    for text in ("010.0.0.1", "09.0.0.1", "198.18.0.010"):
        with pytest.raises(ValueError):
            exact_address(text)
    assert exact_address("198.18.0.10") == (4, 0xC612000A, "")


def _peak_bytes(fn) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
    except InputError:
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_octet_patterns_are_counted_before_they_are_expanded() -> None:
    """Patterns over the limit are refused before expansion: small memory, not the 677 MB of four such patterns."""
    specs = [f"{a}.0-255.0-255.1,3,5" for a in (10, 11, 12, 13)]
    with pytest.raises(InputError, match=r"196,608 addresses is more than 65,536"):
        build_targets(specs)
    assert _peak_bytes(lambda: build_targets(specs)) < 4 << 20
    with pytest.raises(InvalidTarget, match="16,777,216 separate runs"):
        build_targets(["0-255.0-255.0-255.1"], yes=True)
    assert _peak_bytes(lambda: build_targets(["0-255.0-255.0-255.1"], yes=True)) < 4 << 20


def test_huge_numbers_are_one_short_error() -> None:
    """A 5,000-digit octet or prefix is InvalidTarget with a short message (not Python's int-digit limit)."""
    for spec in ["1" * 5000 + ".1.1.1", "198.18.0.0/" + "9" * 5000, "198.18.0.1-" + "9" * 5000, "2001:db8::/" + "1" * 5000]:
        with pytest.raises(InvalidTarget) as info:
            build_targets([spec])
        assert len(str(info.value)) < 600


def test_shard_spellings() -> None:
    """--shard I/N is 1-based; zmap's --shards N --shard I is 0-based; mixing them or huge numbers is an error."""
    from recon.errors import InvalidOption
    from recon.targets import parse_shard

    assert parse_shard(None) == (1, 1)
    assert parse_shard("2/5") == (2, 5)
    assert parse_shard("0", "4") == (1, 4) and parse_shard("3", 4) == (4, 4)
    bad = [("4", "4"), ("1/4", "4"), (None, "4"), ("1", None), ("1/" + "9" * 5000, None), ("0", "9" * 5000),
           ("1/70000", None), ("-1", "4"), ("1", "0"), ("١/٢", None)]
    for text, shards in bad:
        with pytest.raises(InvalidOption) as info:
            parse_shard(text, shards)
        assert len(str(info.value)) < 400


def test_zmap_shards_partition_like_recon_shards() -> None:
    """--shards 3 --shard 0..2 walks exactly the addresses of --shard 1/3 .. 3/3."""
    from recon.targets import parse_shard

    t = build_targets(["198.18.0.0/22"])
    zmap = [list(t.order(0, parse_shard(str(i), "3"))) for i in range(3)]
    ours = [list(t.order(0, parse_shard(f"{i + 1}/3"))) for i in range(3)]
    assert zmap == ours and sorted(a for p in zmap for a in p) == list(t.ints())


def test_target_files_must_be_utf8_text(tmp_path) -> None:
    """Non-UTF-8 and UTF-16 target files are one InputError naming the file and line; a UTF-8 BOM is fine."""
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"198.18.0.1\n198.18.0.\xff2\n")
    with pytest.raises(InputError, match=r"bad\.txt'?: line 2 is not UTF-8"):
        build_targets(input_file=str(bad))
    with pytest.raises(InputError, match="line 2 is not UTF-8"):
        build_targets(["198.18.0.0/24"], exclude_file=str(bad))
    utf16 = tmp_path / "utf16.txt"
    utf16.write_text("198.18.0.1\n", encoding="utf-16")
    with pytest.raises(InputError, match="UTF-16"):
        build_targets(["198.18.0.0/24"], exclude_file=str(utf16))
    utf16le = tmp_path / "utf16le.txt"
    utf16le.write_bytes("198.18.0.1\n".encode("utf-16-le"))
    with pytest.raises(InputError, match="line 1 holds a NUL byte"):
        build_targets(input_file=str(utf16le))
    bom = tmp_path / "bom.txt"
    bom.write_bytes(b"\xef\xbb\xbf198.18.0.1\n")
    assert addrs(input_file=str(bom)) == ["198.18.0.1"]


def test_target_files_are_bounded(tmp_path) -> None:
    """/dev/zero and oversized files end in one InputError, in bounded memory."""
    with pytest.raises(InputError, match="line 1 is longer than 65,536 bytes"):
        build_targets(input_file="/dev/zero")
    assert _peak_bytes(lambda: build_targets(input_file="/dev/zero")) < 2 << 20
    big = tmp_path / "big.txt"
    big.write_bytes(b"198.18.0.1\n" * ((16 << 20) // 11 + 1))
    with pytest.raises(InputError, match="over 16 MiB"):
        build_targets(input_file=str(big))
    with pytest.raises(InputError, match="cannot read target file"):
        build_targets(input_file=str(tmp_path))


# --- names: one that does not resolve is a warning (issue 13 item 8) ------------------------------


def test_an_unresolvable_name_is_a_warning_and_the_rest_is_kept() -> None:
    """As nmap: the name that does not resolve is reported in .warnings, the others are kept."""
    t = build_targets(["phone.lab", "nosuch.lab", "198.18.0.20"], resolver=Resolver(LAB_NAMES))
    assert list(t) == ["198.18.0.10", "198.18.0.20"] and t.names == {ip_to_int("198.18.0.10"): "phone.lab"}
    assert [(w.target, "does not resolve" in w.reason) for w in t.warnings] == [("nosuch.lab", True)]


def test_only_unresolvable_names_is_an_error() -> None:
    """Nothing left: one name → InvalidTarget naming it; several → one InputError naming them."""
    with pytest.raises(InvalidTarget, match=r"'nosuch\.lab': name does not resolve"):
        build_targets(["nosuch.lab"], resolver=Resolver())
    with pytest.raises(InputError, match="none of the 2 target names resolves"):
        build_targets(["nosuch.lab", "other.lab"], resolver=Resolver())
    with pytest.raises(InvalidTarget, match="exclusion must resolve"):
        build_targets(["198.18.0.0/24"], exclude=["nosuch.lab"], resolver=Resolver())


def test_names_prefer_ipv4_then_ipv6() -> None:
    """A name with A and AAAA records gives its IPv4 address; an AAAA-only name its IPv6 address."""
    t = build_targets(["phone.lab", "far6.lab"], resolver=Resolver(LAB_NAMES))
    assert list(t) == ["198.18.0.10"] and list(t.v6.addresses()) == ["2001:db8:2::1"]
    assert t.v6.names == {int(ipaddress.IPv6Address("2001:db8:2::1")): "far6.lab"}


def test_privilege_advice_names_this_interpreter() -> None:
    """The setcap hint names the real file of the interpreter running recon (the venv's python)."""
    import os
    import sys

    from recon.errors import PrivilegeError

    assert f"setcap cap_net_raw+ep {os.path.realpath(sys.executable)}" in str(PrivilegeError())


# --- IPv6 (issue 11) -----------------------------------------------------------------------------


def v6(text: str) -> int:
    return int(ipaddress.IPv6Address(text))


@pytest.mark.parametrize(
    ("spec", "first", "last", "size"),
    [
        ("2001:db8::7", "2001:db8::7", "2001:db8::7", 1),
        ("2001:db8::1-2001:db8::ff", "2001:db8::1", "2001:db8::ff", 255),
        ("2001:db8::1-ff", "2001:db8::1", "2001:db8::ff", 255),
        ("2001:db8::ff00-FFFF", "2001:db8::ff00", "2001:db8::ffff", 256),
        ("2001:db8::/120", "2001:db8::", "2001:db8::ff", 256),
        ("2001:db8::77/126", "2001:db8::74", "2001:db8::77", 4),
        ("2001:db8::1,2001:db8::9", "2001:db8::1", "2001:db8::9", 2),
        ("2001:db8::fffe-2001:db8::1:1", "2001:db8::fffe", "2001:db8::1:1", 4),
        ("::ffff:198.18.0.1", "::ffff:c612:1", "::ffff:c612:1", 1),
    ],
)
def test_ipv6_forms(spec: str, first: str, last: str, size: int) -> None:
    """IPv6 addresses, ranges, CIDRs and lists land in .v6; the IPv4 part stays empty."""
    t = build_targets([spec])
    assert len(t) == 0 and t.total == size == len(t.v6)
    assert (t.v6[0], t.v6[-1]) == (v6(first), v6(last))
    assert len(list(t.v6.addresses())) == size


def test_mixed_ipv4_and_ipv6_lists_and_files(tmp_path) -> None:
    """IPv4 keeps its API (len, iteration, names); IPv6 is beside it; exclusions apply to both."""
    f = tmp_path / "t.txt"
    f.write_text("2001:db8::10-1f  # lan\n198.18.0.10\nfe80::1%lo\n")
    t = build_targets(["198.18.0.1-3,2001:db8::1"], input_file=str(f), exclude=["198.18.0.2", "2001:db8::10/126", "fe80::1%lo"])
    assert list(t) == ["198.18.0.1", "198.18.0.3", "198.18.0.10"] and len(t) == 3
    assert list(t.v6.addresses()) == ["2001:db8::1"] + [f"2001:db8::{i:x}" for i in range(0x14, 0x20)]
    assert t.scoped == () and t.total == 3 + 13


def test_ipv6_size_limit() -> None:
    """More than 65,536 addresses in all needs --yes; more than a /96 in one IPv6 spec is refused even then."""
    with pytest.raises(InputError, match=r"65,537 addresses is more than 65,536"):
        build_targets(["2001:db8::/112", "198.18.0.1"])
    assert build_targets(["2001:db8::/112", "198.18.0.1"], yes=True).total == 65_537
    assert len(build_targets(["2001:db8::/96"], yes=True).v6) == 1 << 32
    for spec in ["2001:db8::/95", "2001:db8::/64", "::-2001::"]:
        with pytest.raises(InvalidTarget, match="IPv6 range of"):
            build_targets([spec], yes=True)


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("2001:db8::1-2001:db8::", "below its start"),
        ("2001:db8::10-1", "below its start"),
        ("2001:db8::1-12345", "neither an IPv6 address nor 1 to 4 hex digits"),
        ("2001:db8::/129", "prefix /129 is over 128"),
        ("2001:db8:::1", "not an IPv6 address"),
        ("2001:db8::g", "not an IPv6 address"),
        ("fe80::1", "link-local IPv6 target needs its interface"),
        ("fe80::/64", "link-local IPv6 target needs its interface"),
        ("ff02::1", "multicast IPv6 target needs its interface"),
        ("fe80::1%no-such-if9", "no interface 'no-such-if9' here"),
        ("fe80::1%", "interface after '%' is empty"),
        ("fe80::1%a/b", "not an interface name"),
        ("fe80::1%" + "x" * 40, "not an interface name"),
        ("fe80::1%999999", "no interface '999999' here"),
        ("fe80::1-ff%lo", "one address, not a range"),
        ("198.18.0.1%lo", "only with an IPv6 address"),
        ("2001:db8::1%lo", "only with link-local"),
    ],
)
def test_rejected_ipv6_specs(spec: str, reason: str) -> None:
    """Bad IPv6 specs are one InvalidTarget naming the token and the reason."""
    with pytest.raises(InvalidTarget) as info:
        build_targets([spec])
    assert reason in str(info.value) and repr(spec) in str(info.value)


def test_scoped_targets_keep_their_interface() -> None:
    """fe80::1%lo and ff02::1%1 keep scope and index; the multicast group is marked, never expanded."""
    import socket

    t = build_targets(["fe80::1%lo", "ff02::1%1", "fe80::1%lo", "198.18.0.1"])
    lo = socket.if_nametoindex("lo")
    assert [(s.address, s.interface, s.ifindex, s.multicast) for s in t.scoped] == [
        ("fe80::1", "lo", lo, False), ("ff02::1", socket.if_indextoname(1), 1, True)]
    assert str(t.scoped[0]) == "fe80::1%lo" and t.total == 3 and len(t) == 1


@settings(max_examples=200, deadline=None)
@given(intervals, st.integers(0, 2**128 - 5301), st.integers(0, 2**32), st.integers(1, 5))
def test_ipv6_order_is_a_bijection_and_shards_partition(runs, offset, seed, shards) -> None:
    """IPv6 runs walk the same seeded permutation and shards as IPv4: every address once, shards disjoint."""
    from recon.targets import V6Targets

    t = V6Targets([(lo + offset, hi + offset) for lo, hi in runs])
    assert sorted(t.order(seed)) == list(t.ints()) and len(t) == len(set(t.ints()))
    parts = [list(t.order(seed, (k, shards))) for k in range(1, shards + 1)]
    merged = [a for p in parts for a in p]
    assert len(merged) == len(set(merged)) == len(t)


# --- the CLI: every rejected form is one line, exit 2, nothing sent ----------------------------


def run_recon(*args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    """recon in a network namespace of its own: these targets are lab addresses outside the lab, refused before
    anything is sent; were a regression to send, nothing could leave."""
    import subprocess
    import sys

    res = subprocess.run(offline_argv([sys.executable, "-m", "recon", *args]), input=stdin, capture_output=True,
                         timeout=120)
    return res.returncode, res.stdout.decode(errors="replace"), res.stderr.decode(errors="replace")


WORST_SPECS = ["198.18.0.١٠", "１９８.18.0.10", "0xc612000a", "0x7f.1", "1" * 5000 + ".1.1.1", "0-255.0-255.0-255.1",
               "fe80::1%nosuch0", "fe80::1", "2001:db8::/64", "198.18.0.0/" + "9" * 5000]


@pytest.mark.parametrize("spec", WORST_SPECS, ids=lambda s: s[:24])
def test_cli_rejects_the_worst_specs_in_one_line(spec: str, tmp_path) -> None:
    """exit 2, one short stderr line, nothing on stdout, and no probe written (the pcap is never opened)."""
    pcap = tmp_path / "probes.pcap"
    code, out, err = run_recon("sweep", spec, "--pcap", str(pcap))
    assert code == 2 and out == "" and pcap.exists() is False, err
    assert len(err.splitlines()) == 1 and err.startswith("recon: error: invalid target") and len(err) < 700, err


@pytest.mark.parametrize(
    ("args", "stdin", "says"),
    [
        (["--shard", "1/" + "9" * 5000], b"", "invalid --shard"),
        (["--shards", "9" * 5000, "--shard", "0"], b"", "invalid --shards"),
        (["--shards", "4", "--shard", "1/4"], b"", "0-based"),
        (["--shard", "3"], b"", "a bare I needs --shards N"),
        (["-iL", "/dev/zero"], b"", "line 1 is longer than"),
        (["-iL", "-"], b"198.18.0.1\n\xff\xfe\n", "standard input: line 2 is not UTF-8"),
        (["--exclude-file", "-"], "198.18.0.1\n".encode("utf-16"), "is UTF-16"),
    ],
)
def test_cli_rejects_bad_options_and_files_in_one_line(args: list[str], stdin: bytes, says: str, tmp_path) -> None:
    """Huge shard numbers, mixed shard spellings, /dev/zero and undecodable files: one line, exit 2."""
    pcap = tmp_path / "probes.pcap"
    code, out, err = run_recon("sweep", "198.18.0.1", *args, "--pcap", str(pcap), stdin=stdin)
    assert code == 2 and out == "" and pcap.exists() is False, err
    assert len(err.splitlines()) == 1 and err.startswith("recon: error:") and says in err and len(err) < 400, err


def test_cli_sweep_skips_an_unresolvable_name_with_a_warning(lab) -> None:
    """In the lab (its hosts file; no DNS leaves it): one bad name is a warning line and the others are swept."""
    res = lab.recon("sweep", "phone.lab", "nosuch.lab", "198.18.0.11")
    assert res.returncode == 0, res.stderr
    assert "recon: warning: skipping 'nosuch.lab': name does not resolve" in res.stderr
    assert "198.18.0.10" in res.stdout and "198.18.0.11" in res.stdout and "2 hosts up of 2" in res.stderr
    only = lab.recon("sweep", "nosuch.lab")
    assert only.returncode == 2 and only.stderr.startswith("recon: error: invalid target 'nosuch.lab': name does not resolve")


def test_system_resolver_gives_aaaa_only_names_as_ipv6(lab) -> None:
    """With the real resolver (the lab's hosts file), an AAAA-only name lands in .v6 and a dual name in IPv4."""
    code = ("from recon.targets import build_targets; t = build_targets(['far6.lab', 'phone.lab']); "
            "print(list(t), list(t.v6.addresses()), sorted(t.v6.names.values()))")
    res = lab.run([__import__("sys").executable, "-c", code])
    assert res.stdout.strip() == "['198.18.0.10'] ['2001:db8:2::1'] ['far6.lab']", res.stderr


def test_all_specs_share_one_run_budget() -> None:
    """Many patterns together cannot exceed MAX_RUNS separate runs, even with --yes."""
    from recon.targets import MAX_RUNS

    assert len(build_targets(["10.0-255.0-255.1,3,5", "11.0-255.0-255.1"], yes=True).intervals) == MAX_RUNS
    with pytest.raises(InvalidTarget, match="with the specs before it, more than 262,144 in all"):
        build_targets(["10.0-255.0-255.1,3,5", "11.0-255.0-255.1", "12.0.0.1,3"], yes=True)


@pytest.mark.parametrize("seed", [None, 0, 12345])
@pytest.mark.parametrize("shard", [(1, 1), (2, 3), (4, 7)])
def test_ipv6_position_is_the_inverse_of_order(seed: int | None, shard: tuple[int, int]) -> None:
    """V6Targets.position(a, seed, shard) is a's index in order(seed, shard), None for addresses outside it
    (other shards, other addresses): the IPv6 sweep finds a TCP answer's target with it, without a table."""
    v6 = build_targets(["2001:db8::/120", "2001:db8:5::3-40", "2001:db8:9::7"]).v6
    order = list(v6.order(seed, shard))
    assert [v6.position(a, seed, shard) for a in order] == list(range(len(order)))
    others = [a for a in v6.ints() if a not in set(order)] + [int(ipaddress.IPv6Address("2001:db8:5::41"))]
    assert all(v6.position(a, seed, shard) is None for a in others)


@pytest.mark.parametrize("how", ["same", "hard link", "stdin", "exclude"])
def test_cli_pcap_never_truncates_a_target_file_being_read(tmp_path, how: str) -> None:
    """--pcap naming the -iL (or --exclude-file) file, by name, hard link or as stdin: one line, exit 2, the file
    intact (it was read, then truncated to hold the pcap), as sniff -r F -w F is refused."""
    spec = tmp_path / "targets.txt"
    spec.write_text("198.18.0.10\n")
    out = tmp_path / "link.txt" if how == "hard link" else spec
    if how == "hard link":
        out.hardlink_to(spec)
    args = {"same": ["-iL", str(spec)], "hard link": ["-iL", str(spec)], "stdin": ["-iL", "-"],
            "exclude": ["198.18.0.11", "--exclude-file", str(spec)]}[how]
    import subprocess
    import sys

    with open(spec, "rb") as stdin:  # for "-": standard input is the file itself, not a copy through a pipe
        res = subprocess.run(offline_argv([sys.executable, "-m", "recon", "sweep", *args, "--probe", "echo", "--pcap", str(out)]),
                             stdin=stdin, capture_output=True, text=True, timeout=120)
    code, stdout, err = res.returncode, res.stdout, res.stderr
    assert code == 2 and stdout == "" and err.count("\n") == 1 and "invalid --pcap" in err and "target file" in err, err
    assert spec.read_text() == "198.18.0.10\n"


def test_address_key_is_the_one_order_ipv4_then_ipv6_numeric_scope_as_tiebreak() -> None:
    """One sort key for every list of addresses (sweep table, merged IPv6 rows, watch inventory)."""
    addresses = ["fe80::1%eth1", "2001:db8::a", "198.18.0.10", "fe80::1", "fe80::1%eth0", "2001:db8::9", "198.18.0.9",
                 "not an address", "::ffff:198.18.0.1"]
    assert sorted(addresses, key=address_key) == ["198.18.0.9", "198.18.0.10", "::ffff:198.18.0.1", "2001:db8::9",
                                                  "2001:db8::a", "fe80::1", "fe80::1%eth0", "fe80::1%eth1", "not an address"]


@pytest.mark.parametrize(("specs", "width"), [
    (["198.18.0.0/15"], 15),  # IPv4 only: 15, the widest dotted quad, as watch always padded
    (["2001:db8::/120"], 15),  # 2001:db8::ff is narrower than 15
    (["2001:db8:aaaa:bbbb:cccc:dddd:eeee:0-ff"], len("2001:db8:aaaa:bbbb:cccc:dddd:eeee:ff")),
    (["2001:db8:1:2:3:4:5:0/112"], len("2001:db8:1:2:3:4:5:ffff")),  # 65,536 addresses: still exact
    (["2001:db8::/96"], 39),  # too many to walk: the widest IPv6 text
    (["::ffff:198.18.0.0-::ffff:198.18.2.5"], len("::ffff:198.18.1.255")),  # widest inside, not at either end
    (["::ffff:198.18.9.250-::ffff:198.18.100.5"], len("::ffff:198.18.99.255")),  # the block before the last's top
    (["::ffff:198.18.100.0-::ffff:198.18.100.5"], len("::ffff:198.18.100.5")),  # ... when the range reaches it
    (["2001:db8:1:2:3:4:7:fff-2001:db8:1:2:3:4:8:1ff"], len("2001:db8:1:2:3:4:7:ffff")),  # the first /112's top
    (["2001:db8:aaaa:bbbb:cccc:dddd:eeee:fff0-2001:db8:aaaa:bbbb:cccc:dddd:eeef:10"],  # over two /112s
     len("2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff")),
    (["fe80::1%lo"], 15),
    (["fe80::1234:5678:9abc:def0%lo"], len("fe80::1234:5678:9abc:def0%lo")),
    (["ff02::1%lo", "198.18.0.1"], len("fe80::ffff:ffff:ffff:ffff%lo")),  # a group's members answer from fe80::
])
def test_widest_address_is_the_widest_a_list_of_the_hosts_can_hold(specs: list[str], width: int) -> None:
    assert build_targets(specs, yes=True).widest_address() == width


_GROUP = st.sampled_from([0, 0, 0, 1, 0xFF, 0x100, 0xFFFF, 0xFFFE, 0x1234])
_PREFIX = st.one_of(  # the upper 112 bits
    st.lists(_GROUP, min_size=7, max_size=7).map(lambda groups: sum(g << (16 * (6 - i)) for i, g in enumerate(groups))),
    st.integers(1, 0xFFFF).map(lambda g: 0xFFFF << 16 | g),  # IPv4-mapped: a dotted tail (::ffff:198.18.0.10)
    st.integers(1, 0xFFFF),  # IPv4-compatible: a dotted tail too (::198.18.0.10)
)


@settings(max_examples=60, deadline=None)
@given(_PREFIX, st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
def test_widest_address_of_a_range_is_its_widest_text_without_walking_it(prefix: int, first: int, span: int) -> None:
    """A range under 65,536 addresses: the width read from a few of its addresses is the width of the widest of
    all of them as inet_ntop writes them (zero runs, IPv4-mapped and -compatible dotted tails), walked here."""
    from recon.targets import _widest_text, int_to_ip6

    lo = prefix << 16 | first
    hi = min(lo + span, (1 << 128) - 1)
    assert _widest_text(lo, hi) == max(len(int_to_ip6(a)) for a in range(lo, hi + 1))
