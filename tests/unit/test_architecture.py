"""ARCHITECTURE.md's module table is true: every module of nbops has a row, and imports of nbops
only what its row's "may import" column names (read with `ast`, lazy imports inside functions
included). A subpackage (`core/`, `runtime/`, `commands/`, ...) has a row of its own (its
`__init__`), which covers every module of the folder the table gives no row of its own
(`core.params`, `runtime.http`); imports inside one row's modules are its own business. A
module's row names its siblings plainly (`exceptions` in `core.params`' row) and any other module
by its dotted path (`core.exceptions`). Adding a module means adding its row — nothing here needs
to change.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from ..conftest import REPO

PACKAGE = REPO / "nbops"
ARCHITECTURE = REPO / "ARCHITECTURE.md"
#: A "may import" cell meaning any module of nbops (the CLI's layer: nothing imports it).
ANY = "any"


@dataclass
class Row:
    names: list[str]  # dotted module names, relative to nbops ("commands", "runtime.http")
    allowed: dict[str, str]  # module -> qualifier written after it ("lazily", "constants", "")
    anything: bool
    line: int


def read_table(text: str) -> dict[str, Row]:
    rows: dict[str, Row] = {}
    in_table = False
    for number, line in enumerate(text.splitlines(), 1):
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if cells[:1] == ["module"] and len(cells) >= 3 and cells[2].startswith("may import"):
            in_table = True
            continue
        if not in_table:
            continue
        if not cells:
            break
        if set(cells[0]) <= set("-: "):
            continue
        names = [_dotted(name) for name in re.findall(r"`([^`]+)`", cells[0])]
        allowed = {
            _dotted(name): qualifier.strip()
            for name, qualifier in re.findall(r"`([^`]+)`\s*(?:\(([^)]*)\))?", cells[2])
        }
        row = Row(names, allowed, cells[2].lower().startswith(ANY), number)
        for name in names:
            rows[name] = row
    return rows


def _dotted(name: str) -> str:
    """`commands/*`, `runtime/`, `runtime/http` → `commands`, `runtime`, `runtime.http`."""
    return name.replace("/*", "").rstrip("/").replace("/", ".")


def resolve_allowed(row: Row, rows: dict[str, Row]) -> dict[str, str]:
    """A subpackage module's row names its siblings plainly (`runtime.http` may import `errors`)."""
    package = row.names[0].rsplit(".", 1)[0] if "." in row.names[0] else ""
    return {
        (f"{package}.{name}" if package and f"{package}.{name}" in rows else name): qualifier
        for name, qualifier in row.allowed.items()
    }


def modules() -> dict[str, Path]:
    """Every module of nbops by dotted name relative to the package (`__init__`, `commands.run`)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if not all((PACKAGE / Path(*relative.parts[:i]) / "__init__.py").exists() for i in range(1, len(relative.parts))):
            continue  # not importable: templates, data folders
        parts = list(relative.with_suffix("").parts)
        if len(parts) > 1 and parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def owner(module: str, rows: dict[str, Row]) -> str | None:
    """The table row covering `module`: its own, else its nearest package's."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in rows:
            return ".".join(parts[:end])
    return None


