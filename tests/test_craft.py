"""`recon craft`: hand-built IPv4 packets agree with Scapy, are validated before sending,
and arrive on the wire exactly as printed (checked with tcpdump in the namespace lab)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recon.errors import InvalidOption
from recon.models import CraftSpec
from recon.packets import TCP_FLAGS, build_packet, inet_checksum
from tests.conftest import NOBODY, Wire, need_tool, run_cli, run_cli_offline

PI, PHONE, PRINTER = "198.18.0.11", "198.18.0.10", "198.18.0.12"


recon = run_cli  # in-process through cli.run: the tests that use it need neither root nor the lab


# --- agreement with Scapy, byte for byte -----------------------------------------------------------

addresses = st.integers(0, 2**32 - 1).map(lambda n: ".".join(str(n >> s & 0xFF) for s in (24, 16, 8, 0)))
u8, u16 = st.integers(0, 0xFF), st.integers(0, 0xFFFF)
options = st.integers(0, 10).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n))


@st.composite
def ip_fields(draw: st.DrawFn) -> dict:
    return dict(src=draw(addresses), dst=draw(addresses), tos=draw(u8), ident=draw(u16), ttl=draw(u8),
                df=draw(st.booleans()), mf=draw(st.booleans()), frag_offset=draw(st.integers(0, 8191)),
                options=draw(options), checksum=draw(st.none() | u16), total_length=draw(st.none() | u16),
                data=draw(st.binary(max_size=64)))


def scapy_ip(f: dict, proto: int | None = None):
    from scapy.layers.inet import IP

    kw = dict(src=f["src"], dst=f["dst"], tos=f["tos"], id=f["ident"], ttl=f["ttl"],
              flags=(2 if f["df"] else 0) | (1 if f["mf"] else 0), frag=f["frag_offset"], options=f["options"])
    if f["checksum"] is not None:
        kw["chksum"] = f["checksum"]
    if f["total_length"] is not None:
        kw["len"] = f["total_length"]
    if proto is not None:
        kw["proto"] = proto
    return IP(**kw)


@settings(max_examples=300, deadline=None)
@given(ip_fields(), st.sampled_from([0, 8]), u8, u16, u16)
def test_icmp_bytes_equal_scapy(f: dict, icmp_type: int, code: int, icmp_id: int, seq: int) -> None:
    """IP/ICMP echo built with struct equals bytes(IP(...)/ICMP(...)/Raw) for any field values."""
    from scapy.layers.inet import ICMP
    from scapy.packet import Raw

    ours = build_packet(CraftSpec(**f, icmp_type=icmp_type, icmp_code=code, icmp_id=icmp_id, icmp_seq=seq)).data
    theirs = scapy_ip(f, 1) / ICMP(type=icmp_type, code=code, id=icmp_id, seq=seq) / Raw(f["data"])
    assert ours == bytes(theirs)


@settings(max_examples=200, deadline=None)
@given(ip_fields(), u16, u16)
def test_udp_bytes_equal_scapy(f: dict, sport: int, dport: int) -> None:
    """IP/UDP with the pseudo-header checksum equals Scapy's bytes (0 is sent as 0xffff, as Scapy does)."""
    from scapy.layers.inet import UDP
    from scapy.packet import Raw

    ours = build_packet(CraftSpec(**f, payload="udp", proto=17, sport=sport, dport=dport)).data
    assert ours == bytes(scapy_ip(f, 17) / UDP(sport=sport, dport=dport) / Raw(f["data"]))


@settings(max_examples=200, deadline=None)
@given(ip_fields(), u16, u16, st.sets(st.sampled_from(TCP_FLAGS)), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), u16)
def test_tcp_bytes_equal_scapy(f: dict, sport: int, dport: int, flags: set, seq: int, ack: int, window: int) -> None:
    """IP/TCP (flags FSRPAUEC, seq, ack, window) equals Scapy's bytes."""
    from scapy.layers.inet import TCP
    from scapy.packet import Raw

    letters = "".join(sorted(flags))
    ours = build_packet(CraftSpec(**f, payload="tcp", proto=6, sport=sport, dport=dport, tcp_flags=letters,
                                  tcp_seq=seq, tcp_ack=ack, tcp_window=window)).data
    theirs = scapy_ip(f, 6) / TCP(sport=sport, dport=dport, flags=letters, seq=seq, ack=ack, window=window) / Raw(f["data"])
    assert ours == bytes(theirs)


