"""Scapy's IPv4 layers, imported as late and as cheaply as recon can (ARCHITECTURE.md).

Scapy reads the machine's IPv4 and IPv6 routing tables (over rtnetlink) when its route modules
load, a good part of a sweep's start-up (~0.05 s), and recon's probe templates never need them:
recon picks source addresses itself (``transport.route_source``). Nor do they need Scapy's IPv6
layers (~0.015 s more). The CLI owns its process and calls ``own_process()``; imports through
``inet()`` then leave both out, and the code that does use Scapy's routing (craft ``--via scapy``,
the Scapy reference engine: their send() and sr() pick the interface by it, and sr() matches
answers with the IPv6 layers loaded) calls ``route_tables()`` first. Scapy's MAC vendor table is
left empty too (``_lean_cache``, below). A library caller's process keeps Scapy's defaults, since
its own Scapy code may route or look vendors up.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import sys
import tempfile
from pathlib import Path
from types import ModuleType

__all__ = ["inet", "own_process", "route_tables"]

_skip_routes = False


def own_process() -> None:
    """recon is the whole process (the CLI): Scapy's route tables are read only when something routes by them."""
    global _skip_routes
    _skip_routes = True


def inet() -> ModuleType:
    """``scapy.layers.inet`` (IP, ICMP, TCP, UDP); when the CLI owns the process, without the route tables or IPv6
    layers, and without Scapy's MAC vendor table (``_lean_cache``)."""
    if not _skip_routes or "scapy.layers.inet" in sys.modules:
        import scapy.layers.inet

        return scapy.layers.inet
    import scapy.main
    from scapy.config import conf

    if "scapy.route" not in sys.modules:
        conf.route_autoload = conf.route6_autoload = False
    ipv6, conf.ipv6_enabled = conf.ipv6_enabled, False  # inet.py then leaves out Scapy's IPv6 layers (~15 ms)
    lean = _lean_cache() if "scapy.data" not in sys.modules else None
    if lean is not None and lean.joinpath(_MANUF).is_file():
        scapy.main.SCAPY_CACHE_FOLDER = lean
    try:
        import scapy.layers.inet
    finally:
        conf.ipv6_enabled = ipv6
    if lean is not None:
        _keep_lean(lean)
    return scapy.layers.inet


def route_tables() -> None:
    """Scapy's IPv4 and IPv6 route tables and its default interface, read now if ``inet()`` skipped them."""
    inet()
    import scapy.layers.inet6  # noqa: F401  - inet() may have left it out; Scapy's answers() and checksums need it
    from scapy.config import conf

    if conf.route_autoload and conf.route6_autoload:
        return

    conf.route_autoload = conf.route6_autoload = True
    conf.route.resync()
    conf.route6.resync()
    conf.ifaces.load_confiface()


# Scapy's data module loads its MAC vendor table (Wireshark's manuf, ~50,000 entries) when it is imported: ~50 ms
# to unpickle from Scapy's cache folder, a fifth of a sweep's start-up. recon
# never reads it (arp.vendor looks a vendor up in the same file on disk). When the CLI owns the process, Scapy's
# data caches are read from recon's own cache folder instead, where the vendor table is empty: the entry is written
# in Scapy's cache format ({"id": sha256 of the manuf file's path, "content": a ManufDA}), after one import that
# loaded the real table told us the path. Scapy writes the other caches there itself (services, ethertypes, as in
# its own folder). A table Scapy rebuilt there (the manuf file moved: its id no longer matches) is emptied again.
_MANUF = "manufdb.pickle"


def _lean_cache() -> Path | None:
    """recon's folder for Scapy's data caches (``$XDG_CACHE_HOME/recon/scapy``, else ``~/.cache/recon/scapy``), made if
    need be; None (Scapy's own cache, as before) if it cannot be, if the path is relative or leads through a symlink,
    if recon runs as root in a cache root does not own (``sudo -E``: the user's home, whose links root must not
    follow), or if the folder or its parent is another user's or writable by others (a world-writable
    ``XDG_CACHE_HOME`` such as /tmp: someone else's pickles)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(base):
        return None
    folder = Path(base, "recon", "scapy")
    try:
        if os.geteuid() == 0 and os.stat(base).st_uid != 0:
            return None
        if not folder.is_dir():
            folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            folder.mkdir(mode=0o700, exist_ok=True)
        if os.path.realpath(folder) != os.path.normpath(folder):
            return None
        for where in (folder, folder.parent):  # Scapy unpickles what is there: only ours, and only we may write it
            st = os.stat(where)
            if st.st_uid != os.geteuid() or st.st_mode & 0o022:
                return None
    except OSError:
        return None
    return folder


def _keep_lean(folder: Path) -> None:
    """Write the empty vendor table into ``folder`` unless the one Scapy just loaded from there is empty already."""
    import scapy.data
    import scapy.main

    table = scapy.data.MANUFDB
    if not table.d and folder == scapy.main.SCAPY_CACHE_FOLDER:
        return
    name = table._name
    path = None if name == "scapy/manufdb" else name  # load_manuf(filename) names the table so; no file: Scapy's own copy
    entry = {"content": scapy.data.ManufDA(_name=name), "id": hashlib.sha256((path or "").encode()).hexdigest()}
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".manufdb.")
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(entry, f)
        os.replace(tmp, folder / _MANUF)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
