"""recon.decode: every field equals tshark's on every recorded packet, and hostile bytes never raise."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recon import render
from recon.decode import decode
from recon.models import IPHeader, IPv6Header
from recon.packets import inet_checksum
from recon.pcap import read_frames
from tests.conftest import CAPTURES, need_tool

CAPTURE_FILES = sorted(p for p in CAPTURES.iterdir() if p.suffix in (".pcap", ".pcapng"))
FIELDS = ["frame.number", "ip.version", "ip.hdr_len", "ip.len", "ip.id", "ip.ttl", "ip.proto", "ip.checksum",
          "ip.flags.rb", "ip.flags.df", "ip.flags.mf", "ip.frag_offset", "ip.src", "ip.dst", "ip.dsfield",
          "icmp.type", "icmp.code", "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport",
          "ipv6.version", "ipv6.tclass", "ipv6.flow", "ipv6.plen", "ipv6.nxt", "ipv6.hlim", "ipv6.src", "ipv6.dst",
          "icmpv6.type", "icmpv6.code"]
CONTROL = {chr(c) for c in range(32) if c != 10} | {"\x7f"}


def tshark_rows(path: Path) -> list[dict[str, str]]:
    """tshark's view of every frame (first occurrence of each field: the outer header; no reassembly)."""
    argv = [need_tool("tshark"), "-r", str(path), "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE",
            "-T", "fields", "-E", "separator=|", "-E", "occurrence=f"]
    for f in FIELDS:
        argv += ["-e", f]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return [dict(zip(FIELDS, line.split("|"), strict=True)) for line in out.splitlines()]


def num(text: str) -> int:
    return int(text, 0)


def test_captures_cover_what_the_issue_asks() -> None:
    """captures/ holds a sweep, ping errors, a crafted spoofed packet, fragments, IP options, IPv6, a pcapng and a
    non-Ethernet link type, each under 200 KB and each described in captures/README.md."""
    names = {p.name for p in CAPTURE_FILES}
    assert {"sweep.pcap", "ping-errors.pcap", "crafted-spoofed.pcap", "fragments.pcapng", "ip-options.pcap",
            "ipv6.pcap"} <= names
    readme = (CAPTURES / "README.md").read_text()
    linktypes = set()
    for p in CAPTURE_FILES:
        assert p.stat().st_size < 200_000
        assert f"`{p.name}`" in readme
        linktypes |= {f.linktype for f in read_frames(p)}
    assert 1 in linktypes and linktypes - {1}


