"""How tests/unit/test_architecture.py reads the code against ARCHITECTURE.md.

The module table is true: every module of nbops has a row, and imports of nbops only what its row's "may import" column names (read with `ast`, lazy imports inside functions
included). A subpackage (`core/`, `runtime/`, `commands/`, ...) has a row of its own (its
`__init__`), which covers every module of the folder the table gives no row of its own
(`core.params`, `runtime.http`); imports inside one row's modules are its own business. A
module's row names its siblings plainly (`exceptions` in `core.params`' row) and any other module
by its dotted path (`core.exceptions`). Adding a module means adding its row — nothing here needs
to change.

What counts as an import of a module of nbops (`references`):
* `import nbops.x`, `from nbops.x import y`, `from ..x import y`, lazily inside a function too;
* the package root resolved to what it loads: `from nbops import promote` (or `from .. import
  promote`, or `nbops.promote` after `import nbops`) is an import of `promotion.promote`, through
  `nbops/__init__.py`'s `_LAZY` map; only the root's own names (`__version__`) are free;
* a string naming a module: `importlib.import_module("nbops.x")`, `__import__`, a lazy map's
  values, `f"nbops.commands.{name}"`, `python -m nbops.x`, `importlib.import_module(".x", pkg)`.

A qualifier after a module in the "may import" column is a promise the test holds: `lazily`
(inside a function), `types only` (under `if TYPE_CHECKING:`), `constants` (UPPER_CASE names
only), and backquoted names (`` `read_records` ``: only those, or those submodules of a package).
Any other word there is an error of the table: prose belongs in the "owns" column.

`runtime/` is held to more (it is copied into every wheel, where there is no nbops): no
reference to any module of nbops outside it, ever (lazy imports and strings included), only
relative imports of itself, and only the standard library at module level.

`bench/`, `examples/`, the root project's notebooks and `nbops init`'s template use only the
public API (`public_path`): the names of `nbops.__all__`, `nbops.testing` (fixtures for a
project's tests), and a subpackage's `__all__` (`nbops.runtime`, `nbops.monitoring`). A bench
that times one internal step names it in ARCHITECTURE.md's second table (script → "may import
beyond the public API"), with the same qualifiers.
"""

from __future__ import annotations

import ast
import functools
import json
import re
import sys
import textwrap
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import nbops

from ..conftest import REPO

PACKAGE = REPO / "nbops"
ARCHITECTURE = REPO / "ARCHITECTURE.md"
#: A "may import" cell meaning any module of nbops (the CLI's layer: nothing imports it).
ANY = "any"
#: The package copied whole into every wheel: nothing of nbops, stdlib at module level.
STANDALONE = "runtime"
#: Code outside the package held to nbops' public API (globs relative to the repository).
OUTSIDE = ("bench/*.py", "bench/*.ipynb", "examples/*/**/*.py", "examples/*/**/*.ipynb", "notebooks/*.py",
           "notebooks/*.ipynb", "nbops/authoring/templates/**/*.py")
#: When a reference runs: with its module's import, inside a function (or a string kept for later), never.
AT_IMPORT, LAZY, TYPING = "at import", "lazy", "typing"
LAZILY, CONSTANTS, TYPES_ONLY = "lazily", "constants", "types only"
CONSTANT_NAME = re.compile(r"_?[A-Z][A-Z0-9_]*$")
MODULE_STRING = re.compile(r"nbops(\.[A-Za-z_]\w*)+$")
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


# --- the table --------------------------------------------------------------------------------


@dataclass
class Rule:
    """What a row may take from one module: qualifiers parsed from "`module` (qualifier)"."""

    lazily: bool = False
    types_only: bool = False
    constants: bool = False
    names: frozenset[str] = frozenset()
    unknown: list[str] = field(default_factory=list)  # words the test cannot hold: an error of the table

    @property
    def restricts_names(self) -> bool:
        return self.constants or bool(self.names)


