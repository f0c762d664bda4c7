"""Bad input through the CLI, in-process (``cli.run``): one line on stderr that names what is wrong,
nothing on stdout, exit 2, no traceback, and the check comes before any socket or privilege check,
so it holds for an unprivileged user too.

Every target is loopback: if a check regressed, nothing would leave this machine.
"""

from __future__ import annotations

import pytest

from tests.conftest import CAPTURES, run_cli

LO = "127.0.0.1"
PCAP = str(CAPTURES / "ipv6.pcap")

CASES = {
    # ping: iputils' option rules
    "ping -4 -6": (["ping", "-c", "1", "-4", "-6", LO], "-4 and -6 exclude each other"),
    "ping --df with -M dont": (["ping", "-c", "1", "--df", "-M", "dont", LO], "--df is -M do"),
    "ping -M unknown": (["ping", "-c", "1", "-M", "sometimes", LO], "invalid -M 'sometimes'"),
    "ping -W negative": (["ping", "-c", "1", "-W", "-1", LO], "-W/--timeout"),
    "ping -w negative": (["ping", "-c", "1", "-w", "-1", LO], "-w/--deadline"),
    "ping -c negative": (["ping", "-c", "-1", LO], "-c/--count"),
    "ping -t 256": (["ping", "-c", "1", "-t", "256", LO], "a hop count from 1 to 255"),
    "ping -s negative": (["ping", "-c", "1", "-s", "-1", LO], "payload bytes from 0 to 65507"),
    "ping -i negative": (["ping", "-c", "1", "-i", "-1", LO], "-i/--interval"),
    "ping -6 to an IPv4 address": (["ping", "-c", "1", "-6", LO], "is an IPv4 address"),
    "ping -I with a slash": (["ping", "-c", "1", "-I", "a/b", LO], "-I/--interface 'a/b'"),
    "ping -I of 16 bytes": (["ping", "-c", "1", "-I", "0123456789abcdef", LO], "1 to 15 bytes"),
    # sniff
    "sniff --timeout negative": (["sniff", "--timeout", "-1", "-r", PCAP], "invalid --timeout"),
    "sniff -c negative": (["sniff", "-c", "-5", "-r", PCAP], "invalid -c -5"),
    "sniff -i with a space": (["sniff", "-i", "a b", "-c", "1"], "-i/--interface 'a b'"),
    # craft (the field ranges have their own table in test_craft.py)
    "craft --via unknown": (["craft", "--dst", LO, "--via", "bogus", "--dry-run"], "one of auto, raw, l2, scapy"),
    "craft --count 0": (["craft", "--dst", LO, "--count", "0", "--dry-run"], "invalid --count 0"),
    "craft --interval negative": (["craft", "--dst", LO, "--interval", "-1", "--dry-run"], "invalid --interval"),
    "craft --udp of three ports": (["craft", "--dst", LO, "--udp", "1:2:3", "--dry-run"], "SPORT:DPORT"),
    "craft --udp and --tcp": (["craft", "--dst", LO, "--udp", "1:2", "--tcp", "1:2", "--dry-run"], "--udp and --tcp together"),
    "craft --flags unknown": (["craft", "--dst", LO, "--tcp", "1:2", "--flags", "XYZ", "--dry-run"], "letters from FSRPAUEC"),
    "craft --options of 3 bytes": (["craft", "--dst", LO, "--options", "010101", "--dry-run"], "a multiple of 4"),
    "craft --data and --data-hex": (["craft", "--dst", LO, "--data", "x", "--data-hex", "00", "--dry-run"],
                                    "--data and --data-hex together"),
    # watch: checked before the privilege check
    "watch --period negative": (["watch", LO, "--period", "-1"], "invalid --period"),
    "watch --misses 0": (["watch", LO, "--misses", "0"], "invalid --misses 0"),
    "watch --timeout over an hour": (["watch", LO, "--timeout", "4000"], "at most 3600"),
    "watch --rate 0": (["watch", LO, "--rate", "0"], "invalid --rate"),
    "watch --mac malformed": (["watch", LO, "--mac", "zz:zz"], "a MAC address like"),
    "watch without targets": (["watch"], "no targets given"),
    # sweep
    "sweep --retries negative": (["sweep", LO, "--retries", "-1"], "invalid --retries -1"),
    "sweep --method unknown": (["sweep", LO, "--method", "bogus"], "one of auto, icmp, arp"),
    "sweep --engine unknown": (["sweep", LO, "--engine", "bogus"], "one of raw, scapy"),
    "sweep --probe unknown": (["sweep", LO, "--probe", "bogus"], "invalid --probe 'bogus'"),
    "sweep --probe port out of range": (["sweep", LO, "--probe", "syn:70000"], "ports are numbers from 1 to 65535"),
    "sweep --shard past N": (["sweep", LO, "--shard", "5/4"], "invalid --shard '5/4'"),
    "sweep --shards 0": (["sweep", LO, "--shards", "0", "--shard", "0"], "0-based"),
    "sweep --pcap with --cluster": (["sweep", LO, "--cluster", "local:2", "--pcap", "x.pcap"], "--pcap cannot be combined"),
    "sweep --json with --csv": (["sweep", LO, "--json", "--csv"], "--json and --csv cannot be combined"),
    "sweep without targets": (["sweep"], "no targets given"),
    # lab
    "lab exec without a command": (["lab", "exec"], "Missing argument"),
    "lab down --name with a path": (["lab", "down", "--name", "../x"], "invalid lab name '../x'"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_input_is_one_line_exit_2_before_anything_happens(case: str) -> None:
    argv, needle = CASES[case]
    res = run_cli(*argv)
    assert res.code == 2, (res.code, res.stderr)
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("recon: error: ") and needle in lines[0], res.stderr


def test_debug_adds_the_traceback_to_the_same_line() -> None:
    """--debug: the traceback first, the same one-line message last, the same exit status."""
    plain = run_cli("sweep", LO, "--retries", "-1")
    debug = run_cli("--debug", "sweep", LO, "--retries", "-1")
    assert debug.code == plain.code == 2
    assert "Traceback (most recent call last)" in debug.stderr and "InvalidOption" in debug.stderr
    assert debug.stderr.splitlines()[-1] == plain.stderr.strip()
