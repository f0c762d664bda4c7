"""`recon sniff` as a user runs it: replaying captures/, damaged files, and live capture in the lab."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recon.pcap import PcapWriter, read_frames
from tests.conftest import CAPTURES, NOBODY, RECON, ROOT, Wire, need_lab, need_tool, run_cli
from tests.test_decode import CONTROL, ether, ipv4, tshark_rows

CAPTURE_FILES = sorted(p for p in CAPTURES.iterdir() if p.suffix in (".pcap", ".pcapng"))


recon = run_cli  # in-process through cli.run: reading captures needs neither root nor the lab


# --- replay -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", CAPTURE_FILES, ids=lambda p: p.name)
def test_read_prints_one_line_per_frame_and_json_per_ip_packet(path: Path) -> None:
    """--read prints one line per frame; --json one object per IP packet whose fields equal tshark's."""
    text = recon("sniff", "--read", str(path))
    assert text.returncode == 0, text.stderr
    frames = list(read_frames(path))
    assert len(text.stdout.splitlines()) == len(frames)
    out = recon("sniff", "--read", str(path), "--json")
    assert out.returncode == 0, out.stderr
    objs = [json.loads(line) for line in out.stdout.splitlines()]
    rows = {int(r["frame.number"]): r for r in tshark_rows(path)}
    assert len(objs) == sum(1 for r in rows.values() if r["ip.version"] or r["ipv6.version"])
    for o in objs:
        row = rows[o["frame"]]
        if o["version"] == 4:
            assert {k: o[k] for k in ("ihl", "len", "id", "ttl", "proto", "checksum", "frag_offset", "src", "dst")} == {
                "ihl": int(row["ip.hdr_len"]) // 4, "len": int(row["ip.len"]), "id": int(row["ip.id"], 16),
                "ttl": int(row["ip.ttl"]), "proto": int(row["ip.proto"]), "checksum": int(row["ip.checksum"], 16),
                "frag_offset": int(row["ip.frag_offset"]), "src": row["ip.src"], "dst": row["ip.dst"]}
            assert ("DF" in o["flags"]) == (row["ip.flags.df"] == "1") and ("MF" in o["flags"]) == (row["ip.flags.mf"] == "1")
            assert isinstance(o["checksum_ok"], bool)
            if o["proto"] == 1 and row["icmp.type"]:
                assert (o["icmp_type"], o["icmp_code"]) == (int(row["icmp.type"]), int(row["icmp.code"]))
        else:
            assert o["version"] == 6 and o["src"] == row["ipv6.src"] and o["hop_limit"] == int(row["ipv6.hlim"])
            assert o["flow_label"] == int(row["ipv6.flow"], 16) and o["next_header"] == int(row["ipv6.nxt"])


def test_proto_filter_on_replay() -> None:
    """--proto udp keeps only UDP packets; --proto 58 only ICMPv6; -c stops early."""
    udp = recon("sniff", "--read", str(CAPTURES / "crafted-spoofed.pcap"), "--proto", "udp", "--json")
    assert udp.returncode == 0 and [json.loads(x)["proto"] for x in udp.stdout.splitlines()] == [17, 17]
    v6 = recon("sniff", "-r", str(CAPTURES / "ipv6.pcap"), "--proto", "58", "-c", "3")
    assert v6.returncode == 0 and len(v6.stdout.splitlines()) == 3 and "ICMPv6" in v6.stdout
    first = recon("sniff", "-r", str(CAPTURES / "crafted-spoofed.pcap"), "--json", "-c", "2")  # ARP frames come first
    assert [json.loads(x)["src"] for x in first.stdout.splitlines()] == ["198.18.12.1", "198.18.12.1"]
    none = recon("sniff", "-r", str(CAPTURES / "ipv6.pcap"), "--proto", "tcp")
    assert none.returncode == 1 and none.stdout == ""