@dataclass
class Row:
    names: list[str]  # dotted module names, relative to nbops ("commands", "runtime.http"), or a script's path
    allowed: dict[str, Rule]  # module -> what may be taken from it
    anything: bool
    line: int


def parse_rule(text: str) -> Rule:
    rule = Rule()
    for item in filter(None, (part.strip() for part in re.split(r"[,;]", text or ""))):
        if item == LAZILY:
            rule.lazily = True
        elif item == TYPES_ONLY:
            rule.types_only = True
        elif item == CONSTANTS:
            rule.constants = True
        elif re.fullmatch(r"`[A-Za-z_]\w*`", item):
            rule.names |= {item.strip("`")}
        else:
            rule.unknown.append(item)
    return rule


def read_table(text: str, header: str = "module") -> dict[str, Row]:
    """The table whose first column is `header` and whose third starts "may import"."""
    rows: dict[str, Row] = {}
    in_table = False
    for number, line in enumerate(text.splitlines(), 1):
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if cells[:1] == [header] and len(cells) >= 3 and cells[2].startswith("may import"):
            in_table = True
            continue
        if not in_table:
            continue
        if not cells:
            break
        if set(cells[0]) <= set("-: "):
            continue
        names = [_dotted(name) if header == "module" else name for name in re.findall(r"`([^`]+)`", cells[0])]
        allowed = {
            _dotted(name): parse_rule(qualifier)
            for name, qualifier in re.findall(r"`([^`]+)`\s*(?:\(([^)]*)\))?", cells[2])
        }
        row = Row(names, allowed, cells[2].lower().startswith(ANY), number)
        for name in names:
            rows[name] = row
    return rows


def _dotted(name: str) -> str:
    """`commands/*`, `runtime/`, `runtime/http` → `commands`, `runtime`, `runtime.http`."""
    return name.replace("/*", "").rstrip("/").replace("/", ".")


def resolve_allowed(row: Row, rows: dict[str, Row]) -> dict[str, Rule]:
    """A subpackage module's row names its siblings plainly (`runtime.http` may import `errors`)."""
    package = row.names[0].rsplit(".", 1)[0] if "." in row.names[0] and "/" not in row.names[0] else ""
    return {
        (f"{package}.{name}" if package and f"{package}.{name}" in rows else name): rule
        for name, rule in row.allowed.items()
    }


def table_errors(rows: dict[str, Row]) -> list[str]:
    """Qualifiers the test cannot hold, and impossible ones."""
    errors = []
    for row in {id(r): r for r in rows.values()}.values():
        for name, rule in row.allowed.items():
            if rule.unknown:
                errors.append(
                    f"ARCHITECTURE.md line {row.line}: `{name}` ({', '.join(rule.unknown)}): a qualifier is one of "
                    f"{LAZILY}, {TYPES_ONLY}, {CONSTANTS} or `names`; prose belongs in the 'owns' column"
                )
            if rule.lazily and rule.types_only:
                errors.append(f"ARCHITECTURE.md line {row.line}: `{name}` cannot be both {LAZILY} and {TYPES_ONLY}")
    return errors


# --- the package ------------------------------------------------------------------------------


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    """Every module of nbops by dotted name relative to the package (`__init__`, `commands.run`)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        if not all((package / Path(*relative.parts[:i]) / "__init__.py").exists() for i in range(1, len(relative.parts))):
            continue  # not importable: templates, data folders
        parts = list(relative.with_suffix("").parts)
        if len(parts) > 1 and parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def lazy_names(init: Path = PACKAGE / "__init__.py") -> dict[str, str]:
    """The root's lazily re-exported names → their module (`promote` → `promotion.promote`)."""
    for node in ast.parse(init.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_LAZY" for t in node.targets):
            return {name: module.removeprefix("nbops.") for name, module in ast.literal_eval(node.value).items()}
    return {}


def owner(module: str, rows: dict[str, Row]) -> str | None:
    """The table row covering `module`: its own, else its nearest package's."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in rows:
            return ".".join(parts[:end])
    return None


def shown_path(path: Path) -> str:
    """A module's path from its package's folder (`nbops/runtime/http.py`)."""
    top = path.parent
    while (top.parent / "__init__.py").exists():
        top = top.parent
    return path.relative_to(top.parent).as_posix()


def package_of(module: str, path: Path) -> list[str]:
    """The package a module's relative imports start from (`pipeline.record` → `pipeline`)."""
    if module == "__init__":
        return []
    return module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]