@pytest.mark.parametrize("path", CAPTURE_FILES, ids=lambda p: p.name)
def test_decoder_fields_equal_tsharks(path: Path) -> None:
    """For every packet of every capture, version, IHL, lengths, id, TTL, protocol, checksum, flags, offset,
    addresses, DSCP/ECN, ICMP type/code and ports (IPv6: class, flow, lengths, next header, hop limit) equal tshark's."""
    rows = tshark_rows(path)
    packets = [decode(f.data, f.linktype, frame=i) for i, f in enumerate(read_frames(path), 1)]
    assert len(packets) == len(rows) > 0
    seen_v4 = seen_v6 = 0
    for pkt, row in zip(packets, rows, strict=True):
        assert int(row["frame.number"]) == pkt.frame
        ip = pkt.ip
        if row["ip.version"] and not row["ipv6.version"]:  # tshark also fills ip.version for IPv6
            assert isinstance(ip, IPHeader), (pkt.frame, pkt.problems)
            seen_v4 += 1
            got = (ip.version, ip.ihl * 4, ip.total_length, ip.id, ip.ttl, ip.proto, ip.checksum, ip.flags >> 2,
                   int(ip.df), int(ip.mf), ip.frag_offset, ip.src, ip.dst, ip.tos)
            want = (num(row["ip.version"]), num(row["ip.hdr_len"]), num(row["ip.len"]), num(row["ip.id"]),
                    num(row["ip.ttl"]), num(row["ip.proto"]), num(row["ip.checksum"]), num(row["ip.flags.rb"]),
                    num(row["ip.flags.df"]), num(row["ip.flags.mf"]), num(row["ip.frag_offset"]), row["ip.src"],
                    row["ip.dst"], num(row["ip.dsfield"]))
            assert got == want, f"frame {pkt.frame}"
            if ip.proto == 1:
                want_icmp = (num(row["icmp.type"]), num(row["icmp.code"])) if row["icmp.type"] else (None, None)
                assert (pkt.icmp_type, pkt.icmp_code) == want_icmp, f"frame {pkt.frame}"
            elif ip.proto in (6, 17):
                l4 = "tcp" if ip.proto == 6 else "udp"
                want_ports = (num(row[f"{l4}.srcport"]), num(row[f"{l4}.dstport"])) if row[f"{l4}.srcport"] else (None, None)
                assert (pkt.sport, pkt.dport) == want_ports, f"frame {pkt.frame}"
        elif row["ipv6.version"]:
            assert isinstance(ip, IPv6Header), (pkt.frame, pkt.problems)
            seen_v6 += 1
            got6 = (ip.version, ip.traffic_class, ip.flow_label, ip.payload_length, ip.next_header, ip.hop_limit,
                    ip.src, ip.dst)
            want6 = (num(row["ipv6.version"]), num(row["ipv6.tclass"]), num(row["ipv6.flow"]), num(row["ipv6.plen"]),
                     num(row["ipv6.nxt"]), num(row["ipv6.hlim"]), row["ipv6.src"], row["ipv6.dst"])
            assert got6 == want6, f"frame {pkt.frame}"
            if ip.upper_proto == 58:
                want_icmp6 = (num(row["icmpv6.type"]), num(row["icmpv6.code"])) if row["icmpv6.type"] else (None, None)
                assert (pkt.icmp_type, pkt.icmp_code) == want_icmp6, f"frame {pkt.frame}"
        else:
            assert ip is None, f"frame {pkt.frame}: tshark sees no IP, recon decoded {ip}"
    assert seen_v4 + seen_v6 > 0


def test_recorded_captures_show_what_was_sent() -> None:
    """The decoder reports the recorded oddities by name: fragments, options, bad checksum, lying total length."""
    def frames(name: str):
        return [decode(f.data, f.linktype) for f in read_frames(CAPTURES / name)]

    frag = frames("fragments.pcapng")
    assert any(isinstance(p.ip, IPHeader) and p.ip.mf and p.ip.frag_offset == 0 and p.icmp_type == 8 for p in frag)
    assert any(isinstance(p.ip, IPHeader) and p.ip.frag_offset == 185 and p.icmp_type is None for p in frag)
    assert any(isinstance(p.ip, IPv6Header) and p.ip.frag_id is not None for p in frag)
    opts = {o.name for p in frames("ip-options.pcap") if isinstance(p.ip, IPHeader) for o in p.ip.options}
    assert {"RR", "TS", "RA", "NOP"} <= opts
    rr = [o for p in frames("ip-options.pcap") if isinstance(p.ip, IPHeader) for o in p.ip.options if o.name == "RR"]
    assert any("198.18.0.1" in o.addresses for o in rr)  # the router recorded itself
    crafted = frames("crafted-spoofed.pcap")
    assert any(p.ip is not None and p.ip.checksum_ok is False and p.ip.checksum == 0xBAD for p in crafted)
    assert any("truncated: total length 400" in " ".join(p.problems) for p in crafted)
    assert any(isinstance(p.ip, IPHeader) and p.ip.src == "198.18.12.1" and p.icmp_type == 8 for p in crafted)
    errors = {(p.icmp_type, p.icmp_code) for p in frames("ping-errors.pcap") if isinstance(p.ip, IPHeader)}
    assert {(3, 1), (11, 0), (0, 0)} <= errors


# --- synthetic frames, built by hand (no Scapy routing: nothing is sent) -----------------------------


def ipv4(payload: bytes = b"\x08\x00\x00\x00\x00\x01\x00\x01", *, proto: int = 1, options: bytes = b"",
         total: int | None = None, ihl: int | None = None, flags_frag: int = 0x4000, csum: int | None = None) -> bytes:
    hl = ihl if ihl is not None else 5 + len(options) // 4
    tl = total if total is not None else 20 + len(options) + len(payload)
    head = struct.pack("!BBHHHBBH4s4s", 0x40 | hl, 0, tl, 0x1234, flags_frag, 64, proto, 0,
                       bytes([198, 18, 0, 2]), bytes([198, 18, 0, 10])) + options
    c = inet_checksum(head) if csum is None else csum
    return head[:10] + struct.pack("!H", c) + head[12:] + payload