def imports_of(module: str, path: Path, known: dict[str, Path]) -> list[tuple[str, int, bool]]:
    """(imported nbops module, line, at module level) for every import statement of nbops."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module.split(".")[:-1] if path.name != "__init__.py" else module.split(".")
    if module == "__init__":
        package = []
    top_level = {id(node) for node in tree.body}
    found = []

    def resolve(dotted: list[str]) -> str:
        while dotted and ".".join(dotted) not in known:
            dotted = dotted[:-1]
        return ".".join(dotted) or "__init__"

    for node in ast.walk(tree):
        at_top = id(node) in top_level
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "nbops" or alias.name.startswith("nbops."):
                    found.append((resolve(alias.name.split(".")[1:]), node.lineno, at_top))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else list(package)
            elif node.module and (node.module == "nbops" or node.module.startswith("nbops.")):
                base = []
                node_module = node.module.split(".")[1:]
                base += node_module
                for alias in node.names:
                    found.append((resolve([*base, alias.name]), node.lineno, at_top))
                continue
            else:
                continue
            base = base + (node.module.split(".") if node.module else [])
            for alias in node.names:
                found.append((resolve([*base, alias.name]), node.lineno, at_top))
    return found


def test_the_module_table_covers_every_module_and_names_only_real_ones():
    rows = read_table(ARCHITECTURE.read_text(encoding="utf-8"))
    known = modules()
    assert rows, "ARCHITECTURE.md has no table with a 'may import' column"
    missing = sorted({m for m in known if owner(m, rows) is None})
    assert not missing, f"modules without a row in ARCHITECTURE.md's table (add one): {', '.join(missing)}"
    packages = {m.rsplit(".", 1)[0] for m in known if "." in m} | set(known)
    unknown = sorted(name for name in rows if name not in packages)
    assert not unknown, f"ARCHITECTURE.md's table names modules that do not exist: {', '.join(unknown)}"
    for row in {id(r): r for r in rows.values()}.values():
        strays = sorted(name for name in resolve_allowed(row, rows) if owner(name, rows) is None)
        assert not strays, f"ARCHITECTURE.md line {row.line}: 'may import' names no module of the table: {strays}"


def test_every_import_of_nbops_is_one_the_table_allows():
    rows = read_table(ARCHITECTURE.read_text(encoding="utf-8"))
    known = modules()
    problems = []
    for module, path in known.items():
        unit = owner(module, rows)
        if unit is None:
            continue  # reported by the test above
        row = rows[unit]
        allowed = resolve_allowed(row, rows)
        for imported, line, at_top in imports_of(module, path, known):
            target = owner(imported, rows)
            if target in (unit, "__init__", None) or target.startswith(unit + ".") or row.anything:
                continue  # within the row's own modules (a package and its submodules' rows)
            where = f"nbops/{path.relative_to(PACKAGE)}:{line}"
            if target not in allowed:
                shown = ", ".join(allowed) or "nothing"
                problems.append(f"{where}: `{unit}` imports `{target}`; its row allows {shown}")
            elif "lazily" in allowed[target] and at_top:
                problems.append(f"{where}: `{unit}` may import `{target}` only lazily (inside a function)")
    unused = []
    for row in {id(r): r for r in rows.values()}.values():
        if row.anything:
            continue
        used = {
            owner(imported, rows)
            for module, path in known.items() if owner(module, rows) in row.names
            for imported, _, _ in imports_of(module, path, known)
        }
        unused += [f"ARCHITECTURE.md line {row.line}: `{'`, `'.join(row.names)}` never imports `{name}`"
                   for name in resolve_allowed(row, rows) if name not in used]
    assert not problems + unused, "\n".join(problems + unused)


def test_the_reader_sees_imports_in_every_form(tmp_path):
    """The checks above can fail: relative, absolute, lazy and package-level imports are all seen."""
    known = {"__init__": tmp_path, "a": tmp_path, "b": tmp_path, "pkg": tmp_path, "pkg.c": tmp_path}
    source = tmp_path / "a.py"
    source.write_text(
        "from . import b\nimport nbops.pkg.c\nfrom nbops import __version__\n"
        "def f():\n    from .pkg import c\n    from .b import thing\n",
        encoding="utf-8",
    )
    assert imports_of("a", source, known) == [
        ("b", 1, True), ("pkg.c", 2, True), ("__init__", 3, True), ("pkg.c", 5, False), ("b", 6, False),
    ]
    table = read_table(
        "| module | owns | may import (of nbops) |\n|---|---|---|\n"
        "| `a` | x | `b` (lazily), `pkg` |\n| `pkg/` | y | nothing |\n| `cli` | z | any module |\n"
        "| `pkg.c` | w | `d` |\n| `pkg.d` | v | — |\n"
    )
    assert table["a"].allowed == {"b": "lazily", "pkg": ""} and table["pkg"].allowed == {}
    assert table["cli"].anything and owner("pkg.c", table) == "pkg.c" and owner("pkg.e", table) == "pkg"
    assert resolve_allowed(table["pkg.c"], table) == {"pkg.d": ""}


def test_the_reader_resolves_imports_across_subpackages(tmp_path):
    """A module of one subpackage importing another's (`from ..core import params`) is seen as that
    module, and a row names its siblings plainly and other subpackages' modules by dotted path."""
    names = ("__init__", "core", "core.params", "core.exceptions", "pipeline", "pipeline.run", "pipeline.record")
    known = {name: tmp_path for name in names}
    source = tmp_path / "run.py"
    source.write_text(
        "from ..core import params\nfrom ..core.exceptions import Error\nfrom . import record\nfrom .. import __version__\n",
        encoding="utf-8",
    )
    assert imports_of("pipeline.run", source, known) == [
        ("core.params", 1, True), ("core.exceptions", 2, True), ("pipeline.record", 3, True), ("__init__", 4, True),
    ]
    table = read_table(
        "| module | owns | may import (of nbops) |\n|---|---|---|\n"
        "| `core/` | x | nothing |\n| `core.params` | x | `exceptions` |\n| `core.exceptions` | x | nothing |\n"
        "| `pipeline/` | y | nothing |\n| `pipeline.run` | y | `core.params`, `record` (constants) |\n"
        "| `pipeline.record` | y | `core.exceptions` |\n"
    )
    assert resolve_allowed(table["core.params"], table) == {"core.exceptions": ""}
    assert resolve_allowed(table["pipeline.run"], table) == {"core.params": "", "pipeline.record": "constants"}
    assert owner("core", table) == "core" and owner("pipeline.run", table) == "pipeline.run"