@settings(max_examples=100, deadline=None)
@given(ip_fields(), u8)
def test_raw_payload_bytes_equal_scapy(f: dict, proto: int) -> None:
    """A raw IP payload with any protocol number equals IP(proto=N)/Raw(...)."""
    from scapy.packet import Raw

    ours = build_packet(CraftSpec(**f, payload="raw", proto=proto)).data
    assert ours == bytes(scapy_ip(f, proto) / Raw(f["data"]))


@settings(max_examples=100, deadline=None)
@given(ip_fields(), st.sampled_from(["icmp", "udp", "tcp", "raw"]))
def test_field_table_points_at_the_bytes(f: dict, payload: str) -> None:
    """Every numeric field's offset/length/bits read back its own value from the bytes; checksums verify."""
    pkt = build_packet(CraftSpec(**f, payload=payload))
    for fld in pkt.fields:
        chunk = int.from_bytes(pkt.data[fld.offset:fld.offset + fld.length], "big")
        if fld.bits:
            lo, hi = (int(b) for b in fld.bits.split("-"))
            width = fld.length * 8
            chunk = chunk >> (width - 1 - hi) & ((1 << (hi - lo + 1)) - 1)
        if fld.number is not None:
            assert chunk == fld.number, fld
        assert int(fld.hex.removeprefix("0x"), 16) == chunk, fld
    ip = pkt.checksums[0]
    assert ip.ok == (f["checksum"] is None or f["checksum"] == ip.correct)
    assert all(c.ok for c in pkt.checksums[1:])
    if f["checksum"] is None:
        assert inet_checksum(pkt.data[:pkt.header_length]) == 0


def test_ihl_follows_options() -> None:
    """40 bytes of options make IHL 15 (60 bytes), the most the 4-bit field can say."""
    pkt = build_packet(CraftSpec(dst=PHONE, src=PI, options=b"\x01" * 40))
    assert pkt.data[0] == 0x4F and pkt.header_length == 60


# --- bad input: exit 2, the field's name and its range, nothing sent ------------------------------

BAD = [
    (["--dst", "300.1.1.1"], "--dst", "four octets"),
    (["--dst", "127.0.0.1", "--src", "1.2.3"], "--src", "four octets"),
    (["--dst", "0xc612000a"], "--dst", "looks like a numeric address"),  # inet_aton's hex: 198.18.0.10
    (["--dst", "127.0.0.1", "--src", "0x7f.1"], "--src", "looks like a numeric address"),  # and its short forms
    (["--dst", "phone.lab\x1b[2J"], "--dst", "host name"),
    (["--dst", "2001:db8::1"], "--dst", "IPv4 headers only"),  # was: 'a host name that resolves (not ... hostname)'
    (["--dst", "fe80::1%eth0"], "--dst", "IPv4 headers only"),
    (["--dst", "127.0.0.1", "--src", "::1"], "--src", "IPv4 headers only"),
    (["--dst", "127.0.0.1", "--ttl", "256"], "--ttl", "0..255"),
    (["--dst", "127.0.0.1", "--tos", "-1"], "--tos", "0..255"),
    (["--dst", "127.0.0.1", "--id", "65536"], "--id", "0..65535"),
    (["--dst", "127.0.0.1", "--options", "010101"], "--options", "multiple of 4"),
    (["--dst", "127.0.0.1", "--options", "01" * 44], "--options", "0..40 bytes"),
    (["--dst", "127.0.0.1", "--frag-offset", "8192"], "--frag-offset", "0..8191"),
    (["--dst", "127.0.0.1", "--checksum", "0x10000"], "--checksum", "0..65535"),
    (["--dst", "127.0.0.1", "--checksum", "dead"], "--checksum", "0..65535"),
    (["--dst", "127.0.0.1", "--len", "70000"], "--len", "0..65535"),
    (["--dst", "127.0.0.1", "--data-hex", "zz"], "--data-hex", "hex digits"),
    (["--dst", "127.0.0.1", "--raw-hex", "abc"], "--raw-hex", "hex digits"),
    (["--dst", "127.0.0.1", "--udp", "1:70000"], "--udp", "0..65535"),
    (["--dst", "127.0.0.1", "--tcp", "80"], "--tcp", "SPORT:DPORT"),
    (["--dst", "127.0.0.1", "--tcp", "1:2", "--flags", "SX"], "--flags", "FSRPAUEC"),
    (["--dst", "127.0.0.1", "--icmp-type", "256"], "--icmp-type", "0..255"),
    (["--dst", "127.0.0.1", "--udp", "1:2", "--tcp", "1:2"], "--tcp", "choose one payload"),
    (["--dst", "127.0.0.1", "--size", "70000"], "--size", "0..65507"),
    (["--dst", "127.0.0.1", "--via", "carrier-pigeon"], "--via", "auto, raw, l2, scapy"),
    (["--dst", "127.0.0.1", "--count", "0"], "--count", "1..1000000"),
]


