"""The code rules, checked on the source: no class over 250 lines, no function over 80 lines in
recon/, no ``# type: ignore`` without a reason on the same line, and no citation of DESIGN.md
(it is not in the repository).

A size is counted from the ``def``/``class`` line to the last line of its body (decorators not
counted), the way a reader scrolls it. Hot send and drain loops may stay inline where a call per
packet would cost speed: list them in LONG_ON_PURPOSE with that reason, and say so in a comment
at the loop itself too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.conftest import ROOT

MAX_CLASS, MAX_FUNCTION = 250, 80
SOURCES = sorted((ROOT / "recon").glob("*.py"))

# "module.Qualified.name": why it stays long. Only hot per-packet loops belong here.
LONG_ON_PURPOSE: dict[str, str] = {}


def _sizes(path: Path) -> list[tuple[str, str, int, int]]:
    """(kind, qualified name, first line, line count) of every class and function in ``path``."""
    found: list[tuple[str, str, int, int]] = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                kind = "class" if isinstance(child, ast.ClassDef) else "function"
                found.append((kind, name, child.lineno, (child.end_lineno or child.lineno) - child.lineno + 1))
                walk(child, name + ".")
            else:
                walk(child, prefix)

    walk(ast.parse(path.read_text(), str(path)), f"{path.stem}.")
    return found


def test_the_sources_are_there() -> None:
    """The checks below read recon/ itself; an empty glob would make them pass on nothing."""
    assert len(SOURCES) > 20 and any(p.name == "engine.py" for p in SOURCES)
    assert any(kind == "function" and n > 40 for kind, _, _, n in _sizes(ROOT / "recon" / "engine.py"))


def test_no_class_over_250_lines_and_no_function_over_80() -> None:
    too_long = [f"{path.name}:{line} {kind} {name} is {n} lines (at most {MAX_CLASS if kind == 'class' else MAX_FUNCTION})"
                for path in SOURCES for kind, name, line, n in _sizes(path)
                if n > (MAX_CLASS if kind == "class" else MAX_FUNCTION) and name not in LONG_ON_PURPOSE]
    assert not too_long, "split these (or, for a hot per-packet loop, list it in LONG_ON_PURPOSE):\n" + "\n".join(too_long)


def test_long_on_purpose_lists_only_real_long_functions() -> None:
    """An entry that no longer exists, or is no longer long, must leave the list."""
    sizes = {name: (kind, n) for path in SOURCES for kind, name, _, n in _sizes(path)}
    stale = [name for name in LONG_ON_PURPOSE
             if name not in sizes or sizes[name][1] <= (MAX_CLASS if sizes[name][0] == "class" else MAX_FUNCTION)]
    assert not stale, f"not long (or gone), drop from LONG_ON_PURPOSE: {stale}"


_IGNORE = re.compile(r"#\s*type:\s*ignore(\[[^\]]*\])?(?P<rest>.*)$")


def test_every_type_ignore_says_why() -> None:
    """``# type: ignore[code]  # reason``: a bare ignore hides what mypy found and why it is fine."""
    bare = []
    for path in SOURCES:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = _IGNORE.search(line)
            if match and not re.match(r"\s*#\s*\S", match.group("rest")):
                bare.append(f"{path.name}:{number}: {line.strip()}")
    assert not bare, "give these a reason on the same line:\n" + "\n".join(bare)


def test_no_code_cites_the_design_notes() -> None:
    """DESIGN.md is not part of the repository, so recon's code cites ARCHITECTURE.md (or the README) instead."""
    citing = [f"{path.relative_to(ROOT)}:{number}" for path in [*SOURCES, *sorted((ROOT / "tests").glob("*.py"))]
              if path.name != "test_code_rules.py"
              for number, line in enumerate(path.read_text().splitlines(), 1) if "DESIGN.md" in line]
    assert not citing, f"these lines cite DESIGN.md: {citing}"
