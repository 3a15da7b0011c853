"""ARCHITECTURE.md's tables are true (how they are read: tests/unit/architecture.py), and each
hole the reader closes has a test that feeds it a crafted import and sees it caught."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .architecture import (
    ARCHITECTURE,
    AT_IMPORT,
    LAZY,
    check_outside,
    check_package,
    check_standalone,
    lazy_names,
    modules,
    outside_scripts,
    owner,
    public_api,
    read_table,
    references,
    resolve,
    resolve_allowed,
    script_source,
    table_errors,
)


# --- the real code ----------------------------------------------------------------------------


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
    errors = table_errors(rows) + table_errors(read_table(ARCHITECTURE.read_text(encoding="utf-8"), "script"))
    assert not errors, "\n".join(errors)


def test_every_import_of_nbops_is_one_the_table_allows():
    problems = check_package(read_table(ARCHITECTURE.read_text(encoding="utf-8")), modules(), lazy_names())
    assert not problems, "\n".join(problems)


def test_the_runtime_imports_nothing_of_nbops_even_lazily():
    problems = check_standalone(modules(), lazy_names())
    assert not problems, "\n".join(problems)


def test_bench_and_examples_use_only_the_public_api():
    known = modules()
    scripts = outside_scripts()
    assert {"bench/promote_bench.py", "examples/fraud-detection/story.py", "notebooks/train.py"} <= set(scripts)
    rows = read_table(ARCHITECTURE.read_text(encoding="utf-8"), "script")
    problems = check_outside(scripts, rows, known, lazy_names(), public_api(known))
    assert not problems, "\n".join(problems)


# --- the checks can fail ----------------------------------------------------------------------

TABLE_HEAD = "| module | owns | may import (of nbops) |\n|---|---|---|\n"


def fake_package(tmp_path: Path, files: dict[str, str]) -> dict[str, Path]:
    """A package on disk with these modules (dotted names → source); returns `modules()` of it."""
    root = tmp_path / "pkg"
    for name, source in files.items():
        parts = name.split(".")
        path = root.joinpath(*parts[:-1], f"{parts[-1]}.py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
        for i in range(len(parts)):
            (root.joinpath(*parts[:i]) / "__init__.py").touch()
    return modules(root)


def test_the_reader_sees_imports_in_every_form(tmp_path):
    """The checks above can fail: relative, absolute, lazy and package-level imports are all seen."""
    known = {"__init__": tmp_path, "a": tmp_path, "b": tmp_path, "pkg": tmp_path, "pkg.c": tmp_path}
    source = (
        "from . import b\nimport nbops.pkg.c\nfrom nbops import __version__\n"
        "def f():\n    from .pkg import c\n    from .b import thing\n"
    )
    found = [(resolve(r.path, known, {}), r.line, r.when) for r in references(source, [], known, {})]
    assert found == [
        (("b", None), 1, AT_IMPORT), (("pkg.c", None), 2, AT_IMPORT), (("__init__", "__version__"), 3, AT_IMPORT),
        (("pkg.c", None), 5, LAZY), (("b", "thing"), 6, LAZY),
    ]
    guarded = 'try:\n    from .b import x\nexcept ImportError:\n    pass\nif __name__ == "__main__":\n    from .pkg import c\n'
    assert [(r.line, r.when) for r in references(guarded, [], known, {})] == [(2, AT_IMPORT), (6, LAZY)]
    table = read_table(
        TABLE_HEAD + "| `a` | x | `b` (lazily), `pkg` |\n| `pkg/` | y | nothing |\n| `cli` | z | any module |\n"
        "| `pkg.c` | w | `d` |\n| `pkg.d` | v | — |\n"
    )
    assert table["a"].allowed["b"].lazily and not table["a"].allowed["pkg"].lazily and table["pkg"].allowed == {}
    assert table["cli"].anything and owner("pkg.c", table) == "pkg.c" and owner("pkg.e", table) == "pkg"
    assert list(resolve_allowed(table["pkg.c"], table)) == ["pkg.d"]


def test_the_reader_resolves_imports_across_subpackages(tmp_path):
    """A module of one subpackage importing another's (`from ..core import params`) is seen as that
    module, and a row names its siblings plainly and other subpackages' modules by dotted path."""
    names = ("__init__", "core", "core.params", "core.exceptions", "pipeline", "pipeline.run", "pipeline.record")
    known = {name: tmp_path for name in names}
    source = "from ..core import params\nfrom ..core.exceptions import Error\nfrom . import record\nfrom .. import __version__\n"
    assert [resolve(r.path, known, {}) for r in references(source, ["pipeline"], known, {})] == [
        ("core.params", None), ("core.exceptions", "Error"), ("pipeline.record", None), ("__init__", "__version__"),
    ]
    table = read_table(
        TABLE_HEAD + "| `core/` | x | nothing |\n| `core.params` | x | `exceptions` |\n| `core.exceptions` | x | nothing |\n"
        "| `pipeline/` | y | nothing |\n| `pipeline.run` | y | `core.params`, `record` (constants) |\n"
        "| `pipeline.record` | y | `core.exceptions` |\n"
    )
    assert list(resolve_allowed(table["core.params"], table)) == ["core.exceptions"]
    assert list(resolve_allowed(table["pipeline.run"], table)) == ["core.params", "pipeline.record"]
    assert resolve_allowed(table["pipeline.run"], table)["pipeline.record"].constants
    assert owner("core", table) == "core" and owner("pipeline.run", table) == "pipeline.run"