# --- reading references -----------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    path: tuple[str, ...]  # what it names, dotted from nbops' root: ("pipeline", "record", "ENV_STAGE")
    line: int
    when: str  # AT_IMPORT, LAZY or TYPING
    form: str  # "relative", "absolute" (nbops.…) or "string"


def resolve(path: tuple[str, ...], known: dict[str, Path], lazy: dict[str, str]) -> tuple[str, str | None]:
    """(module, name taken from it or None for the module as a whole). The root's re-exported names
    resolve to the module they load; its own names (`__version__`) to `__init__`."""
    for end in range(len(path), 0, -1):
        if ".".join(path[:end]) in known:
            return ".".join(path[:end]), (path[end] if end < len(path) else None)
    if path and path[0] in lazy:
        return lazy[path[0]], path[0]
    return "__init__", (path[0] if path else None)


class _Tree:
    """A parsed source, read in one pass: its imports and strings, when each runs, and every use
    of every name."""

    def __init__(self, source: str):
        self.tree = ast.parse(source)
        self.when: dict[int, str] = {}
        self.scope: dict[int, tuple[ast.AST, ...]] = {}  # the functions around a node, outermost first
        self.uses: dict[str, list[tuple[tuple[str, ...], tuple[ast.AST, ...]]]] = {}
        self.bound_in: dict[int, set[str]] = {}  # a function's own names (arguments, assignments)
        self.imports: list[ast.Import | ast.ImportFrom] = []
        self.strings: list[ast.AST] = []  # str constants, f-strings, import_module calls
        self.import_arguments: set[int] = set()  # arguments of import_module / __import__ calls
        self._visit(self.tree, AT_IMPORT, ())

    def _visit(self, node: ast.AST, when: str, functions: tuple[ast.AST, ...]) -> None:
        kind = type(node)
        if kind is ast.Constant:
            if isinstance(node.value, str) and node.value.startswith("nbops."):
                self._keep(node, when, functions)
            return
        if kind in (ast.Import, ast.ImportFrom):
            self._keep(node, when, functions)
            self.imports.append(node)
            return
        if kind is ast.Attribute:
            chain, base = [node.attr], node.value
            while type(base) is ast.Attribute:
                chain.insert(0, base.attr)
                base = base.value
            if type(base) is ast.Name:
                self.uses.setdefault(base.id, []).append((tuple(chain), functions))
                return  # the chain is read whole: its inner attributes are not uses of their own
        elif kind is ast.Name:
            if type(node.ctx) is ast.Load:
                self.uses.setdefault(node.id, []).append(((), functions))
            elif functions:
                self.bound_in.setdefault(id(functions[-1]), set()).add(node.id)
            return
        elif kind is ast.arg:
            if functions:
                self.bound_in.setdefault(id(functions[-1]), set()).add(node.arg)
        elif kind is ast.JoinedStr:
            self._keep(node, when, functions)
        elif kind is ast.Call and _call_name(node) in ("import_module", "__import__"):
            self._keep(node, when, functions)
            self.import_arguments |= {id(argument) for argument in node.args}
        for name in node._fields:
            value = getattr(node, name, None)
            inner_when, inner_functions = when, functions
            if kind in FUNCTIONS and name in ("body", "args"):
                inner_functions = (*functions, node)  # its arguments are its own names
                if name == "body":
                    inner_when = TYPING if when == TYPING else LAZY
            elif kind is ast.If and name == "body" and _is_type_checking(node.test):
                inner_when = TYPING
            elif kind is ast.If and name == "body" and _is_main(node.test) and when == AT_IMPORT:
                inner_when = LAZY  # `python -m nbops.x` only: never runs when the module is imported
            for child in value if isinstance(value, list) else (value,):
                if isinstance(child, ast.AST):
                    self._visit(child, inner_when, inner_functions)

    def _keep(self, node: ast.AST, when: str, functions: tuple[ast.AST, ...]) -> None:
        self.when[id(node)], self.scope[id(node)] = when, functions
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            self.strings.append(node)

    def uses_of(self, node: ast.AST, bound: str) -> list[tuple[str, ...]]:
        """Each use of `bound` where the import `node` binds it, as the attribute chain after it
        (() for the name used whole); functions binding the name themselves are left out."""
        scope = self.scope[id(node)]
        found = []
        for chain, functions in self.uses.get(bound, []):
            if functions[: len(scope)] != scope:
                continue
            if any(bound in self.bound_in.get(id(f), ()) for f in functions[len(scope):]):
                continue
            found.append(chain)
        return found