def test_verbose_shows_every_field_and_options_by_name() -> None:
    """-v prints version, IHL, DSCP/ECN, length, id, flags, offset, TTL, protocol, verified checksum, addresses and
    options by name; IPv6 its class, flow label, payload length, next header and hop limit."""
    v = recon("sniff", "-r", str(CAPTURES / "ip-options.pcap"), "-v").stdout
    for word in ("version 4", "ihl 15 (60 bytes)", "dscp 0", "ecn 0", "total length", "id ", "flags 0x2 [DF]",
                 "fragment offset 0", "ttl 64", "protocol 1 (ICMP)", "(ok)", "src 198.18.0.2", "options: NOP; RR (len 39",
                 "TS (len 40", "RA (len 4)"):
        assert word in v, word
    crafted = recon("sniff", "-r", str(CAPTURES / "crafted-spoofed.pcap"), "-v").stdout
    assert "dscp 46 (EF), ecn 1 (ECT(1))" in crafted and "flags 0x5 [RF MF]" in crafted and "(BAD)" in crafted
    v6 = recon("sniff", "-r", str(CAPTURES / "ipv6.pcap"), "-v").stdout
    for word in ("IPv6 version 6", "traffic class 0x00", "flow label 0x", "payload length 64", "next header 58 (ICMPv6)",
                 "hop limit 64", "src 2001:db8::2"):
        assert word in v6, word


def test_packet_bytes_never_reach_the_terminal_raw(tmp_path: Path) -> None:
    """Escape bytes in payloads and in IP option data are shown escaped (hex / '.'), never raw, in every mode."""
    evil_opt = bytes([0x9F, 8]) + b"\x1b[2J\x07\x9b"  # an unknown option whose data is ESC [ 2 J BEL CSI
    pcap = tmp_path / "evil.pcap"
    with PcapWriter(pcap, 1) as w:
        w.write(ether(ipv4(b"\x08\x00\x00\x00" + b"\x1b]0;pwned\x07\x1b[31m", options=evil_opt)))
    for path in (pcap, CAPTURES / "crafted-spoofed.pcap"):
        for mode in ([], ["-v"], ["--hex"], ["-v", "--hex"], ["--json", "--hex"]):
            res = recon("sniff", "-r", str(path), *mode)
            assert res.returncode == 0, res.stderr
            assert not CONTROL & set(res.stdout + res.stderr), (mode, res.stdout)
    shown = recon("sniff", "-r", str(pcap), "-v", "--hex").stdout
    assert "opt-159 (len 8): 1b 5b 32 4a 07 9b" in shown and "0;pwned..[31m" in shown


def _cut(src: Path, dst: Path, drop: int) -> int:
    data = src.read_bytes()
    dst.write_bytes(data[:-drop])
    return len(list(read_frames(src)))


@pytest.mark.parametrize("name", ["ip-options.pcap", "fragments.pcapng"])
def test_truncated_capture_prints_what_decoded_then_one_error(tmp_path: Path, name: str) -> None:
    """A capture cut in its last record prints every earlier packet, then exactly one error line, and exits 2."""
    cut = tmp_path / name
    total = _cut(CAPTURES / name, cut, 10)
    res = recon("sniff", "--read", str(cut))
    assert res.returncode == 2
    assert len(res.stdout.splitlines()) == total - 1
    errors = [line for line in res.stderr.splitlines() if line.startswith("recon: error:")]
    assert len(errors) == 1 and "truncated" in errors[0] and "Traceback" not in res.stderr


def test_corrupt_and_unknown_captures_are_one_line_errors(tmp_path: Path) -> None:
    """A record claiming a huge length, an unknown link type, a non-capture and a missing file: exit 2, one line."""
    good = (CAPTURES / "ping-errors.pcap").read_bytes()
    corrupt = bytearray(good)
    first_len = struct.unpack_from("<I", corrupt, 24 + 8)[0]
    struct.pack_into("<I", corrupt, 24 + 16 + first_len + 8, 0x7FFFFFFF)  # second record's caplen
    (tmp_path / "corrupt.pcap").write_bytes(bytes(corrupt))
    (tmp_path / "unknown.pcap").write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 147) + good[24:])
    (tmp_path / "text.pcap").write_text("hello\x1b[31m, not a capture\n")
    cases = {"corrupt.pcap": "corrupt record 2", "unknown.pcap": "unknown link type 147",
             "text.pcap": "not a pcap or pcapng file", "missing.pcap": "cannot read capture"}
    for name, words in cases.items():
        res = recon("sniff", "--read", str(tmp_path / name))
        assert res.returncode == 2, (name, res.stderr)
        assert res.stderr.count("\n") == 1 and words in res.stderr, (name, res.stderr)
        assert "Traceback" not in res.stderr
    assert len(recon("sniff", "--read", str(tmp_path / "corrupt.pcap")).stdout.splitlines()) == 1