@pytest.mark.parametrize(("args", "field", "allowed"), BAD, ids=[" ".join(a[2:] or a) for a, _, _ in BAD])
def test_bad_input_exits_2_naming_field_and_range(args: list[str], field: str, allowed: str) -> None:
    """Each bad value: exit 2, one stderr line naming the option and its allowed range, nothing on stdout."""
    res = run_cli_offline("craft", *args)  # refused; were a regression to send (or resolve), nothing could leave
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0] and allowed in lines[0], res.stderr
    assert res.stdout == "" and "Traceback" not in res.stderr


def test_library_raises_invalid_option() -> None:
    """The library refuses out-of-range specs itself (API users get InvalidOption, not bad bytes)."""
    with pytest.raises(InvalidOption, match="--ttl"):
        build_packet(CraftSpec(dst=PHONE, src=PI, ttl=256))
    with pytest.raises(InvalidOption, match="--options"):
        build_packet(CraftSpec(dst=PHONE, src=PI, options=b"\x01\x01"))


def test_help_explains_what_the_kernel_changes() -> None:
    """--help says what Linux rewrites under IP_HDRINCL and how other systems differ."""
    res = recon("craft", "--help")
    text = " ".join(res.stdout.split())
    assert res.returncode == 0
    for phrase in ("IP_HDRINCL", "total length", "checksum", "id when it is 0", "AF_PACKET", "host byte order", "EINVAL"):
        assert phrase in text, phrase


def test_dry_run_json_and_pcap_open_in_tshark(tmp_path: Path) -> None:
    """--dry-run needs no privileges; --pcap saves the very bytes printed, and tshark reads them back."""
    tshark = need_tool("tshark")
    out = tmp_path / "c.pcap"
    res = recon("craft", "--src", "192.0.2.99", "--dst", "127.0.0.1", "--id", "0x4242", "--ttl", "7", "--df",
                "--options", "94040000", "--checksum", "0xdead", "--data", "hi", "--dry-run", "--json", "--pcap", str(out))
    assert res.returncode == 0, res.stderr
    shown = json.loads(res.stdout)
    assert "dry run: nothing sent" in res.stderr and shown["via"] == "none" and shown["sent"] == 0
    ts = subprocess.run([tshark, "-r", str(out), "-T", "fields", "-e", "ip.id", "-e", "ip.ttl", "-e", "ip.checksum",
                         "-e", "ip.hdr_len"], capture_output=True, text=True, timeout=60)
    assert ts.returncode == 0, ts.stderr
    assert ts.stdout.strip().split("\t") == ["0x4242", "7", "0xdead", "24"]
    dump = subprocess.run([tshark, "-r", str(out), "-x"], capture_output=True, text=True, timeout=60).stdout
    wire = bytes.fromhex("".join(line[6:54] for line in dump.splitlines() if line[:4].isalnum() and line[4:6] == "  "))
    assert wire == bytes.fromhex(shown["packet"])