LAYERS = {
    "core.__init__": "", "core.params": "X = 1\n",
    "promotion.__init__": "", "promotion.promote": "def promote(): ...\n",
    "runtime.__init__": "", "runtime.model": "import json\n",
}
LAYERS_TABLE = (
    TABLE_HEAD + "| `__init__` | api | `promotion` (lazily) |\n| `core/` | x | nothing |\n"
    "| `promotion/` | y | `core` |\n| `runtime/` | z | nothing |\n"
)
INIT = '_LAZY = {"promote": "nbops.promotion.promote"}\n__version__ = "1"\n'


def test_an_import_of_the_package_root_is_what_the_root_loads(tmp_path):
    """`from .. import promote` inside runtime/ is an import of `promotion.promote` (the root's
    lazy map), however written; the root's own names (`__version__`) are free but in runtime."""
    sources = {**LAYERS, "__init__": INIT, "runtime.model": "from .. import promote\n", "core.params": "import nbops\nnbops.promote()\n"}
    known = fake_package(tmp_path, sources)
    lazy = lazy_names(tmp_path / "pkg" / "__init__.py")
    assert lazy == {"promote": "promotion.promote"}
    problems = check_package(read_table(LAYERS_TABLE), known, lazy)
    assert any("runtime/model.py:1: `runtime` imports `promotion`" in p for p in problems), problems
    assert any("core/params.py:1: `core` imports `promotion`" in p for p in problems), problems
    clean = fake_package(tmp_path / "clean", {**LAYERS, "__init__": INIT, "promotion.promote": "from .. import __version__\n"})
    assert not [p for p in check_package(read_table(LAYERS_TABLE), clean, lazy) if "promotion" in p.split(":")[0]]
    version = fake_package(tmp_path / "v", {**LAYERS, "__init__": INIT, "runtime.model": "from .. import __version__\n"})
    assert any("refers to `nbops.__version__`" in p for p in check_standalone(version, lazy)), "runtime took the root's name"