FILTERS = ["icmp", "ip6", "icmp6 and ip6 dst 2001:db8::10", "udp port 53", "ip[6:2] & 0x1fff != 0", "len > 100",
           "ip and not icmp", "arp", "ip proto 1 and ip[8] = 63", "ip6 proto 58", "host 198.18.12.1"]


@pytest.mark.parametrize("path", CAPTURE_FILES, ids=lambda p: p.name)
def test_read_with_bpf_filter_keeps_what_tcpdump_keeps(path: Path) -> None:
    """`recon sniff --read F -f EXPR` keeps exactly the frames `tcpdump -r F EXPR` keeps, for a range of filters."""
    tcpdump = need_tool("tcpdump")
    kept_any = False
    for expr in FILTERS:
        want = subprocess.run([tcpdump, "-n", "-r", str(path), expr], capture_output=True, text=True)
        got = recon("sniff", "--read", str(path), "-f", expr)
        if want.returncode != 0:  # e.g. 'arp' on a raw-IP file: "expression rejects all packets"
            assert got.returncode == 2 and "-f" in got.stderr and got.stdout == "", expr
            continue
        assert got.returncode in (0, 1), got.stderr
        assert len(got.stdout.splitlines()) == len(want.stdout.splitlines()), expr
        kept_any |= bool(got.stdout)
    assert kept_any


def test_bad_options_are_rejected_before_capturing() -> None:
    """A bad --proto, -c 0, a filter that does not compile, or -i with --read exit 2 with one line naming the option."""
    for args, words in ((["--proto", "igmpx"], "--proto"), (["-c", "0"], "-c"), (["-f", "icmp and and"], "-f"),
                        (["-i", "eth0"], "-i")):
        res = recon("sniff", "--read", str(CAPTURES / "ipv6.pcap"), *args)
        assert res.returncode == 2 and words in res.stderr and len(res.stderr.splitlines()) == 1, res.stderr


# --- live, in the lab ---------------------------------------------------------------------------------


def _ready(proc: subprocess.Popen[str], out: Path) -> None:
    """Wait for sniff's readiness signal: it creates the -w file once its socket is open, filtered and bound."""
    deadline = time.monotonic() + 30
    while not out.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)  # polling the signal (a file appearing)
    assert out.exists(), proc.stderr.read() if proc.stderr and proc.poll() is not None else "sniff did not start"


def _start(lab, out: Path, *args: str) -> subprocess.Popen[str]:
    """`recon sniff -w OUT ARGS` in the scanner namespace, returned once it captures."""
    proc = lab.popen([sys.executable, "-m", "recon", "sniff", "-w", str(out), *args], stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, cwd=ROOT)
    _ready(proc, out)
    return proc


def test_live_proto_icmp_sees_exactly_the_ping(lab, tmp_path: Path) -> None:
    """`recon sniff --proto icmp -c 10` started before `ping -c 5` sees its 5 requests and 5 replies, and only them."""
    need_tool("ping")
    phone = lab.host("phone").ipv4
    proc = _start(lab, tmp_path / "icmp.pcap", "--proto", "icmp", "-c", "10", "--timeout", "30", "--json")
    ping = lab.run(["ping", "-c", "5", "-i", "0.2", phone])
    assert ping.returncode == 0
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    pkts = [json.loads(line) for line in out.splitlines()]
    assert len(pkts) == 10
    assert [(p["src"], p["dst"], p["icmp_type"]) for p in pkts].count((lab.info.scanner_ipv4, phone, 8)) == 5
    assert [(p["src"], p["dst"], p["icmp_type"]) for p in pkts].count((phone, lab.info.scanner_ipv4, 0)) == 5
    assert all(p["checksum_ok"] for p in pkts) and [p["frame"] for p in pkts] == list(range(1, 11))