def ether(body: bytes, etype: int = 0x0800, vlans: tuple[int, ...] = ()) -> bytes:
    head = bytes.fromhex("3c22fb123456025245430002")
    for v in vlans:
        head += struct.pack("!HH", 0x8100, v)
    return head + struct.pack("!H", etype) + body


def test_problems_are_reported_not_raised() -> None:
    """IHL < 5, truncation, a total length longer or shorter than captured, bad checksums, bad options, non-IP
    frames and unknown link types each come back as a named problem."""
    assert any("IHL 4 < 5" in p for p in decode(ether(ipv4(ihl=4))).problems)
    assert any("truncated IPv4 header" in p for p in decode(ether(ipv4()[:15])).problems)
    assert any("truncated: total length 500" in p for p in decode(ether(ipv4(total=500))).problems)
    long = decode(ether(ipv4(b"\x08\x00" + b"x" * 100, total=40)))
    assert any("captured beyond total length 40" in p for p in long.problems)
    bad = decode(ether(ipv4(csum=0x1111)))
    assert bad.ip is not None and bad.ip.checksum_ok is False and any("bad IPv4 header checksum" in p for p in bad.problems)
    good = decode(ether(ipv4()))
    assert good.ip is not None and good.ip.checksum_ok is True and good.problems == ()
    broken_opt = decode(ether(ipv4(options=b"\x07\x30\x04\x00")))  # RR claiming 48 bytes in a 4-byte option area
    assert any("IP option RR has bad length 48" in p for p in broken_opt.problems)
    assert decode(ether(b"\x00" * 28, etype=0x0806)).problems == ("non-IP (ethertype 0x0806)",)
    assert decode(b"\x00" * 40, 147).problems == ("unknown link type 147",)
    frag = decode(ether(ipv4(flags_frag=0x2000 | 100)))
    assert frag.icmp_type is None and any("fragment (offset 800, more)" in p for p in frag.problems)


def test_link_layers() -> None:
    """The same IPv4 packet decodes alike behind Ethernet, 802.1Q/QinQ, raw IP, SLL, SLL2, null (both byte
    orders) and loop headers."""
    pkt = ipv4()
    frames = {
        "ethernet": (ether(pkt), 1),
        "vlan": (ether(pkt, vlans=(0x0005, 0x2007)), 1),
        "raw": (pkt, 101),
        "ipv4": (pkt, 228),
        "sll": (struct.pack("!HHH8sH", 0, 1, 6, b"\x02RECON\0\0", 0x0800) + pkt, 113),
        "sll2": (struct.pack("!HHIHBB8s", 0x0800, 0, 2, 1, 4, 6, b"\x02RECON\0\0") + pkt, 276),
        "null-le": (struct.pack("<I", 2) + pkt, 0),
        "null-be": (struct.pack(">I", 2) + pkt, 0),
        "loop": (struct.pack(">I", 2) + pkt, 108),
    }
    for name, (data, lt) in frames.items():
        d = decode(data, lt)
        assert isinstance(d.ip, IPHeader) and d.ip.dst == "198.18.0.10" and d.icmp_type == 8, name
        assert d.problems == (), (name, d.problems)
    assert decode(*frames["vlan"]).vlans == (5, 7)


def test_ipv4_options_by_name() -> None:
    """EOL, NOP, RR (with its route), TS (flag 0 and 1), LSRR, SSRR and RA are decoded by name."""
    rr = bytes([7, 11, 8]) + bytes([198, 18, 0, 1]) + bytes(4)
    ts = bytes([68, 12, 9, 0x10]) + struct.pack("!II", 1000, 0)
    lsrr = bytes([131, 7, 4, 198, 18, 2, 1])
    ra = bytes([148, 4, 0, 0])
    opts = bytes([1]) + rr + ts + lsrr + ra + bytes([0]) + bytes((4 - (1 + 11 + 12 + 7 + 4 + 1) % 4) % 4)
    d = decode(ether(ipv4(options=opts)))
    assert isinstance(d.ip, IPHeader) and d.problems == ()
    names = [o.name for o in d.ip.options]
    assert names == ["NOP", "RR", "TS", "LSRR", "RA", "EOL"]
    assert d.ip.options[1].addresses == ("198.18.0.1", "0.0.0.0") and d.ip.options[1].pointer == 8
    assert d.ip.options[2].timestamps == (1000, 0) and d.ip.options[2].overflow == 1
    assert d.ip.options[3].addresses == ("198.18.2.1",)