@functools.lru_cache(maxsize=None)
def read_source(source: str) -> _Tree:
    return _Tree(source)


def _is_type_checking(test: ast.expr) -> bool:
    return getattr(test, "id", None) == "TYPE_CHECKING" or getattr(test, "attr", None) == "TYPE_CHECKING"


def _is_main(test: ast.expr) -> bool:
    return (isinstance(test, ast.Compare) and getattr(test.left, "id", None) == "__name__"
            and any(getattr(c, "value", None) == "__main__" for c in test.comparators))


def references(
    source: str, package: list[str] | None, known: dict[str, Path], lazy: dict[str, str]
) -> list[Reference]:
    """Every reference to nbops in `source`. `package`: the importer's package inside nbops (its
    relative imports are nbops'), or None for code outside nbops."""
    read = read_source(source)
    found: list[Reference] = []
    top_level = {name.split(".")[0] for name in known} | set(lazy)

    def bound_uses(node: ast.AST, bound: str, path: tuple[str, ...], loaded: tuple[str, ...], form: str) -> None:
        when = read.when[id(node)]
        uses = read.uses_of(node, bound)
        refined = [path + use for use in uses if (path + use)[: len(loaded)] == loaded]
        rest = [path + use for use in uses if (path + use)[: len(loaded)] != loaded]
        for target in refined + rest or [loaded]:
            found.append(Reference(target, node.lineno, when, form))
        if rest and not refined and loaded != path:
            found.append(Reference(loaded, node.lineno, when, form))

    for node in read.imports:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "nbops" or alias.name.startswith("nbops."):
                    parts = tuple(alias.name.split(".")[1:])
                    if alias.asname:
                        bound_uses(node, alias.asname, parts, parts, "absolute")
                    else:
                        bound_uses(node, "nbops", (), parts, "absolute")
            continue
        if node.level:
            if package is None or node.level - 1 > len(package):
                continue
            base = (*package[: len(package) - (node.level - 1)], *(node.module.split(".") if node.module else ()))
            form = "relative"
        elif node.module and (node.module == "nbops" or node.module.startswith("nbops.")):
            base, form = tuple(node.module.split(".")[1:]), "absolute"
        else:
            continue
        for alias in node.names:
            if alias.name == "*":
                found.append(Reference(base, node.lineno, read.when[id(node)], form))
                continue
            path = (*base, alias.name)
            bound_uses(node, alias.asname or alias.name, path, path, form)
    for node in read.strings:
        path = _string_path(node, package)
        if path is not None and path and path[0] in top_level:
            when = read.when[id(node)]
            if when == AT_IMPORT and not isinstance(node, ast.Call) and id(node) not in read.import_arguments:
                when = LAZY  # data kept for later at module level: a lazy map, a command line
            found.append(Reference(path, node.lineno, when, "string"))
    found.sort(key=lambda ref: ref.line)
    return found