# --- the lab: real packets ------------------------------------------------------------------------


def _ipv4(frames: list[bytes]) -> list[bytes]:
    return [raw[14:] for raw in frames if raw[12:14] == b"\x08\x00"]


@contextmanager
def tcpdump(lab, ns: str, bpf: str, path: Path,
            until: Callable[[list[bytes]], bool] | None = None) -> Iterator[list[bytes]]:
    """Capture IPv4 packets on ``ns``'s eth0 for the block; the yielded list fills when the block ends,
    once ``until(packets)`` holds (tcpdump -U writes each frame as it comes)."""
    packets: list[bytes] = []
    with lab.capture(ns, bpf, path) as wire:
        yield packets
        if until is None:
            time.sleep(1.0)  # the test checks that nothing shows: an absence has no signal to wait for
        else:
            wire.wait_for(lambda frames: until(_ipv4(frames)))
    packets.extend(_ipv4(wire.frames()))


@pytest.fixture(scope="module")
def wire(lab) -> Iterator:
    """The lab; its switch forwards malformed IPv4 (recon.lab turns br_netfilter off),
    so these tests prove that the *target* drops a bad packet, not the bridge."""
    yield lab


def _icmp(pkt: bytes) -> tuple[str, str, int, int, int]:
    """(src, dst, type, id, seq) of an IPv4/ICMP packet."""
    h = (pkt[0] & 0x0F) * 4
    src, dst = (".".join(str(b) for b in pkt[a:a + 4]) for a in (12, 16))
    return src, dst, pkt[h], int.from_bytes(pkt[h + 4:h + 6], "big"), int.from_bytes(pkt[h + 6:h + 8], "big")


def test_spoofed_echo_arrives_as_printed_and_the_reply_goes_to_the_spoofed_source(wire, tmp_path: Path) -> None:
    """From the scanner, an echo 'from the pi' to the phone: every printed field is on the wire, twice
    (--count 2), and the phone's echo replies go to the pi, which receives them."""
    lab = wire
    args = ["craft", "--src", PI, "--dst", PHONE, "--tos", "0x28", "--id", "4242", "--ttl", "33", "--df",
            "--options", "01010100", "--icmp-id", "0x5151", "--icmp-seq", "3", "--data", "recon craft",
            "--count", "2", "--interval", "0.2", "--json"]
    # the phone's capture ends once it holds both requests and both replies, the pi's once both replies came
    phone_done = (lambda pkts: sum(_icmp(p)[2] == 8 for p in pkts) >= 2
                  and sum(_icmp(p)[:3] == (PHONE, PI, 0) for p in pkts) >= 2)
    pi_done = (lambda pkts: sum(_icmp(p) == (PHONE, PI, 0, 0x5151, 3) for p in pkts) >= 2)
    with tcpdump(lab, lab.host("phone").netns, "icmp", tmp_path / "phone.pcap", phone_done) as at_phone, \
         tcpdump(lab, lab.host("pi").netns, "icmp", tmp_path / "pi.pcap", pi_done) as at_pi:
        res = lab.recon(*args)
        assert res.returncode == 0, res.stderr
    shown = json.loads(res.stdout)
    assert shown["via"] == "raw" and shown["sent"] == 2 and shown["kernel_rewrites"] == []
    built = bytes.fromhex(shown["packet"])
    requests = [p for p in at_phone if _icmp(p)[2] == 8]
    assert len(requests) == 2 and all(p == built for p in requests)
    for f in shown["fields"]:  # every field, by its printed offset, equals the wire
        on_wire = requests[0][f["offset"]:f["offset"] + f["length"]]
        if f["bits"] is None and f["number"] is not None:
            assert int.from_bytes(on_wire, "big") == f["number"], f
        elif f["bits"] is None:
            assert on_wire.hex() == f["hex"], f
    assert _icmp(requests[0]) == (PI, PHONE, 8, 0x5151, 3)
    replies_sent = [p for p in at_phone if _icmp(p)[:3] == (PHONE, PI, 0)]
    replies_seen_by_pi = [p for p in at_pi if _icmp(p) == (PHONE, PI, 0, 0x5151, 3)]
    assert len(replies_sent) == 2 and len(replies_seen_by_pi) == 2
    assert all(c["ok"] for c in shown["checksums"])