# --- hostile bytes ----------------------------------------------------------------------------------

LINKTYPES = st.sampled_from([0, 1, 12, 101, 108, 113, 228, 229, 276]) | st.integers(0, 0xFFFF)


def _plausible() -> st.SearchStrategy[bytes]:
    """Mostly-valid frames with random tails, so the fuzzer reaches options, IPv6 extensions and L4 parsing."""
    v4 = st.builds(lambda ihl, rest: bytes([0x40 | ihl]) + rest, st.integers(0, 15), st.binary(min_size=0, max_size=120))
    v6 = st.builds(lambda nxt, rest: b"\x60\x00\x00\x00" + rest[:2] + bytes([nxt]) + rest[2:],
                   st.sampled_from([0, 6, 17, 43, 44, 51, 58, 60, 59, 135]), st.binary(min_size=0, max_size=120))
    return st.one_of(v4, v6).map(lambda b: ether(b, 0x0800 if b[0] >> 4 == 4 else 0x86DD))


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.binary(max_size=200) | _plausible(), linktype=LINKTYPES)
def test_decode_never_raises_and_output_stays_clean(data: bytes, linktype: int) -> None:
    """Arbitrary bytes on any link type decode without an exception, and every rendering of them (line, -v,
    --hex, --json) is free of raw control characters."""
    pkt = decode(data, linktype, frame=1)
    assert pkt.caplen == len(data)
    for text in (render.sniff_line(pkt), render.sniff_verbose(pkt), render.sniff_hex(pkt),
                 render.sniff_json(pkt, hexdump=True) or ""):
        assert not CONTROL & set(text), repr(text)


def test_fast_construction_builds_the_same_frozen_dataclasses() -> None:
    """The decoder's one-step construction yields objects equal to the dataclass constructors' and as frozen."""
    import dataclasses

    from recon.models import DecodedPacket

    pkt = decode(ether(ipv4(options=bytes([1, 1, 1, 0]))), 1, 7, 123)
    assert isinstance(pkt.ip, IPHeader)
    ip = IPHeader(**{f.name: getattr(pkt.ip, f.name) for f in dataclasses.fields(IPHeader)})
    rebuilt = DecodedPacket(**{**{f.name: getattr(pkt, f.name) for f in dataclasses.fields(DecodedPacket)}, "ip": ip})
    assert rebuilt == pkt and hash(rebuilt) == hash(pkt) and dataclasses.asdict(rebuilt) == dataclasses.asdict(pkt)
    with pytest.raises(dataclasses.FrozenInstanceError):
        pkt.ip.ttl = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        pkt.frame = 2  # type: ignore[misc]


_HEADS = [b"", bytes.fromhex("d4c3b2a1"), bytes.fromhex("a1b2c3d4"), bytes.fromhex("4d3cb2a1"), bytes.fromhex("0a0d0d0a"),
          bytes.fromhex("d4c3b2a102000400000000000000000000000400") + b"\x01\x00\x00\x00"]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(head=st.sampled_from(_HEADS), tail=st.binary(max_size=300), cut=st.integers(0, 60))
def test_reading_hostile_files_raises_only_capture_error(tmp_path: Path, head: bytes, tail: bytes, cut: int) -> None:
    """Random bytes behind pcap/pcapng magics, and real captures with random damage, yield frames and at most
    one CaptureError: never another exception."""
    from recon.errors import CaptureError

    real = (CAPTURES / ("fragments.pcapng" if cut % 2 else "ping-errors.pcap")).read_bytes()
    for blob in (head + tail, real[:len(real) - cut] + tail[:cut], real[:40 + cut] + tail + real[40 + cut:]):
        path = tmp_path / "f.cap"
        path.write_bytes(blob)
        try:
            for frame in read_frames(path):
                decode(frame.data, frame.linktype)
        except CaptureError:
            pass
