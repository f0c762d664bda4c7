"""tcpdump habits for `recon sniff` (issue 13): a positional filter, -n, -e, -X, and ICMP detail
(id/seq, and with -v the datagram an ICMP error quotes), each checked against tcpdump or tshark
on the recorded captures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CAPTURES, ROOT, need_tool

ETHERNET_FILES = [CAPTURES / n for n in ("ping-errors.pcap", "ip-options.pcap", "crafted-spoofed.pcap")]


def recon(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "recon", *args], capture_output=True, text=True, cwd=ROOT, timeout=60)


def tcpdump(*args: str) -> list[str]:
    res = subprocess.run([need_tool("tcpdump"), "-n", *args], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return res.stdout.splitlines()


def test_a_positional_expression_filters_as_tcpdump_does() -> None:
    """`recon sniff -r F icmp and host X` keeps what `tcpdump -r F icmp and host X` keeps, the same as -f;
    -f and a positional expression together are one line, exit 2."""
    path = str(CAPTURES / "ping-errors.pcap")
    words = ["icmp", "and", "host", "198.18.3.7"]
    positional = recon("sniff", "-r", path, *words)
    assert positional.returncode == 0, positional.stderr
    assert positional.stdout == recon("sniff", "-r", path, "-f", " ".join(words)).stdout
    assert len(positional.stdout.splitlines()) == len(tcpdump("-r", path, *words)) > 0
    both = recon("sniff", "-r", path, "-f", "icmp", "udp")
    assert both.returncode == 2 and "once" in both.stderr and len(both.stderr.splitlines()) == 1


def test_n_and_X_are_accepted_as_in_tcpdump() -> None:
    """-n changes nothing (sniff never looks names up); -X is --hex (hex and ASCII)."""
    path = str(CAPTURES / "ip-options.pcap")
    plain = recon("sniff", "-r", path)
    assert recon("sniff", "-r", path, "-n").stdout == plain.stdout != ""
    hexed = recon("sniff", "-r", path, "-X")
    assert hexed.returncode == 0 and hexed.stdout == recon("sniff", "-r", path, "--hex").stdout != plain.stdout


@pytest.mark.parametrize("path", ETHERNET_FILES, ids=lambda p: p.name)
def test_e_shows_the_link_layer_as_tcpdump_e(path: Path) -> None:
    """-e puts MACs, ethertype and wire length after the time, word for word as `tcpdump -e` (ARP frames too)."""
    want = [line.split(" ", 1)[1].split(": ", 1)[0] for line in tcpdump("-e", "-r", str(path))]
    got = recon("sniff", "-r", str(path), "-e")
    assert got.returncode == 0, got.stderr
    assert [line.split(" ", 1)[1].split(": ", 1)[0] for line in got.stdout.splitlines()] == want
    verbose = recon("sniff", "-r", str(path), "-e", "-v", "-c", "1").stdout.splitlines()
    assert verbose[1] == "  " + want[0]


def _tshark_idseq(path: Path) -> dict[int, tuple[int, int]]:
    fields = ["frame.number", "icmp.ident", "icmp.seq", "icmpv6.echo.identifier", "icmpv6.echo.sequence_number"]
    argv = [need_tool("tshark"), "-r", str(path), "-T", "fields", "-E", "occurrence=f"]
    for f in fields:
        argv += ["-e", f]
    rows = [line.split("\t") for line in subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines()]
    return {int(r[0]): (int(r[1] or r[3], 0), int(r[2] or r[4], 0)) for r in rows if (r[1] or r[3])}


@pytest.mark.parametrize("path", [CAPTURES / "ping-errors.pcap", CAPTURES / "ipv6.pcap", CAPTURES / "wan-raw.pcap"],
                         ids=lambda p: p.name)
def test_icmp_id_and_seq_equal_tsharks(path: Path) -> None:
    """Echo requests and replies carry icmp_id/icmp_seq in --json, equal to tshark's, and 'id N seq M' in the line."""
    want = _tshark_idseq(path)
    objs = [json.loads(line) for line in recon("sniff", "-r", str(path), "--json").stdout.splitlines()]
    echoes = {o["frame"]: (o["icmp_id"], o["icmp_seq"]) for o in objs if o.get("icmp_type") in (0, 8, 128, 129)}
    assert echoes and all(want[frame] == idseq for frame, idseq in echoes.items()), (echoes, want)
    assert not any("icmp_id" in o for o in objs if o.get("icmp_type") not in (0, 8, 13, 14, 15, 16, 17, 18, 128, 129))
    lines = recon("sniff", "-r", str(path)).stdout.splitlines()
    frame, (ident, seq) = next(iter(echoes.items()))
    assert f" id {ident} seq {seq} " in lines[frame - 1]


def test_verbose_decodes_the_datagram_an_icmp_error_quotes() -> None:
    """-v on an ICMP error says what tcpdump says ("host 198.18.3.7 unreachable", "time exceeded in-transit")
    and decodes the quoted probe, with its id and seq."""
    path = str(CAPTURES / "ping-errors.pcap")
    dump = tcpdump("-r", path)
    shown: list[str] = []  # one block per frame: its first line starts with the time, the rest are indented
    for text in recon("sniff", "-r", path, "-v").stdout.splitlines():
        if text.startswith(" "):
            shown[-1] += "\n" + text
        else:
            shown.append(text)
    phrases = 0
    for block, line in zip(shown, dump, strict=True):
        if "unreachable" in line or "time exceeded" in line:
            said = next(x for x in block.splitlines() if "; quoted: " in x).strip()
            phrase, quoted = said.split("; quoted: ")
            assert f"ICMP {phrase}, length" in line, (phrase, line)
            assert quoted.startswith("198.18.0.2 → ") and " ICMP echo-request id " in quoted
            phrases += 1
    assert phrases >= 2
    assert "host 198.18.3.7 unreachable; quoted: 198.18.0.2 → 198.18.3.7 ICMP echo-request id 53165 seq 1" in shown[1]