def test_string_imports_are_imports(tmp_path):
    """importlib.import_module, __import__, a lazy map's values, f-strings and `-m` command lines
    name modules too: each is checked like an import statement."""
    cases = {
        'import importlib\nimportlib.import_module("nbops.promotion.promote")\n': AT_IMPORT,
        'def f():\n    return __import__("nbops.promotion.promote")\n': LAZY,
        '_MAP = {"go": "nbops.promotion.promote"}\n': LAZY,
        'import importlib\ndef f(n):\n    return importlib.import_module(f"nbops.promotion.{n}")\n': LAZY,
        'import subprocess, sys\ndef f():\n    subprocess.run([sys.executable, "-m", "nbops.promotion.promote"])\n': LAZY,
        'import importlib\ndef f():\n    importlib.import_module("..promotion.promote", __package__)\n': LAZY,
    }
    for source, when in cases.items():
        known = fake_package(tmp_path / str(len(list(tmp_path.iterdir()))), {**LAYERS, "core.params": source})
        refs = references(source, ["core"], known, {})
        assert [(resolve(r.path, known, {})[0], r.when, r.form) for r in refs] in (
            [("promotion.promote", when, "string")], [("promotion", when, "string")]
        ), source
        problems = check_package(read_table(LAYERS_TABLE), known, {})
        assert any(re.search(r"`core` imports `promotion(\.promote)?`", p) for p in problems), (source, problems)
    not_modules = 'LOG = "nbops.served"\nNAME = "nbops.yml"\nDOC = "see nbops.promotion.promote"\n'
    assert references(not_modules, ["core"], fake_package(tmp_path / "n", LAYERS), {}) == []


def test_qualifiers_are_held(tmp_path):
    """`constants`, `lazily`, `types only` and `names` in the table are enforced; words the test
    cannot hold are an error of the table."""
    table = read_table(
        TABLE_HEAD + "| `core/` | x | nothing |\n| `core.params` | p | nothing |\n| `runtime/` | z | nothing |\n"
        "| `promotion/` | y | `core.params` (constants), `runtime` (`model`, lazily) |\n"
        "| `pipeline/` | w | `core.params` (`load`), `runtime` (types only) |\n"
    )
    good = {
        "promotion.promote": "from ..core.params import X, MAX_ROWS\ndef f():\n    from ..runtime import model\n    return model.load\n",
        "pipeline.run": "from typing import TYPE_CHECKING\nfrom ..core import params\nif TYPE_CHECKING:\n    from ..runtime.model import M\n"
                        "def f():\n    return params.load()\n",
    }
    known = fake_package(tmp_path / "good", {**LAYERS, **good})
    assert check_package(table, known, {}) == []
    bad = {
        "promotion.promote": "from ..core.params import X, read\nfrom ..runtime import model\nfrom ..runtime import shadow\n",
        "pipeline.run": "from ..core import params\nfrom ..runtime import model\nparams.dump()\nprint(params)\n",
    }
    problems = check_package(table, fake_package(tmp_path / "bad", {**LAYERS, **bad}), {})
    expected = [
        "promotion/promote.py:1: `promotion` takes `read` from `core.params`; its row allows only constants",
        "promotion/promote.py:2: `promotion` may import `runtime` only lazily",
        "promotion/promote.py:3: `promotion` takes `shadow` from `runtime`; its row allows only model",
        "pipeline/run.py:1: `pipeline` takes `dump` from `core.params`; its row allows only load",
        "pipeline/run.py:1: `pipeline` takes all of `core.params` (the module as a whole)",
        "pipeline/run.py:2: `pipeline` may import `runtime` for types only",
        "`pipeline` never takes `load` from `core.params`",
    ]
    for text in expected:
        assert any(text in p for p in problems), (text, problems)
    errors = table_errors(read_table(TABLE_HEAD + "| `a` | x | `b` (its parser), `c` (lazily; `run`) |\n| `b` | y | — |\n"))
    assert len(errors) == 1 and "`b` (its parser)" in errors[0]