def test_bad_checksum_reaches_the_target_which_drops_it(wire, tmp_path: Path) -> None:
    """--checksum 0xdead goes out at layer 2 (Linux would fix it); it reaches the phone as 0xdead and
    the phone does not answer. The same packet with a correct checksum is answered."""
    lab = wire
    base = ["craft", "--src", lab.info.scanner_ipv4, "--dst", PHONE, "--icmp-id", "0x0bad", "--data", "bad sum", "--json"]
    # the good packet goes out after the bad one: once its reply is there, one to the bad one would be too
    good_answered = (lambda pkts: any(_icmp(p)[:3] == (PHONE, lab.info.scanner_ipv4, 0) and _icmp(p)[4] == 2
                                      for p in pkts))
    with tcpdump(lab, lab.host("phone").netns, "icmp", tmp_path / "bad.pcap", good_answered) as at_phone:
        bad = lab.recon(*base, "--checksum", "0xdead", "--icmp-seq", "1")
        good = lab.recon(*base, "--icmp-seq", "2")
    assert bad.returncode == 0 and good.returncode == 0, bad.stderr + good.stderr
    bad_shown = json.loads(bad.stdout)
    assert bad_shown["via"] == "l2" and "header checksum 0xdead" in bad_shown["reason"]
    assert not bad_shown["checksums"][0]["ok"]
    arrived = [p for p in at_phone if _icmp(p) == (lab.info.scanner_ipv4, PHONE, 8, 0x0BAD, 1)]
    assert arrived and arrived[0] == bytes.fromhex(bad_shown["packet"]) and arrived[0][10:12] == b"\xde\xad"
    answered = {_icmp(p)[4] for p in at_phone if _icmp(p)[:3] == (PHONE, lab.info.scanner_ipv4, 0)}
    assert answered == {2}


def test_linux_rewrites_checksum_and_length_on_the_raw_path(wire, tmp_path: Path) -> None:
    """What --help claims, on the wire: through IP_HDRINCL the kernel replaces --checksum 0xdead and
    --len 999 with correct values and fills an id of 0; craft warns that the wire differs."""
    lab = wire
    answered = (lambda pkts: any(_icmp(p)[2:4] == (0, 0x0DD) for p in pkts))
    with tcpdump(lab, lab.host("phone").netns, "icmp", tmp_path / "raw.pcap", answered) as at_phone:
        res = lab.recon("craft", "--src", PI, "--dst", PHONE, "--icmp-id", "0x0dd", "--checksum", "0xdead", "--len", "999",
                        "--id", "0", "--via", "raw", "--json")
    assert res.returncode == 0, res.stderr
    shown = json.loads(res.stdout)
    assert "warning: the wire differs" in res.stderr
    wire_pkt = next(p for p in at_phone if _icmp(p)[2:4] == (8, 0x0DD))
    built = bytes.fromhex(shown["packet"])
    assert wire_pkt[2:4] == len(built).to_bytes(2, "big") != built[2:4]
    assert wire_pkt[4:6] != b"\0\0"  # the kernel chose an id
    assert inet_checksum(wire_pkt[:20]) == 0 and wire_pkt[10:12] != b"\xde\xad"
    assert wire_pkt[20:] == built[20:] and wire_pkt[6:10] == built[6:10] and wire_pkt[12:20] == built[12:20]
    assert any(_icmp(p)[2:4] == (0, 0x0DD) for p in at_phone)  # valid after the rewrite: answered


