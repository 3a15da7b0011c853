"""The git filter that keeps notebook outputs out of git, as `nbops init` and `nbops git-filter`
set it up in a clone. `python -m nbops.authoring.nbstripout` is the filter's command.

clean (what git stores): nbstripout — outputs, execution counts and volatile metadata dropped,
  cell ids renumbered `0`, `1`, … — plus `EXTRA_KEYS`, the fields that change when a notebook is
  merely opened, run or saved on another machine (the kernel's language version, jupytext's
  filters, collapsed state). The committed notebooks are exactly this filter's output.
smudge (what a checkout writes, `--smudge`): the stored notebook with this environment's
  `language_info`, exactly as its Python kernel reports it, so JupyterLab, which copies the
  kernel's `language_info` into the notebook when the kernel starts, finds nothing to change:
  opening a committed notebook does not mark it modified.

nbstripout imports nbformat, whose jsonschema, with the format extra JupyterLab installs,
compiles the rfc3987-syntax grammars on import (about 2 s here, against 0.5 s for the whole
filter without it); the filter runs on every `git status` touching a changed notebook, so it
skips that import (`_startup.skip_slow_optional_imports`; nbformat's schema uses no IRI formats).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

#: Notebook fields the filter drops beyond nbstripout's own (see the module's docstring).
EXTRA_KEYS = "metadata.language_info metadata.jupytext cell.metadata.jupyter cell.metadata.jp-MarkdownHeadingCollapsed"
#: What .gitattributes needs for the filter to apply (added by `install` when no line names it).
ATTRIBUTES = "*.ipynb filter=nbstripout\n*.ipynb diff=ipynb\n"


def language_info() -> dict[str, object]:
    """The `language_info` a Python kernel (ipykernel) of this interpreter reports (a test
    compares it with a real kernel's reply, so a change in ipykernel is caught)."""
    return {
        "codemirror_mode": {"name": "ipython", "version": sys.version_info[0]},
        "file_extension": ".py",
        "mimetype": "text/x-python",
        "name": "python",
        "nbconvert_exporter": "python",
        "pygments_lexer": "ipython3",
        "version": sys.version.split()[0],
    }


def smudge(data: bytes) -> bytes:
    """The working-copy form of a stored notebook: a Python notebook gets this interpreter's
    `language_info`; anything else (another language, not a notebook) passes through untouched."""
    try:
        nb = json.loads(data)
    except ValueError:
        return data
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list) or not isinstance(nb.get("metadata"), dict):
        return data
    kernelspec = nb["metadata"].get("kernelspec") or {}
    if not isinstance(kernelspec, dict) or kernelspec.get("language", "python") != "python":
        return data
    nb["metadata"]["language_info"] = language_info()
    # nbformat's own layout, as JupyterLab saves a notebook
    return (json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def filter_config(python: str | None = None) -> dict[str, str]:
    """The git configuration of the filter, run by `python` (default: this interpreter)."""
    command = f'"{Path(python or sys.executable).as_posix()}" -m nbops.authoring.nbstripout'
    return {
        "filter.nbstripout.clean": command,
        "filter.nbstripout.smudge": f"{command} --smudge",
        "filter.nbstripout.required": "true",
        # read by plain `nbstripout` too (the pre-commit hook), so it strips what the filter strips
        "filter.nbstripout.extrakeys": EXTRA_KEYS,
        "diff.ipynb.textconv": f"{command} -t",
    }


@dataclass
class InstallResult:
    root: Path
    config: dict[str, str]
    attributes_added: bool = False
    refreshed: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = ["set up the notebook filter in this clone's .git/config:"]
        lines += [f"  {key} = {value}" for key, value in self.config.items()]
        if self.attributes_added:
            lines.append("added to .gitattributes (commit it): " + ", ".join(ATTRIBUTES.strip().splitlines()))
        if self.refreshed:
            lines.append(f"checked out again through the filter (they were unmodified): {', '.join(self.refreshed)}")
        return "\n".join(lines)


def install(directory: str | Path = ".", python: str | None = None) -> InstallResult:
    """Set the filter up in the git repository around `directory` (its local config only), make
    sure .gitattributes applies it to notebooks, and check unmodified notebooks out again so their
    working copies are the smudged form."""
    import importlib.util

    from ..core.exceptions import ProjectError

    if importlib.util.find_spec("nbstripout") is None:
        raise ProjectError("the notebook filter needs nbstripout, which is not installed here: "
                           "`pip install nbstripout` (or nbops[lab]), then run this again")
    try:
        root = Path(_git(Path(directory), "rev-parse", "--show-toplevel").strip())
    except OSError:
        raise ProjectError(f"{directory}: not inside a git repository; `git init` first (or `nbops init`)") from None
    config = filter_config(python)
    for key, value in config.items():
        _git(root, "config", "--local", key, value)
    result = InstallResult(root, config)
    attributes = root / ".gitattributes"
    current = attributes.read_text(encoding="utf-8") if attributes.exists() else ""
    if "filter=nbstripout" not in current:
        separator = "" if not current or current.endswith("\n") else "\n"
        attributes.write_text(current + separator + ATTRIBUTES, encoding="utf-8")
        result.attributes_added = True
    result.refreshed = _refresh_unmodified(root)
    return result


def _refresh_unmodified(root: Path) -> list[str]:
    notebooks = [path for path in _git(root, "ls-files", "-z", "--", "*.ipynb").split("\0") if path]
    if not notebooks:
        return []
    attrs = _git(root, "check-attr", "-z", "--stdin", "filter", stdin="\0".join(notebooks) + "\0").split("\0")
    filtered = [attrs[i] for i in range(0, len(attrs) - 2, 3) if attrs[i + 2] == "nbstripout"]
    if not filtered:
        return []
    modified = set(_git(root, "diff", "--name-only", "-z", "--", *filtered).split("\0"))
    unmodified = [path for path in filtered if path not in modified and (root / path).exists()]
    if unmodified:
        for path in unmodified:  # a checkout skips files whose stat info git trusts
            (root / path).unlink()
        _git(root, "checkout", "--", *unmodified)
    return unmodified


def forget_cached_stat(path: str | Path) -> bool:
    """After a save, make git compare the notebook at `path` through the filter again.

    Git takes a tracked file whose size differs from the size it cached in its index as
    modified without running the clean filter, so a notebook saved with outputs shows as
    modified in `git status` although what git would store is unchanged (`git diff` is empty).
    Resetting the entry's cached stat data to unknown — the same blob, so nothing is staged —
    makes git read the file through the filter and decide by its content. Only for a tracked,
    unconflicted notebook the filter applies to; False when there was nothing to do."""
    path = Path(path).resolve()
    try:
        root = Path(_git(path.parent, "rev-parse", "--show-toplevel").strip())
        relative = path.relative_to(root).as_posix()
        attr = _git(root, "check-attr", "-z", "filter", "--", relative).split("\0")
        if len(attr) < 3 or attr[2] != "nbstripout":
            return False
        entry = _git(root, "ls-files", "-s", "--", relative).splitlines()
        if len(entry) != 1:
            return False  # untracked, or in a merge conflict
        mode, blob, stage = entry[0].split("\t", 1)[0].split()
        if stage != "0":
            return False
        _git(root, "update-index", "--cacheinfo", f"{mode},{blob},{relative}")
    except (OSError, ValueError):
        return False
    return True


def _git(root: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=root, input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        raise OSError(f"`git {' '.join(args[:3])}` failed in {root}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def main() -> None:
    if sys.argv[1:] == ["--smudge"]:
        sys.stdout.buffer.write(smudge(sys.stdin.buffer.read()))
        return
    from ..core._startup import skip_slow_optional_imports

    skip_slow_optional_imports()
    from nbstripout._nbstripout import main as nbstripout_main

    if "--extra-keys" not in sys.argv:
        sys.argv[1:1] = ["--extra-keys", EXTRA_KEYS]
    nbstripout_main()


if __name__ == "__main__":
    main()
