"""Calls a stage notebook must not make: a promotion or a monitoring run inside a notebook that
`dvc repro` runs (`nbops check`'s `not-for-a-stage`).

A stage runs at every reproduction, in CI too, and its report records what its cells showed: a
promotion there would publish (or be refused) at each run, from a pipeline not yet finished. It
happens by accident: a promote cell tried in a stage notebook in JupyterLab is autosaved into its
paired script, the stage goes stale, and the next promotion is refused for it. Found in every
form a cell writes them:

    nbops.promote("m")     import nbops as nb; nb.monitor(...)     from nbops import promote
    %nbops promote m       %nbops monitor m@production …
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Iterable

#: Each call a stage must not make, and what it does that makes it so (said in the finding).
NOT_FOR_A_STAGE = {
    "promote": "promotes a model (publishes a package version to the registry)",
    "monitor": "reads what a served model captured, from outside the pipeline",
}
_MAGIC = re.compile(r"^\s*%nbops\s+(" + "|".join(NOT_FOR_A_STAGE) + r")\b")


@dataclass(frozen=True)
class StageCall:
    name: str  # "promote"
    cell: int  # 1-based, among all the notebook's cells (as `nbops run` names cells)
    line: int  # 1-based, within the cell
    text: str  # the line as written

    def where(self) -> str:
        return f"cell {self.cell}, line {self.line}"


def calls_not_for_a_stage(cells: Iterable[tuple[int, str]]) -> list[StageCall]:
    """The calls of NOT_FOR_A_STAGE in `cells` ((0-based index, source) of each code cell), in
    order: `%nbops` magics, and calls through `import nbops` or `from nbops import …`."""
    from ..pipeline.stages import cell_python, nbops_bindings

    cells = list(cells)
    trees = {index: tree for index, source in cells if (tree := cell_python(source)) is not None}
    modules, functions = nbops_bindings(trees.values(), NOT_FOR_A_STAGE)
    found = []
    for index, source in cells:
        lines = source.splitlines()
        for number, text in enumerate(lines, 1):
            magic = _MAGIC.match(text)
            if magic:
                found.append(StageCall(magic[1], index + 1, number, text.strip()))
        for node in ast.walk(trees.get(index) or ast.Module(body=[], type_ignores=[])):
            name = _called(node, modules, functions)
            if name is not None:
                found.append(StageCall(name, index + 1, node.lineno, lines[node.lineno - 1].strip()))
    return sorted(found, key=lambda call: (call.cell, call.line))


def _called(node: ast.AST, modules: set[str], functions: dict[str, str]) -> str | None:
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in modules:
        return func.attr if func.attr in NOT_FOR_A_STAGE else None
    if isinstance(func, ast.Name):
        return functions.get(func.id)
    return None


def file_lines(calls: list[StageCall], text: str) -> list[int | None]:
    """Each call's line in a notebook's text form (a percent script, where jupytext writes a
    magic as `# %nbops …`), found in order; None where it cannot be found (an .ipynb)."""
    lines = [line.strip() for line in text.splitlines()]
    found: list[int | None] = []
    start = 0
    for call in calls:
        forms = {call.text, f"# {call.text}"}
        hit = next((i for i in range(start, len(lines)) if lines[i] in forms), None)
        found.append(None if hit is None else hit + 1)
        start = hit + 1 if hit is not None else start
    return found


def describe(call: StageCall, notebook: str, stage: str) -> str:
    return (
        f"{notebook} ({call.where()}): `{call.text}` {NOT_FOR_A_STAGE[call.name]}, and stage '{stage}' runs this "
        f"notebook at every `dvc repro`; move the cell to a notebook no stage runs, or run `nbops {call.name}` after "
        "`dvc repro` (README: where promote cells belong)"
    )
