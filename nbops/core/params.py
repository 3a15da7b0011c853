"""params.yaml sections, a notebook's `parameters` cell, and the check that the two fit.

params.yaml is the single source of truth for a stage; the notebook's `parameters` cell only
holds defaults for interactive work. Only names the cell defines may be injected, and a value
must have the type of the cell's default (an int where a float is expected is fine).
"""

from __future__ import annotations

import ast
import difflib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from .exceptions import NotebookError, ParamsError

PARAMETERS_TAG = "parameters"
TAGGING_HINT = (
    "tag the cell that holds your defaults `parameters` "
    "(JupyterLab: select the cell, open the property inspector (gear icon, right sidebar) "
    "and add the tag `parameters`)"
)

TEXT_TAGGING_HINT = (
    'mark the cell that holds your defaults `# %% tags=["parameters"]` '
    "(or tag it `parameters` in the paired .ipynb in JupyterLab)"
)

_BASE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _ParamsLoader(_BASE_LOADER):  # type: ignore[misc, valid-type]
    """PyYAML's speed with YAML 1.2 core-schema scalars, as DVC (ruamel.yaml) reads params.yaml:
    `on`, `yes` and `no` stay strings, `1e-3` is a float, `0755` is 755. Dates stay the strings
    the user wrote (a `datetime.date` could not be injected into a notebook nor written as JSON),
    and a duplicate key is an error, not a silent override."""


_ParamsLoader.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in (
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("merge", r"^(?:<<)$", "<"),  # `<<: *base`: DVC (ruamel) reads merge keys too
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (
        "float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+0123456789.",
    ),
):
    _ParamsLoader.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", re.compile(_pattern), list(_first))


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    if text.startswith(("0o", "0x")):
        return int(text[2:], 8 if text[1] == "o" else 16)
    return int(text, 10)


_ParamsLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    own = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE_TAG)
    loader.flatten_mapping(node)  # merged entries first, then the mapping's own (which override them)
    merged = len(node.value) - own
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value[:merged]:
        mapping[loader.construct_object(key_node, deep=True)] = loader.construct_object(value_node, deep=True)
    seen: set[Any] = set()
    for key_node, value_node in node.value[merged:]:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_ParamsLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_text(path: str | os.PathLike[str], shown: str | None = None) -> str:
    """A project file's text (UTF-8); what keeps it from being read is a ParamsError naming it."""
    shown = shown or str(path)
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"{shown}: file not found") from None
    except IsADirectoryError:
        raise ParamsError(f"{shown}: is a folder, not a file; it must be a YAML file (remove or rename the folder)") from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ParamsError(
            f"{shown}:{line}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x}); save the file as UTF-8"
        ) from None
    except OSError as exc:
        raise ParamsError(f"{shown}: cannot read it ({exc.strerror or exc})") from None


def load_yaml(path: str | os.PathLike[str], *, missing_ok: bool = True, shown: str | None = None) -> dict[str, Any]:
    """Read a YAML mapping; a syntax error names the file (as `shown`), line and column."""
    path = Path(path)
    if missing_ok and not path.exists() and not path.is_symlink():
        return {}
    return parse_yaml(read_text(path, shown or str(path)), shown or str(path))