def _string_path(node: ast.AST, package: list[str] | None) -> tuple[str, ...] | None:
    """The module a string names: "nbops.x.y", f"nbops.x.{name}" (→ x), import_module(".x", pkg)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_STRING.fullmatch(node.value):
        return tuple(node.value.split(".")[1:])
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        prefix = str(node.values[0].value)
        if prefix.startswith("nbops.") and len(node.values) > 1:
            return tuple(part for part in prefix.split(".")[1:-1])
    if (
        isinstance(node, ast.Call) and package is not None and node.args
        and _call_name(node) == "import_module" and isinstance(node.args[0], ast.Constant)
        and str(node.args[0].value).startswith(".")
    ):
        text = str(node.args[0].value)
        dots = len(text) - len(text.lstrip("."))
        base = package[: len(package) - (dots - 1)] if dots - 1 <= len(package) else []
        return (*base, *filter(None, text[dots:].split(".")))
    return None


def _call_name(node: ast.Call) -> str | None:
    return getattr(node.func, "id", None) or getattr(node.func, "attr", None)


# --- the checks -------------------------------------------------------------------------------


def taken(module: str, name: str | None, target: str) -> str | None:
    """What a reference takes from the row `target`: a name of it, or the submodule of it that
    it reaches (`monitoring.profile` → `profile`); None: the module as a whole."""
    if module == target:
        return name
    return module[len(target) + 1:].split(".")[0]


def rule_problems(rule: Rule, ref: Reference, module: str, name: str | None, target: str, unit: str) -> list[str]:
    problems = []
    if rule.lazily and ref.when == AT_IMPORT:
        problems.append(f"`{unit}` may import `{target}` only lazily (inside a function)")
    if rule.types_only and ref.when != TYPING:
        problems.append(f"`{unit}` may import `{target}` for types only (under `if TYPE_CHECKING:`)")
    if rule.restricts_names:
        what = taken(module, name, target)
        allowed = ", ".join([*sorted(rule.names), *([CONSTANTS] if rule.constants else [])])
        if what is None:
            how = "a string import" if ref.form == "string" else "the module as a whole"
            problems.append(f"`{unit}` takes all of `{target}` ({how}); its row allows only {allowed}")
        elif what not in rule.names and not (rule.constants and CONSTANT_NAME.match(what)):
            problems.append(f"`{unit}` takes `{what}` from `{target}`; its row allows only {allowed}")
    return problems


def check_package(
    rows: dict[str, Row], known: dict[str, Path], lazy: dict[str, str], sources: dict[str, str] | None = None
) -> list[str]:
    """Every reference of every module against its row, then every row's names against its use."""
    problems, used = [], {}
    for module, path in known.items():
        unit = owner(module, rows)
        if unit is None:
            continue  # reported by the table's own test
        row = rows[unit]
        allowed = resolve_allowed(row, rows)
        source = sources[module] if sources is not None else path.read_text(encoding="utf-8")
        for ref in references(source, package_of(module, path), known, lazy):
            imported, name = resolve(ref.path, known, lazy)
            target = owner(imported, rows)
            where = f"{shown_path(path)}:{ref.line}"
            if imported == "__init__" or module.startswith(imported + ".") or target is None:
                continue  # the root's own names, and a module's own packages, are loaded before it
            if target == unit or target.startswith(unit + "."):
                continue  # within the row's own modules (a package and its submodules' rows)
            used.setdefault(id(row), {}).setdefault(target, set()).add(taken(imported, name, target))
            if row.anything:
                continue
            if target not in allowed:
                shown = ", ".join(allowed) or "nothing"
                problems.append(f"{where}: `{unit}` imports `{target}`; its row allows {shown}")
                continue
            problems += [f"{where}: {p}" for p in rule_problems(allowed[target], ref, imported, name, target, unit)]
    for row in {id(r): r for r in rows.values()}.values():
        if row.anything:
            continue
        row_used = used.get(id(row), {})
        for name, rule in resolve_allowed(row, rows).items():
            if name not in row_used:
                problems.append(f"ARCHITECTURE.md line {row.line}: `{'`, `'.join(row.names)}` never imports `{name}`")
            for unused in sorted(rule.names - row_used.get(name, set())):
                problems.append(f"ARCHITECTURE.md line {row.line}: `{'`, `'.join(row.names)}` never takes `{unused}` from `{name}`")
    return list(dict.fromkeys(problems))


