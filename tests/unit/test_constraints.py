"""constraints.txt, the lock of the versions that produced the committed dvc.locks: it pins every
distribution the core and each extra of `.[dev]` ask for, at a version they accept, and the
README's quick start and CI install with it (`.ci/lock` regenerates it)."""

from __future__ import annotations

import re
import shlex
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from ..conftest import REPO

LOCK = REPO / "constraints.txt"
INSTALL = "pip install -c constraints.txt -e '.[dev]'"


def pinned() -> dict[str, Version]:
    pins = {}
    for number, line in enumerate(LOCK.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        assert match, f"constraints.txt:{number}: {line!r} is not NAME==VERSION (pip freeze --exclude-editable writes those)"
        pins[canonicalize_name(match[1])] = Version(match[2])
    return pins


def dev_requirements() -> list[Requirement]:
    """The core's requirements and those of every extra `.[dev]` reaches, through `nbops[...]`."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras, found, todo = project["optional-dependencies"], list(map(Requirement, project["dependencies"])), ["dev"]
    seen = set()
    while todo:
        extra = todo.pop()
        seen.add(extra)
        for text in extras[extra]:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == "nbops":
                todo += [e for e in requirement.extras if e not in seen]
            else:
                found.append(requirement)
    assert seen == set(extras), f"extras outside .[dev]: {sorted(set(extras) - seen)}"
    return found


def test_every_requirement_of_dev_is_pinned_at_a_version_it_accepts():
    pins = pinned()
    assert "nbops" not in pins
    for requirement in dev_requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"constraints.txt pins no {requirement.name} (pyproject.toml: {requirement}); run .ci/lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), \
            f"constraints.txt pins {name}=={pins[name]}, outside pyproject.toml's {requirement}; run .ci/lock"


def test_the_quick_start_and_ci_install_with_the_lock():
    readme = REPO.joinpath("README.md").read_text()
    block = readme.split("<!-- quickstart -->", 1)[1].split("```", 2)[1]
    install = [line for line in block.splitlines()[1:] if line.strip()][0]
    assert INSTALL in install
    ci = REPO.joinpath(".ci/run").read_text()
    [assigned] = re.findall(r'^install_and_run=(".*")$', ci, flags=re.M)
    assert shlex.split(assigned)[0] == install  # .ci/run also checks that the README shows its lines