def parse_yaml(text: str, filename: str) -> dict[str, Any]:
    try:
        data = yaml.load(text, Loader=_ParamsLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else filename
        problem = exc.problem or exc.context or "invalid YAML"
        raise ParamsError(f"{where}: {problem} (fix the YAML syntax at that line)") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{filename}: invalid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParamsError(f"{filename}: expected a mapping of sections at the top, got {type(data).__name__}")
    return data


def parse_value(text: str) -> Any:
    """A `-p KEY=VALUE` value, typed as YAML types it (`3` is an int, `true` a bool)."""
    try:
        return yaml.load(text, Loader=_ParamsLoader)  # noqa: S506
    except yaml.YAMLError:
        return text


class _Empty:
    """The value of `-p KEY=` (nothing after `=`): not the same as `-p KEY=null`."""

    def __repr__(self) -> str:
        return "<empty>"


EMPTY = _Empty()


def parse_overrides(pairs: Iterable[str]) -> dict[str, Any]:
    """`-p KEY=VALUE` pairs as {KEY: value}; `-p KEY=` gives EMPTY (see `check_values`)."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ParamsError(f"-p {pair!r}: expected KEY=VALUE, e.g. -p n_estimators=200")
        overrides[key.strip()] = parse_value(value) if value.strip() else EMPTY
    return overrides


def load_params(path: str | os.PathLike[str], shown: str | None = None) -> tuple[dict[str, Any], set[tuple[str, str]]]:
    """params.yaml's sections ({} when there is no file) and the (section, name) of every value
    left empty (`n:`)."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return {}, set()
    text = read_text(path, shown or str(path))
    return parse_yaml(text, shown or str(path)), empty_values(text)


def empty_values(text: str) -> set[tuple[str, str]]:
    """(section, name) of every value params.yaml leaves empty (`n:`), which YAML reads as null
    like an explicit `null`, though the user most likely forgot to write it."""
    try:
        root = yaml.compose(text, Loader=_ParamsLoader)  # noqa: S506
    except yaml.YAMLError:
        return set()
    found: set[tuple[str, str]] = set()
    if not isinstance(root, yaml.MappingNode):
        return found
    for section_node, section in root.value:
        if not isinstance(section, yaml.MappingNode):
            continue
        for key_node, value in section.value:
            if isinstance(value, yaml.ScalarNode) and value.tag.endswith(":null") and value.value == "" and not value.style:
                found.add((str(section_node.value), str(key_node.value)))
    return found


def stage_section(params: dict[str, Any], stage: str, filename: str = "params.yaml") -> dict[str, Any]:
    section = params.get(stage, {})
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ParamsError(
            f"{filename}: section '{stage}' must be a mapping of parameter names to values, "
            f"got {type(section).__name__}"
        )
    return section


# --- the notebook side ---------------------------------------------------------------------


class _Unknown:
    """Default that is not a literal (e.g. `Path("data")`): any value type is accepted."""

    def __repr__(self) -> str:
        return "<expression>"


UNKNOWN = _Unknown()


@dataclass(frozen=True)
class Parameter:
    name: str
    default: Any  # the literal default, or UNKNOWN
    source: str  # the default as written in the cell


@dataclass(frozen=True)
class ParametersCell:
    index: int
    source: str
    parameters: dict[str, Parameter]


def load_notebook(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A notebook as plain JSON: an `.ipynb` file as it is, any other file (a jupytext text
    notebook such as the percent script `notebooks/train.py` paired with `train.ipynb`) read
    with jupytext, imported only then.

    A text notebook gets stable cell ids (`cell-0`, `cell-1`, …) and no `jupytext` metadata, so
    a report executed from it does not change between runs or jupytext versions.
    """
    if Path(path).suffix == ".ipynb":
        return read_notebook_json(path)
    return read_text_notebook(path)


def read_text_notebook(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A jupytext text notebook (percent or light script, Markdown, …) as notebook JSON."""
    if not Path(path).is_file():
        raise NotebookError(f"{path}: notebook not found")
    try:
        from ._startup import without_unused_extras

        with without_unused_extras():
            import jupytext
    except ImportError:  # pragma: no cover - jupytext is a core dependency
        raise NotebookError(f"{path}: reading a text notebook needs jupytext (pip install jupytext)") from None
    try:
        nb = jupytext.read(path)
    except Exception as exc:  # noqa: BLE001 - jupytext raises many kinds; name the file
        raise NotebookError(f"{path}: jupytext cannot read it as a notebook ({type(exc).__name__}: {exc})") from None
    data = json.loads(json.dumps(nb))
    (data.get("metadata") or {}).pop("jupytext", None)
    for index, cell in enumerate(data.get("cells", [])):
        cell["id"] = f"cell-{index}"
    return data


def read_notebook_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The notebook as plain JSON (no nbformat import: this runs on fast paths)."""
    try:
        with open(path, encoding="utf-8") as handle:
            nb = json.load(handle)
    except FileNotFoundError:
        raise NotebookError(f"{path}: notebook not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NotebookError(f"{path}: not a valid notebook file ({exc})") from None
    except OSError as exc:
        raise NotebookError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if isinstance(nb, dict) and "worksheets" in nb or (isinstance(nb, dict) and isinstance(nb.get("nbformat"), int) and nb["nbformat"] < 4):
        raise NotebookError(
            f"{path}: an nbformat {nb.get('nbformat', 3)} notebook, which nbops does not run; convert it to nbformat 4 "
            f"with `jupyter nbconvert --to notebook --nbformat 4 --inplace {path}` (or open and save it in JupyterLab)"
        )
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise NotebookError(f"{path}: not a Jupyter notebook (no 'cells' list)")
    for number, cell in enumerate(nb["cells"], start=1):
        if not isinstance(cell, dict) or "cell_type" not in cell:
            raise NotebookError(f"{path}: cell {number} is not a notebook cell (no `cell_type`); fix or delete it")
        if "source" not in cell:
            raise NotebookError(
                f'{path}: cell {number} has no `source` (every cell needs one, even empty); add "source": "" to it'
            )
    return nb


def cell_source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def parameters_cells(nb: dict[str, Any]) -> list[int]:
    """Indexes of the code cells tagged `parameters`."""
    return [
        index for index, cell in enumerate(nb["cells"])
        if cell.get("cell_type") == "code" and PARAMETERS_TAG in ((cell.get("metadata") or {}).get("tags") or [])
    ]


def find_parameters_cell(nb: dict[str, Any], path: str | os.PathLike[str]) -> ParametersCell | None:
    """The code cell tagged `parameters`, parsed; None when there is none. Two tagged cells are
    an error: papermill injects params.yaml's values after the first, so the second would
    silently override them."""
    tagged = parameters_cells(nb)
    if not tagged:
        return None
    if len(tagged) > 1:
        numbers = [str(i + 1) for i in tagged]
        listed = ", ".join(numbers[:-1]) + f" and {numbers[-1]}"
        raise NotebookError(
            f"{path}: cells {listed} are all tagged `{PARAMETERS_TAG}`, but params.yaml's values are injected after "
            f"cell {numbers[0]} only, so cell {numbers[1]} would override them; move its assignments into cell "
            f"{numbers[0]} and remove its `{PARAMETERS_TAG}` tag"
        )
    index = tagged[0]
    source = cell_source(nb["cells"][index])
    return ParametersCell(index, source, parse_parameters(source, f"{path} (cell {index + 1})"))


def require_parameters_cell(nb: dict[str, Any], path: str | os.PathLike[str]) -> ParametersCell:
    found = find_parameters_cell(nb, path)
    if found is None:
        hint = TEXT_TAGGING_HINT if Path(path).suffix not in ("", ".ipynb") else TAGGING_HINT
        raise NotebookError(f"{path}: no cell is tagged `{PARAMETERS_TAG}`; {hint}")
    return found


def parse_parameters(source: str, where: str) -> dict[str, Parameter]:
    """Top-level `name = literal` and `name: type = literal` assignments of a parameters cell."""
    # IPython magics (`%matplotlib inline`) are not Python; they never define parameters.
    lines = [line if not line.lstrip().startswith(("%", "!")) else "" for line in source.splitlines()]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError as exc:
        raise NotebookError(f"{where}: the parameters cell is not valid Python: {exc.msg} (line {exc.lineno})") from None
    text = "\n".join(lines)
    found: dict[str, Parameter] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            value = node.value
            for target in node.targets:
                found.update(_assigned(target, value, text))
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            found.update(_assigned(node.target, node.value, text))
    return found


def _assigned(target: ast.expr, value: ast.expr, text: str) -> dict[str, Parameter]:
    """The parameters one assignment target defines: `n = 3`, and `a, b = 1, 2` (each name gets
    its own value, as papermill can inject each on its own line)."""
    if isinstance(target, ast.Name):
        return {target.id: Parameter(target.id, _literal(value), ast.get_source_segment(text, value) or "")}
    if isinstance(target, (ast.Tuple, ast.List)) and all(isinstance(e, ast.Name) for e in target.elts):
        names = [e.id for e in target.elts]  # type: ignore[attr-defined]
        if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(names) and not any(
            isinstance(e, ast.Starred) for e in value.elts
        ):
            return {n: Parameter(n, _literal(v), ast.get_source_segment(text, v) or "") for n, v in zip(names, value.elts)}
        source = ast.get_source_segment(text, value) or ""
        return {n: Parameter(n, UNKNOWN, source) for n in names}
    return {}


def _literal(value: ast.expr) -> Any:
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError):
        return UNKNOWN


def type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def fits(default: Any, value: Any) -> bool:
    """Whether `value` may replace `default`; None is always allowed (an explicit `null`)."""
    if value is None or default is None or default is UNKNOWN:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    if isinstance(default, dict):
        return isinstance(value, dict)
    return True


def check_values(
    values: dict[str, Any],
    parameters: dict[str, Parameter],
    *,
    notebook: str,
    origin: str,
    empty: Iterable[str] = (),
) -> None:
    """Raise ParamsError listing every unknown name and every ill-typed value in `values`.

    `origin` says where the values came from, e.g. "params.yaml section 'train'"; `empty` names
    the values given as nothing at all (`n:`, `-p n=`), refused where the default is a value.
    """
    problems: list[str] = []
    unknown = sorted((name for name in values if name not in parameters), key=str)
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(str(name), list(parameters), n=1)
            hints.append(f"{name} (did you mean {close[0]}?)" if close else str(name))
        accepted = ", ".join(sorted(parameters)) or "none"
        problems.append(
            f"{origin} sets {', '.join(hints)}, which {notebook} does not define in its parameters cell "
            f"(it accepts: {accepted})"
        )
    empty = set(empty) | {name for name, value in values.items() if value is EMPTY}
    for name, value in values.items():
        value = None if value is EMPTY else value
        parameter = parameters.get(name)
        if parameter is None:
            continue
        if name in empty and value is None and empty_refused(parameter):
            problems.append(
                f"{origin}: parameter '{name}' has no value but {notebook} expects {type_name(parameter.default)} "
                f"(its default is {parameter.source}); write the value, or `null` if you mean None"
            )
        elif not fits(parameter.default, value):
            problems.append(
                f"{origin}: parameter '{name}' is {value!r} ({type_name(value)}) but {notebook} expects "
                f"{type_name(parameter.default)} (its default is {parameter.source})"
            )
    if problems:
        raise ParamsError("; ".join(problems))


def empty_refused(parameter: Parameter) -> bool:
    """An empty value (YAML reads `n:` as null) is most likely a forgotten one where the default
    is a value; where the default is None or an expression it is taken as null."""
    return parameter.default is not None and parameter.default is not UNKNOWN