def check_standalone(known: dict[str, Path], lazy: dict[str, str], sources: dict[str, str] | None = None,
                     standalone: str = STANDALONE) -> list[str]:
    """`runtime/`: nothing of nbops outside it, however imported; relative imports of itself;
    only the standard library at module level."""
    problems = []
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for module, path in known.items():
        if module != standalone and not module.startswith(standalone + "."):
            continue
        where = shown_path(path)
        source = sources[module] if sources is not None else path.read_text(encoding="utf-8")
        for ref in references(source, package_of(module, path), known, lazy):
            imported, _ = resolve(ref.path, known, lazy)
            inside = imported == standalone or imported.startswith(standalone + ".")
            if not inside:
                problems.append(f"{where}:{ref.line}: `{module}` refers to `{'.'.join(('nbops', *ref.path))}` "
                                f"({ref.form}, {ref.when}); {standalone} is copied into wheels without nbops")
            elif ref.form == "absolute":
                problems.append(f"{where}:{ref.line}: `{module}` imports itself as `nbops.…`; use a relative import")
        read = read_source(source)
        for node in read.imports:
            if read.when[id(node)] != AT_IMPORT:
                continue
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if not node.level and node.module else [])
            for name in names:
                if name.split(".")[0] not in stdlib and name != "nbops" and not name.startswith("nbops."):
                    problems.append(f"{where}:{node.lineno}: `{module}` imports `{name}` at module level; "
                                    "only the standard library there (import it inside the function that needs it)")
    return problems


def public_api(known: dict[str, Path] | None = None) -> dict[str, frozenset[str] | None]:
    """What code outside nbops may use: {"": the root's `__all__`, "testing": None (every public
    name), a subpackage: its `__all__`, "cli": the console script's `main`}."""
    known = modules() if known is None else known
    public: dict[str, frozenset[str] | None] = {"": frozenset(nbops.__all__), "testing": None}
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    for target in scripts.values():  # the `nbops` command's entry point (`nbops.cli:main`), run in-process
        module, _, function = target.partition(":")
        public.setdefault(module.removeprefix("nbops."), frozenset())
        public[module.removeprefix("nbops.")] |= {function}  # type: ignore[operator]
    for name, path in known.items():
        if path.name != "__init__.py" or name == "__init__":
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
                public[name] = frozenset(ast.literal_eval(node.value))
    return public


def public_path(path: tuple[str, ...], public: dict[str, frozenset[str] | None]) -> bool:
    """`nbops.promote`, `nbops.testing.run`, `nbops.runtime.PackagedModel`: public. A public
    module used whole (`nbops.runtime` passed around) is too; a name after a public name is its
    attribute (`nbops.testing.run.__name__`)."""
    if path and path[0] in public[""]:
        return True
    for end in range(len(path), -1, -1):
        names = public.get(".".join(path[:end]), frozenset())
        if ".".join(path[:end]) in public and end:
            return end == len(path) or names is None or (path[end] in names and not path[end].startswith("_"))
    return path == ()


