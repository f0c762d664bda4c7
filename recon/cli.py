"""recon's command line: parse options → call one library function → render → exit code.

Scapy is imported only inside the commands that need it, so ``recon --help``
stays fast. Errors become one line on stderr and an exit code (``ExitStatus``);
``--debug`` shows the traceback too.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TextIO

import typer

from recon import __version__, render, scapyload
from recon.errors import ExitStatus, InputError, InvalidOption, ReconEnvironmentError, ReconError

if TYPE_CHECKING:
    from recon.models import SweepResult
    from recon.targets import TargetSet

app = typer.Typer(
    name="recon",
    help="Network reconnaissance: find hosts, ping, sniff and craft packets, watch a LAN.\n\n"
    "Try it safely: 'sudo recon demo' builds a virtual lab, probes it and tears it down.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
lab_app = typer.Typer(
    help="The safe virtual LAN (network namespaces in 198.18.0.0/15). Example: sudo recon lab up",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(lab_app, name="lab", short_help="The safe virtual LAN for trying recon, as in: sudo recon lab up")

_state: dict[str, Any] = {"debug": False, "argv": []}


def _interface(param: typer.CallbackParam, value: str | None) -> str | None:
    """Every -i/-I interface option: a name the kernel could have (bytes in argv that are not
    UTF-8, a slash, a space or more than 15 bytes never are), else one line and exit 2."""
    if value is None:
        return None
    option = "/".join(sorted(param.opts, key=len))
    try:
        size = len(value.encode())
    except UnicodeEncodeError:
        raise InvalidOption(option, value, "an interface name in UTF-8 (see 'ip link')") from None
    if not 0 < size <= 15 or "/" in value or any(c.isspace() for c in value):
        raise InvalidOption(option, value, "an interface name of 1 to 15 bytes, no '/' or spaces (see 'ip link')")
    return value


def _retired(flag: str, instead: str) -> Any:
    """A short flag whose meaning changed to follow fping/ping/nmap: giving it is one line and exit 2 that
    names the new spelling, never a silent change of meaning (hidden from --help; the README says so)."""
    def refuse(ctx: typer.Context, value: str | None) -> None:
        if value is not None:
            raise InputError(f"{ctx.info_name} has no {flag} any more: {instead}")

    return refuse


_OLD_T = "the reply wait is -W/--timeout SECONDS, as in ping (-t is ping's TTL; fping's -t MS is -W MS/1000)"
_OLD_I = "the interface is -I/--interface, as in ping and fping (fping's -i interval is --rate PPS here)"
RetiredT = Annotated[str | None, typer.Option("-t", hidden=True, callback=_retired("-t", _OLD_T), expose_value=False)]
RetiredI = Annotated[str | None, typer.Option("-i", hidden=True, callback=_retired("-i", _OLD_I), expose_value=False)]


def _version(value: bool) -> None:
    if value:
        render.out(f"recon {__version__}")
        raise typer.Exit(0)


def _help_man(ctx: typer.Context, value: bool) -> None:
    if value:
        from recon.manpage import manpage

        render.out(manpage(ctx.find_root().command, "recon", __version__).rstrip("\n"))
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False,
    help_man: Annotated[bool, typer.Option(
        "--help-man", callback=_help_man, is_eager=True, expose_value=False,
        help="Print recon(1), the man page of every command, in roff: recon --help-man | man -l -")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    _state["debug"] = debug


# --- sweep ------------------------------------------------------------------------------


TargetsArg = Annotated[list[str] | None, typer.Argument(
    help="Addresses, ranges (198.18.0.1-120), CIDRs, octet ranges, hostnames; IPv6 too (2001:db8::1-ff, 2001:db8::/120, fe80::1%eth0).",
    show_default=False)]
InputFileOpt = Annotated[str | None, typer.Option(
    "--input-file", "-iL", help="Read targets from FILE, one per line ('-' for stdin, '#' comments).")]
ExcludeOpt = Annotated[list[str] | None, typer.Option("--exclude", help="Leave out these targets (repeatable).")]
ExcludeFileOpt = Annotated[str | None, typer.Option("--exclude-file", help="Leave out the targets listed in FILE.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help=(
    "Allow more than 65,536 addresses (IPv4 and IPv6 together; one IPv6 range: a /96 at most; one sweep or --shard: "
    "a /104 of IPv6 at most, and --cluster and --resume cut more into shards that small)."))]


ClusterOpt = Annotated[str | None, typer.Option("--cluster", help=(
    "Run shards (IPv4, IPv6 and scoped targets) as tasks on a Dask cluster: tcp://SCHEDULER:8786, or local:N "
    "worker processes (needs recon[cluster]); each shard's hosts are printed as it arrives."))]
ResumeOpt = Annotated[str | None, typer.Option("--resume", help=(
    "Record the targets, the seed, the shards and each finished shard (its hosts printed then) in FILE; "
    "run the same command again to carry on where it stopped."))]


def _target_warnings(target_set: TargetSet) -> None:
    """The names skipped (they did not resolve), one line each."""
    for warning in target_set.warnings:
        render.err(render.target_warning(warning))


@app.command(short_help="Find live hosts (ICMP/ARP), as in: recon sweep 192.168.1.1-120")
def sweep(
    targets: TargetsArg = None,
    input_file: InputFileOpt = None,
    exclude: ExcludeOpt = None,
    exclude_file: ExcludeFileOpt = None,
    yes: YesOpt = False,
    timeout: Annotated[float, typer.Option(
        "--timeout", "-W", help="Seconds to wait for replies after the last probe (ping's -W; was -t).")] = 1.0,
    retries: Annotated[int | None, typer.Option("--retries", "-r", help=(
        "Re-probe the silent targets this many times (default: adapt: again while the last retry round still "
        "found hosts, at most 6)."), show_default=False)] = None,
    rate: Annotated[float | None, typer.Option(
        "--rate", help="Probes per second (token bucket); default: as fast as the socket takes.")] = None,
    probe: Annotated[list[str] | None, typer.Option("--probe", help=(
        "Probe routed targets with: echo, timestamp, mask (ICMP), syn:PORTS, ack:PORTS, udp:PORTS; repeatable, "
        "e.g. --probe syn:443,80 --probe udp:53. nmap's -PE -PP -PM -PS443,80 -PA80 -PU53 work too. "
        "Default: echo, syn:443, ack:80, timestamp (nmap -sn); on-link targets always go by ARP."),
        show_default=False)] = None,
    method: Annotated[str, typer.Option("--method", help="auto: ARP on-link, ICMP routed (as nmap); or icmp, arp.")] = "auto",
    engine: Annotated[str, typer.Option("--engine", help="raw: batched raw sockets; scapy: Scapy sr() (slow reference).")] = "raw",
    source: Annotated[str | None, typer.Option(
        "--source", help="Send from this local address: IPv4 (also the sender of ARP requests), or IPv6 for IPv6 targets.")] = None,
    interface: Annotated[str | None, typer.Option(
        "--interface", "-I", callback=_interface, help="Send on this interface (ping's and fping's -I; was -i).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Probe in this seeded pseudo-random order (default: address order).")] = None,
    shard: Annotated[str | None, typer.Option("--shard", help=(
        "Probe only shard I of N: I/N, 1-based (1/4 .. 4/4); or, with --shards N, zmap's 0-based I (0 .. N-1). "
        "Shards are disjoint and complete."))] = None,
    shards: Annotated[str | None, typer.Option("--shards", metavar="N",
                                                  help="zmap spelling: the number of shards, with --shard I (0-based).")] = None,
    resolve: Annotated[bool, typer.Option("--resolve", "-R", help="Reverse-resolve the hosts that are up (bounded in time).")] = False,
    numeric: Annotated[bool, typer.Option("--numeric", "-n", help="No reverse lookups (nmap -n; the default unless -R).")] = False,
    show_all: Annotated[bool, typer.Option(
        "--all", help="List down and unreachable targets too (no short flag: -a is fping's -a).")] = False,
    alive: Annotated[bool, typer.Option(
        "--alive", "-a", help="Print only the addresses that are up, one per line (fping -a; -a was --all before).")] = False,
    grep: Annotated[bool, typer.Option(
        "--grep", help="One line per host, nmap -oG style: 'Host: ADDR (NAME)<TAB>Status: Up<TAB>Reason: ...'.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="JSON lines, one object per host.")] = False,
    csv_out: Annotated[bool, typer.Option("--csv", help="CSV with a header row.")] = False,
    pcap: Annotated[str | None, typer.Option("--write", "-w", "--pcap", help="Write every probe and reply to this pcap file.")] = None,
    cluster: ClusterOpt = None,
    resume: ResumeOpt = None,
    _t: RetiredT = None,
    _i: RetiredI = None,
    local: Annotated[str | None, typer.Option("--local", metavar="IFACE", callback=_interface, show_default=False, help=(
        "Every IPv6 host on this link (echo to ff02::1; NDP over an on-link prefix of at most 4,096), targets optional."))] = None,
) -> int:
    """Find live hosts, IPv4 and IPv6 (ARP or Neighbor Discovery on-link; ICMP, TCP and UDP probes routed;
    multicast echo for a whole link).

    \b
    Examples:
      recon sweep 192.168.1.1-120                  nmap -sn's probes: echo, SYN 443, ACK 80, timestamp
      recon sweep 10.0.0.0/24 --probe echo         ICMP echo only (ping)
      recon sweep 10.0.0.0/24 --probe syn:22,443   hosts that drop ICMP but answer TCP (nmap -PS22,443)
      recon sweep 10.0.0.0/24 -PA80                TCP ACK: an RST back means up, even through stateless filters
      recon sweep 10.0.0.0/24 --probe udp:53       a UDP reply, or port unreachable from the host, means up
      recon sweep 10.0.0.0/24 -PP                  ICMP timestamp (hosts that drop only echo)
      recon sweep 2001:db8:1::/120 2001:db8::/120  IPv6: echo, SYN 443, ACK 80 routed; Neighbor Discovery on-link
      recon sweep fe80::1%eth0 ff02::1%eth0        scoped: one address, or every member of a group, on eth0
      recon sweep --local eth0                     every IPv6 host on eth0's link, with MAC and vendor
      recon sweep 10.0.0.0/16 --cluster local:2    in shards on 2 processes (IPv6 too); with --resume FILE, resumable
    """
    from recon.targets import parse_shard

    fmt = _sweep_format(json_out=json_out, csv_out=csv_out, grep=grep, alive=alive, numeric=numeric, resolve=resolve)
    shard_t = parse_shard(shard, shards)
    seed = 0 if seed is None and shard_t[1] > 1 else seed  # shards interleave over one permutation: any fixed seed
    target_set = _sweep_targets(targets, input_file, exclude, exclude_file, yes=yes, local=local, pcap=pcap)
    _target_warnings(target_set)
    options: dict[str, Any] = {"method": method, "probe": probe, "engine": engine, "interface": interface, "source": source, "rate": rate}
    run = {"timeout": timeout, "retries": retries, "seed": seed, "shard": shard_t, "resolve": resolve}
    if cluster is None and resume is None:
        return _stream_sweep(target_set, options, {**run, "local": local or ()}, pcap=pcap, show_all=show_all, fmt=fmt, probe=probe)
    if local is not None:
        raise InputError("--local cannot be combined with --cluster or --resume", hint="sweep the link apart")
    if pcap is not None:
        raise InputError("--pcap cannot be combined with --cluster or --resume", hint="drop --pcap")
    return _shard_sweep(target_set, options, run, cluster=cluster, resume=resume, show_all=show_all, fmt=fmt, probe=probe)


def _shard_sweep(target_set: TargetSet, options: dict[str, Any], run: dict[str, Any], *, cluster: str | None,
                 resume: str | None, show_all: bool, fmt: str, probe: list[str] | None) -> int:
    """A sweep in shards (``--cluster``, ``--resume``), printed as each shard arrives: a line per shard on stderr,
    its hosts on stdout (the table sorted at the end), then the summary and a line per worker. Ctrl-C ends it
    with the shards that arrived (the running ones are dropped, and swept again by a --resume run); exit 130."""
    from recon.cluster import ClusterStream
    from recon.models import ShardStats, SweepResult

    with ClusterStream(target_set, cluster, resume=resume, down=show_all and fmt != "-a/--alive", **run, **options) as stream, \
            _sigint_calls(stream.stop):
        printer = render.SweepPrinter(fmt, show_all, argv=["recon", *_state["argv"]])
        for item in stream:
            if isinstance(item, ShardStats):
                render.err(render.shard_line(item))
            else:
                printer.add(item)
    result = SweepResult(hosts=(), stats=stream.stats, shards=stream.shards)  # each sums every shard: read once
    stopped = render.sweep_interrupted(len(result.shards), resume, recorded=stream.recorded) if stream.interrupted else None
    return _sweep_end(result, printer, probe, stopped)


def _stream_sweep(target_set: TargetSet, options: dict[str, Any], run: dict[str, Any], *, pcap: str | None, show_all: bool,
                  fmt: str, probe: list[str] | None) -> int:
    """A sweep in this process (with --local IFACE's link too, ``run["local"]``), printed as it goes (rows as hosts
    are decided; the table, sorted, at the end), with the progress bar. Ctrl-C stops it: what was decided is
    printed, then a line saying so; exit 130."""
    from recon.engine import Prober
    from recon.models import SweepResult

    progress = render.SweepProgress()
    printer = render.SweepPrinter(fmt, show_all, progress, argv=["recon", *_state["argv"]])
    with Prober(**options) as prober, prober.sweep_iter(target_set, pcap=pcap, progress=progress, down=show_all, **run) as stream, \
            _sigint_calls(stream.stop):
        for batch in stream.batches():
            printer.add(batch)
    progress.finish()
    result = SweepResult(hosts=(), stats=stream.stats)
    return _sweep_end(result, printer, probe, render.sweep_interrupted() if stream.interrupted else None)


def _sweep_end(result: SweepResult, printer: render.SweepPrinter, probe: list[str] | None, stopped: str | None) -> int:
    """How every sweep ends: the table (or --grep's last line), the line saying what Ctrl-C left out (``stopped``),
    the summary, a line per worker of a sweep in shards, the hint when nothing answered; the exit status."""
    from recon.probes import parse_probes

    printer.finish(result.stats)
    if stopped is not None:
        render.err(stopped)
    render.err(render.sweep_summary(result, up=printer.up))
    if stopped is not None:
        return ExitStatus.INTERRUPTED
    if result.shards:
        from recon.cluster import worker_stats

        for worker in worker_stats(result.shards):
            render.err(render.worker_line(worker))
    if not printer.up:
        render.err(render.sweep_hint(result, [str(p) for p in parse_probes(probe)]))
    return ExitStatus.OK if printer.up else ExitStatus.NONE


@contextlib.contextmanager
def _sigint_calls(stop: Callable[[], None]) -> Iterator[None]:
    """While the block runs, the first SIGINT calls ``stop`` (the work ends cleanly at its next safe point and
    its partial result is printed); a second one interrupts at once, as before. Main thread only (signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def first(signum: int, frame: object) -> None:
        signal.signal(signal.SIGINT, previous)
        stop()

    previous = signal.signal(signal.SIGINT, first) or signal.default_int_handler
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _sweep_format(*, json_out: bool, csv_out: bool, grep: bool, alive: bool, numeric: bool, resolve: bool) -> str:
    """The one output format asked for: --json, --csv, --grep, -a/--alive, or "" (the table)."""
    formats = [name for name, on in (("--json", json_out), ("--csv", csv_out), ("--grep", grep), ("-a/--alive", alive)) if on]
    if len(formats) > 1:
        raise InputError(f"{' and '.join(formats)} cannot be combined", hint="pick one output format")
    if numeric and resolve:
        raise InputError("-n and -R exclude each other", hint="give one of them")
    return formats[0] if formats else ""


def _pcap_is_not_an_input(pcap: str | None, inputs: dict[str, str | None]) -> None:
    """--pcap naming a target file being read (the same ``pcap.file_id``: links and '-' count) would truncate it:
    refused, as sniff -r F -w F is (issue 14 item 1). The pcap is looked at once, and the inputs only if it is there."""
    from recon.pcap import file_id

    written = file_id(pcap) if pcap is not None else None
    for option, name in inputs.items():
        if written is not None and name is not None and file_id(sys.stdin if name == "-" else name) == written:
            raise InvalidOption("--pcap", pcap, f"is the target file {option} reads; write to another file")


def _sweep_targets(targets: list[str] | None, input_file: str | None, exclude: list[str] | None, exclude_file: str | None,
                   *, yes: bool, local: str | None, pcap: str | None = None) -> TargetSet:
    """The targets for the engine; with --local none is needed. A --pcap that is one of the files read is refused first."""
    from recon.targets import TargetSet, build_targets

    _pcap_is_not_an_input(pcap, {"-iL/--input-file": input_file, "--exclude-file": exclude_file})
    if not targets and not input_file and local is not None:
        return TargetSet()
    return build_targets(targets or [], input_file=input_file, exclude=exclude or [], exclude_file=exclude_file, yes=yes)


# --- ping -------------------------------------------------------------------------------


@app.command(short_help="Ping one host like ping(8), as in: recon ping -c 4 192.168.1.1")
def ping(
    host: Annotated[str, typer.Argument(help="A name or an address (scoped too: fe80::1%eth0, ff02::1%eth0).", show_default=False)],
    count: Annotated[int | None, typer.Option("--count", "-c", help="Stop after COUNT replies (default: until Ctrl-C).")] = None,
    interval: Annotated[float | None, typer.Option(
        "--interval", "-i", help="Seconds between probes (default 1); under 0.2 needs root.")] = None,
    deadline: Annotated[float | None, typer.Option("--deadline", "-w", help="Stop after S seconds, whatever came.")] = None,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", "-W", help="Seconds to wait for a reply after the last probe (default 10).")] = None,
    size: Annotated[int, typer.Option("--size", "-s", help="Payload bytes.")] = 56,
    ttl: Annotated[int | None, typer.Option("--ttl", "-t", help="IP time to live / IPv6 hop limit.")] = None,
    pmtu: Annotated[str | None, typer.Option("-M", help="Path MTU discovery: do (DF set), dont, want.")] = None,
    df: Annotated[bool, typer.Option("--df", help="Set Don't Fragment: the same as -M do.")] = False,
    interface: Annotated[str | None, typer.Option(
        "--interface", "-I", callback=_interface, help="Send through this interface (or from this address).")] = None,
    source: Annotated[str | None, typer.Option("--source", help="Source address.")] = None,
    numeric: Annotated[bool, typer.Option("--numeric", "-n", help="No reverse lookups of reply addresses.")] = False,
    outstanding: Annotated[bool, typer.Option("-O", help="Report a probe unanswered when the next one goes.")] = False,
    pattern: Annotated[str | None, typer.Option("--pattern", "-p", help="Fill the payload with up to 16 hex bytes (ff00).")] = None,
    flood: Annotated[bool, typer.Option("--flood", "-f", help="Flood (root): as replies come, 100/s at least.")] = False,
    audible: Annotated[bool, typer.Option("--audible", "-a", help="Ring the terminal bell on each reply.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only the header and the summary.")] = False,
    timestamps: Annotated[bool, typer.Option("-D", help="Prefix each line with [epoch.microseconds].")] = False,
    ipv4: Annotated[bool, typer.Option("-4", help="IPv4 only.")] = False,
    ipv6: Annotated[bool, typer.Option("-6", help="IPv6 only.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per reply or error, then a summary object.")] = False,
    pcap: Annotated[str | None, typer.Option("--write", "--pcap", help="Write every request and reply to FILE (pcap, raw IP).")] = None,
) -> int:
    """Ping one host like ping(8). Example: recon ping -c 4 192.168.1.1

    Flags mean what they mean in iputils ping. Ctrl-C prints the summary (exit 0 if
    anything answered, else 1); SIGQUIT (Ctrl-\\) prints running statistics and keeps
    going. Without root it uses ICMP datagram sockets where net.ipv4.ping_group_range allows.
    """
    import socket

    from recon.ping import Pinger
    from recon.ping_options import parse_pattern

    if ipv4 and ipv6:
        raise InputError("-4 and -6 exclude each other", hint="give one of them")
    if df and pmtu not in (None, "do"):
        raise InputError(f"--df is -M do; it cannot go with -M {pmtu}", hint="give one of them")
    family = socket.AF_INET if ipv4 else socket.AF_INET6 if ipv6 else None
    pinger = Pinger(host, family=family, count=count, interval=interval, deadline=deadline, timeout=timeout, size=size,
                    ttl=ttl, pmtu=pmtu or ("do" if df else None), interface=interface, source=source, pcap=pcap,
                    numeric=numeric, outstanding=outstanding, flood=flood,
                    pattern=None if pattern is None else parse_pattern(pattern))
    show = render.PingPrinter(as_json=as_json, quiet=quiet, timestamps=timestamps, flood=flood, audible=audible)
    show.start(pinger.start)
    previous = {sig: signal.signal(sig, handler) for sig, handler in (
        (signal.SIGINT, lambda *_: pinger.stop()), (signal.SIGQUIT, lambda *_: pinger.request_status()))}
    events = pinger.__iter__()  # the generator itself, so it can be closed
    stats = None
    try:
        for event in events:
            stats = show.event(event)
    except BrokenPipeError:  # `recon ping ... | head -1`: the reader is done, a normal end (click would exit 1)
        _quiet_closed_stdout()
        return ExitStatus.OK
    finally:
        events.close()  # closes the socket now, not at garbage collection
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if pinger.failure is not None:  # e.g. the --pcap disk filled up: the summary is out, now the one error line
        raise pinger.failure
    if stats is None or not stats.received or (deadline and count and stats.received < count):
        return ExitStatus.NONE  # iputils: no reply, or -w with -c and fewer than COUNT replies
    return ExitStatus.OK


# --- sniff ------------------------------------------------------------------------------


@app.command(short_help="Decode IP headers live or from pcap, as in: recon sniff --proto icmp")
def sniff(
    expression: Annotated[list[str] | None, typer.Argument(
        help="tcpdump filter expression, as in tcpdump: icmp and host 198.18.0.10 (or -f EXPR).", show_default=False)] = None,
    proto: Annotated[str | None, typer.Option("--proto", help="Keep one IP protocol: icmp, tcp, udp, icmp6 or a number 0-255.")] = None,
    interface: Annotated[str | None, typer.Option(
        "--interface", "-i", callback=_interface, help="Capture on this interface (default: all).")] = None,
    bpf: Annotated[str | None, typer.Option(
        "--filter", "-f", help=("tcpdump filter expression: compiled into the kernel live; "
                                "with --read, the same BPF program runs per frame."))] = None,
    count: Annotated[int | None, typer.Option("--count", "-c", help="Stop after COUNT packets.")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Stop a live capture after S seconds.")] = None,
    write: Annotated[str | None, typer.Option(
        "--write", "-w", "--pcap", help="Also record the packets to FILE.pcap (valid even if interrupted).")] = None,
    read: Annotated[str | None, typer.Option("--read", "-r", help="Replay a pcap or pcapng file instead of capturing.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per IP packet.")] = False,
    hexdump: Annotated[bool, typer.Option("--hex", "-X", help="Also show the captured bytes in hex and ASCII (tcpdump -X).")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show every header field and the IP options by name.")] = False,
    link: Annotated[bool, typer.Option("--link", "-e", help="Show the link layer: MACs and ethertype (tcpdump -e).")] = False,
    numeric: Annotated[bool, typer.Option("--numeric", "-n", help="Accepted as in tcpdump: sniff never looks names up.")] = False,
) -> int:
    """Decode IP headers live or from a pcap. Example: recon sniff -c 10 icmp and host 198.18.0.10"""
    import time

    from recon.capture import sniff as run_sniff
    from recon.pcap import is_stream

    if expression:
        if bpf is not None:
            raise InputError("give the filter once: as -f EXPR or as the expression at the end, not both")
        bpf = " ".join(expression)
    packets = run_sniff(read=read, iface=interface, bpf=bpf, proto=proto, count=count, timeout=timeout, write=write,
                        ip_only=as_json)
    emit = render.sniff_emitter(live=read is None or is_stream(read))  # a pipe (-r -) is shown as it arrives
    shown = 0
    start = time.monotonic()
    try:
        if as_json:
            as_json_line = render.sniff_json
            for pkt in packets:
                shown += 1
                line = as_json_line(pkt, hexdump)
                if line is not None:
                    emit(line)
        else:
            as_text = render.sniff_formatter(verbose=verbose, link=link)
            for pkt in packets:
                shown += 1
                emit(as_text(pkt))
                if hexdump:
                    emit(render.sniff_hex(pkt))
    except KeyboardInterrupt:
        packets.close()  # closes the socket and the -w file
    except BrokenPipeError:  # `recon sniff | head -1`: the reader has what it wanted, a normal end
        packets.close()
        _quiet_closed_stdout()
    except ReconEnvironmentError:  # e.g. a full disk under -w: what was seen is still summed up, then the error
        emit(None)
        render.err(render.sniff_summary(shown, time.monotonic() - start, write))
        raise
    finally:
        emit(None)
    render.err(render.sniff_summary(shown, time.monotonic() - start, write))
    return ExitStatus.OK if shown else ExitStatus.NONE


# --- craft ------------------------------------------------------------------------------


_CRAFT_HELP = """Build, show and send a hand-made IPv4 packet. Example: recon craft --src 172.16.12.1 --dst 172.31.0.1 --dry-run

Prints every field (name, value, hex, byte offset), a hex dump and each checksum verified,
then sends. Numbers take decimal or 0x hex. The default payload is an ICMP echo request.

\b
What the kernel changes (Linux raw(7), net/ipv4/raw.c; checked on the wire in recon's lab):
  through IPPROTO_RAW + IP_HDRINCL Linux ALWAYS rewrites the total length and the header
  checksum, fills the id when it is 0 and the source when it is 0.0.0.0; the rest
  (tos, ttl, flags, fragment offset, options, payload) goes out as built. Packets over the
  MTU fail with EMSGSIZE (no fragmentation).
\b
  --via auto (default): raw socket unless the kernel would change a field you set
    (--checksum 0xdead, --len 999, --id 0); then layer 2, so the wrong value really goes out
  --via raw:   IPPROTO_RAW + IP_HDRINCL; warns when the kernel changed the packet
  --via l2:    AF_PACKET with a hand-built Ethernet header (next hop from the routing
               table, its MAC by ARP): the kernel does not touch the IP bytes
  --via scapy: Scapy's send() (on Linux also a packet socket: bytes as built)
\b
Other systems differ: FreeBSD before 11.0 and macOS take ip_len and ip_off in host byte
order with IP_HDRINCL (network order gives EINVAL on macOS) and fill other fields by their
own rules (see their ip(4)); Windows (XP SP2 on) sends no TCP over raw sockets and no UDP
from a source address that is not its own. Some stacks want protocol IPPROTO_RAW (255),
others protocol 0 plus setsockopt(IP_HDRINCL); recon (Linux) uses 255 and sets the option.

Needs CAP_NET_RAW (root) to send; --dry-run needs nothing. Bad values exit 2 before anything is sent.
"""


@app.command(short_help="Hand-build and send an IP packet, as in: recon craft --src 172.16.12.1 --dst 172.31.0.1", help=_CRAFT_HELP)
def craft(
    dst: Annotated[str, typer.Option("--dst", help="Destination IPv4 address or name (required).", show_default=False)],
    src: Annotated[str | None, typer.Option("--src", help="Source address, may be spoofed [default: the route's source].")] = None,
    tos: Annotated[str | None, typer.Option("--tos", help="Type of service / DSCP+ECN byte, 0..255. [default: 0]")] = None,
    ident: Annotated[str | None, typer.Option(
        "--id", help="IP identification, 0..65535 (0: Linux picks one on the raw path). [default: 1]")] = None,
    ttl: Annotated[str | None, typer.Option("--ttl", help="Time to live, 0..255. [default: 64]")] = None,
    df: Annotated[bool, typer.Option("--df", help="Set Don't Fragment.")] = False,
    mf: Annotated[bool, typer.Option("--mf", help="Set More Fragments.")] = False,
    frag_offset: Annotated[str | None, typer.Option("--frag-offset", help="Fragment offset in 8-byte units, 0..8191. [default: 0]")] = None,
    proto: Annotated[str | None, typer.Option(
        "--proto", help="IP protocol number, 0..255 [default: follows the payload: 1, 17, 6; 253 for --raw-hex].")] = None,
    options: Annotated[str | None, typer.Option(
        "--options", help="IP options as HEX, a multiple of 4 bytes, at most 40; IHL follows.")] = None,
    checksum: Annotated[str | None, typer.Option(
        "--checksum", help="Header checksum: auto or 0xNNNN (a wrong value is sent as is at layer 2). [default: auto]")] = None,
    length: Annotated[str | None, typer.Option(
        "--len", help="Total length field: auto or 0..65535 (the bytes sent do not change). [default: auto]")] = None,
    icmp_type: Annotated[str | None, typer.Option("--icmp-type", help="ICMP type. [default: 8, echo request]")] = None,
    icmp_code: Annotated[str | None, typer.Option("--icmp-code", help="ICMP code. [default: 0]")] = None,
    icmp_id: Annotated[str | None, typer.Option("--icmp-id", help="ICMP echo identifier, 0..65535. [default: 0]")] = None,
    icmp_seq: Annotated[str | None, typer.Option("--icmp-seq", help="ICMP echo sequence, 0..65535. [default: 0]")] = None,
    data: Annotated[str | None, typer.Option("--data", help="Payload data as text (after the ICMP/UDP/TCP header).")] = None,
    data_hex: Annotated[str | None, typer.Option("--data-hex", help="Payload data as HEX.")] = None,
    size: Annotated[str | None, typer.Option("--size", help="Payload data of N bytes (00 01 02 ...).")] = None,
    udp: Annotated[str | None, typer.Option("--udp", help="UDP payload instead of ICMP: SPORT:DPORT.")] = None,
    tcp: Annotated[str | None, typer.Option("--tcp", help="TCP payload instead of ICMP: SPORT:DPORT.")] = None,
    flags: Annotated[str | None, typer.Option("--flags", help="TCP flags, letters of FSRPAUEC. [default: S]")] = None,
    tcp_seq: Annotated[str | None, typer.Option("--tcp-seq", help="TCP sequence number. [default: 0]")] = None,
    tcp_ack: Annotated[str | None, typer.Option("--tcp-ack", help="TCP acknowledgment number. [default: 0]")] = None,
    window: Annotated[str | None, typer.Option("--window", help="TCP window. [default: 8192]")] = None,
    raw_hex: Annotated[str | None, typer.Option("--raw-hex", help="The whole IP payload as HEX (no ICMP/UDP/TCP header).")] = None,
    count: Annotated[int, typer.Option("--count", "-c", help="Send it this many times.")] = 1,
    interval: Annotated[float, typer.Option("--interval", "-i", help="Seconds between packets.")] = 1.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Build and print only; send nothing.")] = False,
    pcap: Annotated[str | None, typer.Option(
        "--write", "-w", "--pcap", help="Save the built packet(s) to FILE (pcap, link type raw IPv4).")] = None,
    via: Annotated[str, typer.Option("--via", help="auto, raw (IPPROTO_RAW + IP_HDRINCL), l2 (AF_PACKET) or scapy.")] = "auto",
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object: every field, the bytes, how it was sent.")] = False,
) -> int:
    from recon.craft import craft as craft_packet
    from recon.craft import parse_spec

    spec = parse_spec(dst=dst, src=src, tos=tos, ident=ident, ttl=ttl, df=df, mf=mf, frag_offset=frag_offset, proto=proto,
                      options=options, checksum=checksum, length=length, icmp_type=icmp_type, icmp_code=icmp_code,
                      icmp_id=icmp_id, icmp_seq=icmp_seq, data=data, data_hex=data_hex, size=size, udp=udp, tcp=tcp,
                      flags=flags, tcp_seq=tcp_seq, tcp_ack=tcp_ack, window=window, raw_hex=raw_hex)
    show = None if json_out else (lambda packet: render.out(render.craft_report(packet)))
    result = craft_packet(spec, send=not dry_run, via=via, count=count, interval=interval, pcap=pcap, on_ready=show)
    if json_out:
        render.out(render.craft_json(result))
    for line in render.craft_summary(result):
        render.err(line)
    return ExitStatus.INTERRUPTED if result.interrupted else ExitStatus.OK


# --- watch ------------------------------------------------------------------------------

@app.command(short_help="Report devices joining/leaving, as in: recon watch 192.168.1.0/24 2001:db8::/120")
def watch(
    targets: TargetsArg = None,
    period: Annotated[float, typer.Option("--period", help="Seconds between rounds, 0 (back to back) to 86400.")] = 1.0,
    misses: Annotated[int, typer.Option("--misses", help="A device is DOWN after this many silent rounds.")] = 3,
    mac: Annotated[list[str] | None, typer.Option("--mac", help="Watch list: alert only on this MAC (repeatable).")] = None,
    host: Annotated[list[str] | None, typer.Option("--host", help="Watch list: alert only on this address (repeatable).")] = None,
    exec_: Annotated[str | None, typer.Option(
        "--exec",
        help="Run CMD once per event, no shell; details in RECON_EVENT, RECON_ADDRESS, RECON_MAC, RECON_VENDOR, RECON_HOSTNAME.")] = None,
    notify: Annotated[bool, typer.Option("--notify", help="Desktop notification per event (notify-send).")] = False,
    json_: Annotated[bool, typer.Option(
        "--json", help="One JSON line per event; the first round: one INVENTORY line per device (\"new\": true if never seen).")] = False,
    state: Annotated[str | None, typer.Option("--state", help="JSON file of known devices, kept across runs.")] = None,
    once: Annotated[bool, typer.Option("--once", help="One round: print the inventory, exit 0 if any device is up, else 1.")] = False,
    # the sweep engine's probe options, as in sweep (recon.watch.ProbeOptions is where new ones go)
    timeout: Annotated[float | None, typer.Option(
        "--timeout", "-W", help="Seconds to wait for replies in a round, at most 3600 (default: 0.6 x period, 0.2 to 1; was -t).")] = None,
    interface: Annotated[str | None, typer.Option(
        "--interface", "-I", callback=_interface, help="Send on this interface (was -i).")] = None,
    rate: Annotated[float | None, typer.Option(
        "--rate", help="Probes per second (token bucket); default: as fast as the socket takes.")] = None,
    input_file: InputFileOpt = None,
    exclude: ExcludeOpt = None,
    exclude_file: ExcludeFileOpt = None,
    yes: YesOpt = False,
    _t: RetiredT = None,
    _i: RetiredI = None,
) -> int:
    """Report devices joining or leaving, IPv4 and IPv6 (ARP or Neighbor Discovery on-link, with MACs; ICMP
    echo routed).

    \b
    Examples:
      recon watch 192.168.1.0/24 --mac aa:bb:cc:dd:ee:ff   alert only on this device
      recon watch 2001:db8::/120                           IPv6: on-link hosts by Neighbor Discovery, with MACs
      recon watch fe80::1%eth0 ff02::1%eth0                scoped: one address, or every member of a group, on eth0
    """
    from recon.targets import build_targets
    from recon.watch import HookRunner, Watch, check_options, normalize_mac, parse_exec, require_privileges

    tset = build_targets(targets or host or [], input_file=input_file, exclude=exclude or [], exclude_file=exclude_file,
                         yes=yes)
    _target_warnings(tset)
    check_options(period=period, misses=misses, timeout=timeout, rate=rate, state=state)
    macs = [normalize_mac(x) for m in mac or [] for x in m.split(",") if x.strip()]
    hosts = build_targets(host, yes=yes) if host else None
    argv = parse_exec(exec_) if exec_ else None
    require_privileges()
    with _watch_signals(), Watch(tset, period=period, misses=misses, macs=macs, hosts=hosts, state=state,
                                   hooks=HookRunner(argv, notify=notify), timeout=timeout, interface=interface,
                                   rate=rate) as w:
        for rnd in w.rounds(once=once):
            for note in rnd.notes:
                render.err(render.watch_note(note))
            for line in render.watch_round(rnd, as_json=json_, width=w.address_width):
                render.out(line)
            if once:
                return ExitStatus.OK if rnd.up else ExitStatus.NONE
            if rnd.number == 1:
                render.err(render.watch_summary(tset.total, rnd.up, period, misses))
    return ExitStatus.OK


@contextlib.contextmanager
def _watch_signals() -> Iterator[None]:
    """Ctrl-C exits 130 and SIGTERM (systemd, kill) 143, both through the finally blocks (state saved).

    The SIGINT handler is set explicitly, as tcpdump does: a shell script's background jobs start with
    SIGINT ignored, and Python keeps an inherited SIG_IGN, so Ctrl-C would otherwise do nothing."""
    def _leave(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, _leave),
                signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# --- lab --------------------------------------------------------------------------------


@lab_app.command("up")
def lab_up(
    loss: Annotated[float, typer.Option(help="Drop this % of frames delivered to the scanner (nftables).")] = 0.0,
    delay: Annotated[float, typer.Option(help="Delay in ms on the wan link (198.18.5.0/24).")] = 0.0,
    jitter: Annotated[float, typer.Option(help="Jitter in ms (uniform ±) on the wan link.")] = 0.0,
    name: Annotated[str | None, typer.Option(help="Lab name (default: the current lab, or a new unique one).")] = None,
) -> int:
    """Build the lab (idempotent). Example: sudo recon lab up --loss 5"""
    from recon.lab import Lab, current_lab, set_current

    lab = Lab(name) if name else current_lab()
    was_up = lab.is_up()
    info = lab.up(loss=loss, delay_ms=delay, jitter_ms=jitter)
    set_current(lab)
    if was_up:
        render.err(f"lab {lab.name} was already up; impairments updated")
    render.out(render.lab_status(info))
    return ExitStatus.OK


@lab_app.command("status")
def lab_status(
    name: Annotated[str | None, typer.Option(help="Lab name (default: $RECON_LAB, or your current lab).")] = None,
) -> int:
    """Show the lab's namespaces, addresses and live ranges. Example: recon lab status"""
    from recon.lab import Lab, current_lab

    render.out(render.lab_status((Lab(name) if name else current_lab()).info()))
    return ExitStatus.OK


@lab_app.command("exec", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def lab_exec(
    command: Annotated[list[str], typer.Argument(help="The command to run in the scanner namespace.")],
    name: Annotated[str | None, typer.Option(help="Lab name (default: $RECON_LAB, or your current lab).")] = None,
) -> int:
    """Run a command inside the scanner namespace. Example: recon lab exec -- ping -c1 198.18.0.10"""
    from recon.lab import Lab, current_lab

    lab = Lab(name) if name else current_lab()
    return subprocess.run(lab.exec_argv(command), env=lab.exec_env()).returncode


@lab_app.command("down")
def lab_down(
    name: Annotated[str | None, typer.Option(help="Lab name (default: your current lab, only if you made it).")] = None,
) -> int:
    """Tear the lab down: every namespace, process and file. Example: sudo recon lab down"""
    from recon.lab import lab_to_remove

    lab = lab_to_remove(name)
    removed = lab.down()
    render.err(f"lab {lab.name}: removed {len(removed)} namespaces" if removed else f"lab {lab.name} was not up")
    return ExitStatus.OK


# --- demo -------------------------------------------------------------------------------


# In the current directory, like tcpdump -w: never under captures/ or tests/, whose files are the test suite's inputs.
DEMO_PCAP = "recon-demo.pcap"


@app.command(short_help="Build the lab, run recon on it, tear it down, as in: sudo recon demo")
def demo(
    pcap: Annotated[str, typer.Option("--write", "-w", "--pcap", help="Where to record the demo's traffic.")] = DEMO_PCAP,
) -> int:
    """Build the lab, run sweep/ping/craft/sniff against it, record ./recon-demo.pcap, tear it down.

    Everything happens inside network namespaces in 198.18.0.0/15; nothing reaches a real network.
    Example: sudo recon demo
    """
    import time
    from pathlib import Path

    from recon.demo import demo_steps
    from recon.lab import Lab

    out = Path(pcap).resolve()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {str(out.parent)!r}: {exc.strerror}", hint="pass -w (--write) with a writable path") from None
    out.unlink(missing_ok=True)
    lab = Lab()
    failed: list[str] = []
    try:
        info = lab.up()
        render.out(render.lab_status(info))
        inside = ["ip", "netns", "exec", info.scanner_ns, sys.executable, "-m", "recon"]
        sniffer = subprocess.Popen([*inside, "sniff", "-i", info.scanner_if, "-w", str(out)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not out.exists() and sniffer.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        for step in demo_steps(info):
            render.out(render.demo_step(step.title, ("recon", *step.args)))
            code = subprocess.run([*inside, *step.args]).returncode
            if code not in step.ok_codes:
                failed.append(f"{step.title} (exit {code})")
        time.sleep(0.2)
        sniffer.send_signal(signal.SIGINT)
        try:
            sniffer.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sniffer.kill()
        replay = ("sniff", "--read", pcap, "-f", "ip src host 198.18.0.11", "-v")
        render.out(render.demo_step(f"The spoofed packet, decoded from the demo's capture ({pcap})", ("recon", *replay)))
        subprocess.run([sys.executable, "-m", "recon", *replay[:2], str(out), *replay[3:]])
    finally:
        lab.down()
        render.err(f"lab {lab.name} torn down; traffic saved in {pcap}")
    if failed:
        render.err("demo: unexpected results: " + "; ".join(failed))
        return ExitStatus.NONE
    return ExitStatus.OK


# --- entry point --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    # As tcpdump does: set SIGINT's handler explicitly. A shell script's background jobs (and CI
    # runners that start them so) inherit SIGINT ignored, and Python keeps an inherited SIG_IGN,
    # so Ctrl-C / kill -INT would otherwise not stop sniff, ping, craft or sweep.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    scapyload.own_process()  # Scapy's route tables are read only if something routes by them (start-up time)
    exit_now(run(argv))


def exit_now(code: int) -> NoReturn:
    """End the process with ``code``. When this thread is the only one left and no child process of
    ``multiprocessing`` is, without Python's teardown of every module: with Scapy loaded that took 40-70 ms
    of every run, more than a one-address sweep itself. The atexit handlers still run and the streams are
    flushed (every file recon writes is closed, and written whole, before ``run`` returns). Otherwise the
    ordinary exit, which waits for the other threads."""
    if threading.active_count() == 1 and not _children():
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a reader gone, a stream closed: as at a normal exit
                stream.flush()
        os._exit(int(code))
    sys.exit(code)


def _children() -> bool:
    mp = sys.modules.get("multiprocessing")  # only imported by what starts processes (Dask's local cluster)
    return bool(mp is not None and mp.active_children())


def run(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run the CLI and return the exit status (``program(args) -> ExitStatus``, as httpie does).

    ``stdout``/``stderr`` (default: the process's) receive everything recon prints, so tests run
    commands in-process: ``run(["sweep", "--help"], stdout=buf, stderr=buf2)``.
    """
    args = nmap_probe_aliases(sys.argv[1:] if argv is None else list(argv))
    _state["argv"] = list(sys.argv[1:] if argv is None else argv)
    with render.console(render.Console(stdout, stderr)), _click_streams(stdout, stderr):
        return _run(args)


_NMAP_PROBES = {"-PE": "echo", "-PP": "timestamp", "-PM": "mask", "-PS": "syn", "-PA": "ack", "-PU": "udp"}
_NMAP_DEFAULT_PORTS = {"syn": "80", "ack": "80", "udp": "40125"}  # nmap's defaults for a bare -PS / -PA / -PU


def nmap_probe_aliases(args: list[str]) -> list[str]:
    """nmap's attached probe options for ``sweep`` (Click cannot parse ``-PS443``): ``-PS443,80`` becomes
    ``--probe syn:443,80``, ``-PE`` ``--probe echo``, and so on; nothing after ``--`` is touched."""
    if "sweep" not in args:
        return args
    start = args.index("sweep") + 1
    out, rest = args[:start], args[start:]
    for n, arg in enumerate(rest):
        if arg == "--":
            out += rest[n:]
            break
        kind, ports = _NMAP_PROBES.get(arg[:3]), arg[3:]
        if kind is None or (kind not in _NMAP_DEFAULT_PORTS and ports):
            out.append(arg)
        elif kind not in _NMAP_DEFAULT_PORTS:
            out += ["--probe", kind]
        else:
            out += ["--probe", f"{kind}:{ports or _NMAP_DEFAULT_PORTS[kind]}"]
    return out


@contextlib.contextmanager
def _click_streams(stdout: TextIO | None, stderr: TextIO | None) -> Iterator[None]:
    """Click prints --help itself, to sys.stdout; point it at the given streams too (only when given)."""
    with contextlib.ExitStack() as stack:
        if stdout is not None:
            stack.enter_context(contextlib.redirect_stdout(stdout))
        if stderr is not None:
            stack.enter_context(contextlib.redirect_stderr(stderr))
        yield


_COMPLETE_VAR = "_RECON_COMPLETE"


def _invoke(args: list[str]) -> object:
    """Parse and run one command. Typer's own main() would turn a closed stdout into exit 1 and
    Ctrl-C into Exit(130) before run() sees them, so recon drives the click command itself."""
    command = typer.main.get_command(app)
    instruction = os.environ.get(_COMPLETE_VAR)
    if instruction:  # the shell asks for completions (the script --install-completion wrote sets this variable)
        from typer.completion import shell_complete

        return shell_complete(command, {}, "recon", _COMPLETE_VAR, instruction)
    with command.make_context("recon", args) as ctx:
        return command.invoke(ctx)


def _run(args: list[str]) -> int:
    debug = "--debug" in args
    try:
        result = _invoke(args)
        render.stdout().flush()  # a full disk shows here, not in the interpreter's last flush after we return
    except typer.Exit as exc:
        return int(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        return ExitStatus.INTERRUPTED
    except EOFError:
        render.err("")
        return ExitStatus.INTERRUPTED
    except ReconError as exc:
        if debug:
            traceback.print_exc(file=render.stderr())
        render.err(render.error_line(exc))
        return int(exc.exit_status)
    except typer.TyperException as exc:  # click usage errors: one line, exit 2
        if debug:
            traceback.print_exc(file=render.stderr())
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        command = getattr(getattr(exc, "ctx", None), "command_path", "recon")
        if type(exc).__name__ == "NoArgsIsHelpError":  # `recon`, `recon lab` alone: the help as laid out, as click prints it
            render.err(message)
        else:
            render.err(f"recon: error: {' '.join(message.split())} (see '{command} --help')")
        return int(getattr(exc, "exit_code", ExitStatus.USAGE))
    except BrokenPipeError:  # the reader went away (recon ... | head -1): a normal end, for every command
        _quiet_closed_stdout()
        return ExitStatus.OK
    except OSError as exc:  # stdout on a full disk (`recon ... > out`): one line, exit 3, as for the files recon writes
        if exc.errno not in _OUTPUT_FULL:
            raise
        _quiet_closed_stdout()
        render.err(render.error_line(ReconEnvironmentError(f"cannot write the output: {exc.strerror}",
                                                           hint="free some space, or write it elsewhere")))
        return ExitStatus.ENVIRONMENT
    if isinstance(result, int):
        return result
    return ExitStatus.OK


_OUTPUT_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO)


def _quiet_closed_stdout() -> None:
    """The reader of stdout went away (``recon ... | head -1``): a normal end. Point the descriptor at
    /dev/null so the interpreter's final flush does not complain a second time."""
    try:
        fd = render.stdout().fileno()
    except (OSError, ValueError):  # an in-memory stream (tests): nothing to silence
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