def test_scapy_send_puts_the_same_bytes_on_the_wire(wire, tmp_path: Path) -> None:
    """--via scapy sends the built bytes untouched (a wrong checksum included)."""
    lab = wire
    arrived = (lambda pkts: any(_icmp(p)[2:4] == (8, 0x5CA) for p in pkts))
    with tcpdump(lab, lab.host("phone").netns, "icmp", tmp_path / "scapy.pcap", arrived) as at_phone:
        res = lab.recon("craft", "--dst", PHONE, "--icmp-id", "0x5ca", "--checksum", "0xbeef", "--via", "scapy", "--json")
    assert res.returncode == 0, res.stderr
    shown = json.loads(res.stdout)
    assert [p for p in at_phone if _icmp(p)[2:4] == (8, 0x5CA)] == [bytes.fromhex(shown["packet"])]


def test_dry_run_and_bad_input_put_nothing_on_the_wire(wire, tmp_path: Path) -> None:
    """--dry-run (even with --via l2, which would ARP), rejected input and an oversized packet send not one frame."""
    lab = wire
    with tcpdump(lab, lab.info.scanner_ns, f"host {PRINTER}", tmp_path / "dry.pcap") as seen:
        dry = lab.recon("craft", "--dst", PRINTER, "--dry-run", "--via", "l2", "--checksum", "0x1")
        bad = lab.recon("craft", "--dst", PRINTER, "--ttl", "256")
        bad2 = lab.recon("craft", "--dst", PRINTER, "--options", "01")
        big = lab.recon("craft", "--dst", PRINTER, "--size", "2000")  # over the MTU: EMSGSIZE, no fragments
    assert dry.returncode == 0 and "ip" in dry.stdout, dry.stderr
    assert bad.returncode == 2 and bad2.returncode == 2
    assert big.returncode == 2 and "MTU" in big.stderr and "--frag-offset" in big.stderr
    assert seen == []
    # the capture itself works: a real send to the printer is seen
    sent = (lambda pkts: any(_icmp(p)[1] == PRINTER for p in pkts))
    with tcpdump(lab, lab.info.scanner_ns, f"host {PRINTER}", tmp_path / "real.pcap", sent) as seen:
        assert lab.recon("craft", "--dst", PRINTER).returncode == 0
    assert any(_icmp(p)[1] == PRINTER for p in seen)


def test_without_cap_net_raw_exit_3_with_advice(wire) -> None:
    """As nobody (setpriv, no capabilities) in the scanner namespace: exit 3 with advice; --dry-run still works."""
    lab = wire
    need_tool("setpriv")
    for via in ("raw", "l2", "scapy"):
        res = lab.run([*NOBODY, sys.executable, "-m", "recon", "craft", "--dst", PHONE, "--via", via], env={"HOME": "/"})
        assert res.returncode == 3, (via, res.stderr)
        assert "CAP_NET_RAW" in res.stderr and "sudo" in res.stderr and len(res.stderr.strip().splitlines()) == 1
        assert "sysctl" not in res.stderr  # ICMP datagram sockets cannot send a hand-built header
        assert res.stdout == ""
    dry = lab.run([*NOBODY, sys.executable, "-m", "recon", "craft", "--dst", PHONE, "--dry-run"], env={"HOME": "/"})
    assert dry.returncode == 0 and "echo-request" in dry.stdout, dry.stderr


