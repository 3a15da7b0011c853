"""What ties an executed report to one checkout: the project's absolute path in a cell's outputs.

A report holding `/home/ana/clones/project/...` differs from the same run in any other clone,
so `dvc.lock` changes on every checkout and DVC's run-cache and remote cache are never shared.
`nbops run` warns about such cells and `nbops check` flags them, naming each cell. Stdlib only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Cells papermill adds to a report (they are not the user's, and are not counted).
PAPERMILL_TAGS = ("injected-parameters", "papermill-error-cell-tag")


@dataclass(frozen=True)
class PathInOutput:
    cell: int  # 1-based, counting the notebook's own cells as `nbops run`'s errors do
    first_line: str  # of the cell's source
    path: str  # the absolute path found

    def message(self) -> str:
        return (
            f"cell {self.cell} (`{self.first_line}`) shows the project's absolute path {self.path}, "
            "so the report differs in every other checkout and dvc.lock changes with it; end the cell with `;` "
            "or show a path relative to the project"
        )

    def describe(self, report: str) -> str:
        return f"{report}: {self.message()}"


def project_paths(root: Path) -> list[str]:
    """The spellings of the project root a cell could print (as given, and with links resolved)."""
    spellings = {str(root), str(root.resolve())}
    return sorted((s for s in spellings if len(Path(s).parts) > 1), key=len, reverse=True)


def absolute_paths_in_outputs(nb: dict[str, Any], root: Path) -> list[PathInOutput]:
    """The cells whose outputs hold the project root's absolute path, one entry per cell."""
    spellings = project_paths(root)
    found = []
    number = 0
    for cell in nb.get("cells", []):
        tags = (cell.get("metadata") or {}).get("tags") or []
        if any(tag in tags for tag in PAPERMILL_TAGS):
            continue
        number += 1
        outputs = json.dumps(cell.get("outputs") or [], ensure_ascii=False)  # "/" is never escaped
        for spelling in spellings:
            # the root itself or a path inside it, not a sibling folder whose name starts the same
            if re.search(re.escape(spelling) + r"(?![\w.-])", outputs):
                found.append(PathInOutput(number, _first_line(cell.get("source", "")), spelling))
                break
    return found


def _first_line(source: Any) -> str:
    text = "".join(source) if isinstance(source, list) else str(source or "")
    for line in text.splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= 60 else line[:57] + "..."
    return ""