def test_live_bpf_filter_runs_in_the_kernel(lab, tmp_path: Path) -> None:
    """-f 'icmp and host PI' on eth0 shows only the pings to the pi, not those to the phone sent meanwhile."""
    pi, phone = lab.host("pi").ipv4, lab.host("phone").ipv4
    proc = _start(lab, tmp_path / "pi.pcap", "-i", "eth0", "-f", f"icmp and host {pi}", "-c", "4", "--timeout", "30")
    lab.run(["ping", "-c", "2", "-i", "0.2", phone])
    lab.run(["ping", "-c", "2", "-i", "0.2", pi])
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 4 and all(pi in line for line in lines) and not any(phone in line for line in lines)
    bad = lab.recon("sniff", "-f", "icmp and and", "-c", "1", "--timeout", "1")
    assert bad.returncode == 2 and "not a valid BPF filter" in bad.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_written_pcap_survives_interruption(lab, tmp_path: Path, sig: signal.Signals) -> None:
    """`recon sniff -w x.pcap` stopped by SIGINT (exit 0, packets seen) or SIGKILL leaves a file tshark reads whole."""
    out = tmp_path / "x.pcap"
    proc = _start(lab, out, "--proto", "icmp")
    lab.run(["ping", "-c", "3", "-i", "0.2", lab.host("tv").ipv4])
    Wire(out).wait_for(lambda frames: len(frames) >= 6)  # sniff writes each packet as it comes: the file is the signal
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=20)
    if sig == signal.SIGINT:
        assert proc.returncode == 0, err
        assert "6 packets" in err and "Traceback" not in err
    res = subprocess.run([need_tool("tshark"), "-r", str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.splitlines()) == 6 and "Echo (ping) reply" in res.stdout
    assert len(list(read_frames(out))) == 6


def test_live_on_a_raw_ip_interface(lab, tmp_path: Path) -> None:
    """-i on a tun device (no link header) records raw IP (link type 101) that tshark reads."""
    out = tmp_path / "tun.pcap"
    wan = lab.info.wan_ns
    proc = lab.popen([sys.executable, "-m", "recon", "sniff", "-i", "tun0", "-c", "2", "--timeout", "30", "-w", str(out)],
                     ns=wan, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    _ready(proc, out)
    lab.run(["ping", "-c", "1", "198.18.5.20"])
    stdout, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "198.18.5.20" in stdout and {f.linktype for f in read_frames(out)} == {101}
    assert len(tshark_rows(out)) == 2


def test_unknown_interface_is_one_line(lab) -> None:
    """-i with an interface that does not exist: exit 2, the message lists the interfaces there are."""
    res = lab.recon("sniff", "-i", "nosuch0", "-c", "1")
    assert res.returncode == 2 and "no such interface" in res.stderr and "eth0" in res.stderr
    assert os.geteuid() == 0


@pytest.mark.lab
def test_live_capture_without_privileges_says_how_to_fix_it() -> None:
    """As an unprivileged user, a live sniff exits 3 with one line naming CAP_NET_RAW; --read still works."""
    need_tool("setpriv")
    need_lab()  # root, to drop to nobody (fails, not skips, under CI)
    nobody = [*NOBODY, *RECON]
    res = subprocess.run([*nobody, "sniff", "-c", "1", "--timeout", "1"], capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert res.returncode == 3 and "CAP_NET_RAW" in res.stderr and len(res.stderr.splitlines()) == 1
    replay = subprocess.run([*nobody, "sniff", "--read", str(CAPTURES / "ipv6.pcap")], capture_output=True, text=True,
                            cwd=ROOT, timeout=30)
    assert replay.returncode == 0 and "2001:db8::10" in replay.stdout


def test_read_filter_and_write_a_new_capture(tmp_path: Path) -> None:
    """--read with --proto and -w records exactly the kept packets, in the source's link type, readable by tshark."""
    out = tmp_path / "icmp6.pcap"
    res = recon("sniff", "--read", str(CAPTURES / "sweep.pcap"), "--proto", "icmp6", "-w", str(out))
    assert res.returncode == 0, res.stderr
    shown = len(res.stdout.splitlines())
    rows = tshark_rows(out)
    assert len(rows) == shown > 0 and all(r["icmpv6.type"] for r in rows)
    assert {f.linktype for f in read_frames(out)} == {276}