def script_source(path: Path) -> str:
    """A script's code; a notebook's code cells (magics and shell lines left out)."""
    if path.suffix != ".ipynb":
        return path.read_text(encoding="utf-8")
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    sources = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in cells if c["cell_type"] == "code"]
    lines = [line for text in sources for line in text.splitlines() if not line.lstrip().startswith(("%", "!"))]
    return "\n".join(lines) + "\n"


def embedded_code(source: str) -> list[tuple[int, str]]:
    """(line, code) of each string in `source` that is Python code using nbops: a script a bench
    runs with `python -c`, a notebook it writes. An f-string's fields read as a plain name."""
    found = []
    for node in ast.walk(read_source(source).tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        elif isinstance(node, ast.JoinedStr):
            text = "".join(str(v.value) if isinstance(v, ast.Constant) else "_" for v in node.values)
        else:
            continue
        if "nbops" not in text or "\n" not in text or not re.search(r"^\s*(import|from)\s+nbops\b", text, re.M):
            continue
        try:
            ast.parse(textwrap.dedent(text))
        except SyntaxError:
            continue
        found.append((node.lineno, textwrap.dedent(text)))
    return found


def script_references(source: str, known: dict[str, Path], lazy: dict[str, str]) -> list[Reference]:
    """A script's references to nbops, those of the code in its strings included (at the
    string's line)."""
    found = references(source, None, known, lazy)
    for line, code in embedded_code(source):
        found += [Reference(ref.path, line, ref.when, ref.form) for ref in references(code, None, known, lazy)]
    return found


def check_outside(
    scripts: dict[str, str], rows: dict[str, Row], known: dict[str, Path], lazy: dict[str, str],
    public: dict[str, frozenset[str] | None],
) -> list[str]:
    """Each script's references to nbops: public, or named by the script's row of the second table."""
    problems, used = [], {}
    for script, source in scripts.items():
        row = rows.get(script)
        allowed = row.allowed if row else {}
        for ref in script_references(source, known, lazy):
            if public_path(ref.path, public):
                continue
            imported, name = resolve(ref.path, known, lazy)
            target = next((m for m in sorted(allowed, key=len, reverse=True)
                           if imported == m or imported.startswith(m + ".")), None)
            written = ".".join(("nbops", *ref.path))
            if target is None:
                hint = "; if it times an internal step, name it in ARCHITECTURE.md's table of scripts" if script.startswith("bench/") else ""
                problems.append(f"{script}:{ref.line}: `{written}` is not nbops' public API{hint}")
                continue
            used.setdefault(script, {}).setdefault(target, set()).add(taken(imported, name, target))
            problems += [f"{script}:{ref.line}: {p}" for p in rule_problems(allowed[target], ref, imported, name, target, script)]
    for row in {id(r): r for r in rows.values()}.values():
        for script in row.names:
            for name, rule in row.allowed.items():
                if script in scripts and name not in used.get(script, {}):
                    problems.append(f"ARCHITECTURE.md line {row.line}: `{script}` never imports `{name}`")
                elif script in scripts:
                    problems += [f"ARCHITECTURE.md line {row.line}: `{script}` never takes `{n}` from `{name}`"
                                 for n in sorted(rule.names - used[script][name])]
            if script not in scripts:
                problems.append(f"ARCHITECTURE.md line {row.line}: no script `{script}`")
    return problems


def outside_scripts() -> dict[str, str]:
    """bench/, examples/, the root project's notebooks and the init template, by path; a paired
    notebook is read once (its percent script)."""
    paths = sorted({  # not hidden folders (a virtual environment, .dvc, .nbops/scratch) nor installed packages
        p for pattern in OUTSIDE for p in REPO.glob(pattern)
        if not any(part.startswith(".") or part in ("site-packages", "venv") for part in p.relative_to(REPO).parts[:-1])
    })
    kept = [p for p in paths if not (p.suffix == ".ipynb" and p.with_suffix(".py") in paths)]
    return {p.relative_to(REPO).as_posix(): script_source(p) for p in kept}