def test_bench_and_examples_are_held_to_the_public_api(tmp_path):
    """Code outside nbops uses `nbops.__all__`, `nbops.testing` and subpackages' `__all__`; a
    bench's row names the internals it times, with qualifiers held as in the package."""
    known = fake_package(tmp_path, {
        **LAYERS, "__init__": INIT, "testing": "def run(): ...\n", "monitoring.__init__": '__all__ = ["monitor"]\n',
        "monitoring.accumulate": "class Acc: ...\n",
    })
    lazy = lazy_names(tmp_path / "pkg" / "__init__.py")
    public = {"": frozenset(["promote", "__version__"]), "testing": None, "monitoring": frozenset(["monitor"])}
    scripts = {
        "examples/ok.py": "import nbops\nnbops.promote()\nfrom nbops.testing import run\nfrom nbops.monitoring import monitor\n",
        "examples/story.ipynb": "import nbops.monitoring.accumulate\n",
        "examples/lazy.py": 'import importlib\ndef f():\n    importlib.import_module("nbops.core.params")\n',
        "bench/times.py": "from nbops.monitoring.accumulate import Acc\nfrom nbops.core.params import X\nfrom nbops.monitoring import _private\n",
        "bench/child.py": 'import subprocess, sys\nx = 1\nCODE = f"""\nimport nbops\nfrom nbops.core import params\nprint({x})\n"""\n'
                          'subprocess.run([sys.executable, "-c", CODE])\n',
    }
    rows = read_table("| script | times | may import (beyond the public API) |\n|---|---|---|\n"
                      "| `bench/times.py` | accumulating | `monitoring` (`accumulate`), `core.params` (lazily) |\n", "script")
    problems = check_outside(scripts, rows, known, lazy, public)
    assert not [p for p in problems if p.startswith("examples/ok.py")], problems
    for text in ("examples/story.ipynb:1: `nbops.monitoring.accumulate` is not nbops' public API",
                 "examples/lazy.py:3: `nbops.core.params` is not nbops' public API",
                 "bench/times.py:2: `bench/times.py` may import `core.params` only lazily",
                 "bench/times.py:3: `bench/times.py` takes `_private` from `monitoring`",
                 "bench/child.py:3: `nbops.core.params` is not nbops' public API"):
        assert any(text in p for p in problems), (text, problems)
    assert not [p for p in problems if "bench/times.py:1" in p], problems
    cells = {"cells": [{"cell_type": "code", "source": ["%load_ext nbops\n", "import nbops.core.params\n"]},
                       {"cell_type": "markdown", "source": "import nbops.core"}]}
    (tmp_path / "n.ipynb").write_text(json.dumps(cells), encoding="utf-8")
    assert script_source(tmp_path / "n.ipynb") == "import nbops.core.params\n"


def test_the_runtime_is_held_even_inside_functions(tmp_path):
    """runtime/: lazy imports of nbops, absolute imports of itself, strings naming nbops'
    modules and third-party imports at module level all fail; lazy third-party imports do not."""
    bad = (
        "import numpy\nimport sys\n"
        "def f():\n    from .. import promote\n    from nbops.core import params\n    import nbops.runtime.model\n"
        '    return sys.modules.get("nbops.core.params")\n'
        "try:\n    import orjson\nexcept ImportError:\n    pass\n"
    )
    known = fake_package(tmp_path, {**LAYERS, "__init__": INIT, "runtime.http": bad})
    problems = check_standalone(known, lazy_names(tmp_path / "pkg" / "__init__.py"))
    expected = ["http.py:1: `runtime.http` imports `numpy` at module level",
                "http.py:4: `runtime.http` refers to `nbops.promote` (relative, lazy)",
                "http.py:5: `runtime.http` refers to `nbops.core.params` (absolute, lazy)",
                "http.py:6: `runtime.http` imports itself as `nbops.…`",
                "http.py:7: `runtime.http` refers to `nbops.core.params` (string, lazy)",
                "http.py:9: `runtime.http` imports `orjson` at module level"]
    for text in expected:
        assert any(text in p for p in problems), (text, problems)
    assert len(problems) == len(expected), problems
    good = ("from typing import TYPE_CHECKING\nfrom . import model\nif TYPE_CHECKING:\n    import pandas\n"
            'def f():\n    import numpy\n    from .model import x\nLOG = "nbops.runtime"\n')
    known = fake_package(tmp_path / "good", {**LAYERS, "runtime.http": good})
    assert check_standalone(known, {}) == []