def test_ctrl_c_stops_a_count_run_and_reports_what_went_out(wire, tmp_path: Path) -> None:
    """SIGINT during --count 100 --interval 0.1: exit 130, the summary says how many left, the pcap holds as many."""
    lab = wire
    out = tmp_path / "int.pcap"
    proc = lab.popen([sys.executable, "-m", "recon", "craft", "--dst", PHONE, "--count", "100", "--interval", "0.1",
                      "--pcap", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # craft appends each packet to --pcap as it goes out (one write each): two there, the send loop runs
    Wire(out).wait_for(lambda frames: len(frames) >= 2, timeout=30)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    sent = int(err.split("sent ")[1].split()[0])
    assert 1 <= sent < 100 and "(interrupted)" in err
    from scapy.utils import rdpcap

    assert len(rdpcap(str(out))) == sent


@pytest.mark.parametrize("args", [["--udp", "1:2", "--icmp-seq", "1"], ["--flags", "S"], ["--raw-hex", "00", "--data", "x"],
                                  ["--data", "x", "--size", "3"]])
def test_options_that_do_not_fit_the_payload_exit_2(args: list[str]) -> None:
    """ICMP fields with --udp, --flags without --tcp, data with --raw-hex, two data sources: exit 2, one line."""
    res = recon("craft", "--dst", "127.0.0.1", *args)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1 and args[-2] in res.stderr, res.stderr


def test_hand_made_fragments_are_reassembled_and_answered(wire, tmp_path: Path) -> None:
    """An echo request split by hand into two fragments (--mf, --frag-offset, --raw-hex, --proto 1,
    the same --id) is reassembled by the phone, which answers the whole message."""
    lab = wire
    data = bytes(range(40))
    icmp = bytearray(b"\x08\x00\x00\x00\x0f\x0f\x00\x01" + data)
    icmp[2:4] = inet_checksum(bytes(icmp)).to_bytes(2, "big")
    first, rest = bytes(icmp[:24]), bytes(icmp[24:])  # 24 bytes = fragment offset 3 (8-byte units)
    common = ["craft", "--dst", PHONE, "--proto", "1", "--id", "0x7777"]
    answered = (lambda pkts: any(p[12:16] == bytes([198, 18, 0, 10]) and p[20] == 0 for p in pkts))
    with tcpdump(lab, lab.host("phone").netns, "icmp or (ip[6:2] & 0x1fff != 0)", tmp_path / "frag.pcap",
                 answered) as at_phone:
        one = lab.recon(*common, "--mf", "--raw-hex", first.hex())
        two = lab.recon(*common, "--frag-offset", "3", "--raw-hex", rest.hex())
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    frags = [p for p in at_phone if p[4:6] == b"\x77\x77"]
    assert [(p[6] & 0x20, int.from_bytes(p[6:8], "big") & 0x1FFF) for p in frags] == [(0x20, 0), (0, 3)]
    replies = [p for p in at_phone if p[12:16] == bytes([198, 18, 0, 10]) and p[20] == 0]
    assert replies and replies[0][20 + 8:] == data and replies[0][24:26] == b"\x0f\x0f"


# --- the senders, in-process through the replay transport (no root, no lab) -------------------------


def _shown_bytes(report: str) -> bytes:
    """The bytes of the hex dump in a craft report (lines ``0000  45 00 ...  ascii``)."""
    out = b""
    for line in report.splitlines():
        head, _, rest = line.partition("  ")
        if len(head) == 4 and all(c in "0123456789abcdef" for c in head) and rest:
            out += bytes.fromhex(rest[:48].replace("  ", " "))
    return out


def test_raw_path_sends_exactly_the_bytes_shown() -> None:
    """--via raw: one IPPROTO_RAW packet to (dst, 0) whose bytes are the hex dump printed before it left."""
    from recon import render
    from recon.craft import craft
    from recon.transport import ReplayTransport

    transport = ReplayTransport()
    shown: list[str] = []
    spec = CraftSpec(dst=PHONE, src=PI, ttl=7, ident=0x4242, options=bytes.fromhex("94040000"), data=b"hello")
    result = craft(spec, via="raw", count=2, interval=0, transport=transport, on_ready=lambda p: shown.append(render.craft_report(p)))
    assert [(s.kind, s.address) for s in transport.sent] == [("raw4", (PHONE, 0))] * 2
    assert transport.sent[0].data == transport.sent[1].data == result.packet.data == _shown_bytes(shown[0])
    assert result.via == "raw" and result.sent == 2 and result.kernel_rewrites == ()
    assert all(s.closed for s in transport.sockets)


def test_auto_sends_a_wrong_checksum_at_layer_2_as_built() -> None:
    """A wrong --checksum makes auto pick AF_PACKET (the kernel would fix it on the raw path): the frame is
    an Ethernet header and then exactly the bytes shown, wrong checksum included; the summary says why."""
    from recon import render
    from recon.craft import craft
    from recon.transport import ReplayTransport

    transport = ReplayTransport(interfaces={"lo": (772, bytes(6))})
    shown: list[str] = []
    spec = CraftSpec(dst="127.0.0.1", src="127.0.0.1", checksum=0xDEAD)
    result = craft(spec, transport=transport, on_ready=lambda p: shown.append(render.craft_report(p)))
    (frame,) = transport.sent
    assert frame.kind == "packet" and frame.data == bytes(12) + b"\x08\x00" + _shown_bytes(shown[0])
    assert frame.data[14 + 10:14 + 12] == b"\xde\xad"
    assert "ip checksum at byte 10: 0xdead WRONG (correct 0x" in shown[0] and "receivers drop this packet" in shown[0]
    summary = render.craft_summary(result)
    assert result.via == "l2" and result.interface == "lo"
    assert "via l2 on lo to 00:00:00:00:00:00: Linux rewrites IP_HDRINCL packets (header checksum 0xdead -> 0x" in summary[0]
    assert json.loads(render.craft_json(result))["kernel_rewrites"] == []


def test_next_hop_mac_comes_from_the_arp_reply() -> None:
    """--via l2 asks the next hop's MAC with one ARP request; the recorded reply in captures/ answers it."""
    from recon.arp import ETH_P_ARP
    from recon.craft import _arp, arp_request
    from recon.transport import Recording, ReplayTransport
    from tests.conftest import CAPTURES

    rec = Recording.from_pcap(CAPTURES / "ip-options.pcap")
    mac = bytes.fromhex("025245430002")
    transport = ReplayTransport(rec, interfaces={"eth0": (1, mac)})
    assert _arp("eth0", mac, PHONE, transport) == rec.arp[PHONE][0][22:28].hex(":")
    (request,) = transport.sent
    assert request.data == arp_request(mac, bytes([198, 18, 0, 2]), bytes([198, 18, 0, 10]))
    assert request.data[12:14] == ETH_P_ARP.to_bytes(2, "big") and transport.sockets[0].bound == ("eth0", ETH_P_ARP)


@pytest.mark.parametrize("via", ["raw", "l2", "auto"])
def test_without_raw_sockets_privilege_error_with_craft_advice(via: str) -> None:
    """No raw sockets: PrivilegeError naming CAP_NET_RAW, and no ping_group_range advice (it cannot help)."""
    from recon import render
    from recon.craft import craft
    from recon.errors import PrivilegeError
    from recon.transport import ReplayTransport

    transport = ReplayTransport(dgram_only=True, interfaces={"lo": (772, bytes(6))})
    with pytest.raises(PrivilegeError) as caught:
        craft(CraftSpec(dst="127.0.0.1", src="127.0.0.1"), via=via, transport=transport)
    line = render.error_line(caught.value)
    assert "CAP_NET_RAW" in line and "sudo" in line and "sysctl" not in line
    assert transport.sent == []


def test_scapy_never_runs_over_a_replay_transport() -> None:
    """Scapy opens its own sockets: over a replay transport --via scapy is refused before anything is sent."""
    from recon.craft import craft
    from recon.errors import InputError
    from recon.transport import ReplayTransport

    transport = ReplayTransport()
    with pytest.raises(InputError, match="--via scapy"):
        craft(CraftSpec(dst=PHONE, src=PI), via="scapy", transport=transport)
    assert transport.sent == [] and transport.sockets == []
