"""JupyterLab in a real browser: Debian's headless Chromium, driven by Playwright's Python client,
on a reproduced copy of the example project with the notebook git filter set up (marked slow).

What a person sees: opening a committed notebook does not mark it modified; running all its
cells and saving leaves `dvc status` and `git status` clean; `nbops.promote(...)` in a cell shows
the card with the version, the registry and every gate with what it compared, left-aligned; a
refused one shows the card with the failed gates in red (a failed gate saying what it needed)
and a one-line error instead of a traceback through nbops, and so does `%nbops promote`; a
promote cell saved in a stage notebook reaches its paired script, and `nbops check` names it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from nbops.testing import PROJECT_FILES, command_env, copy_project, init_repo, run, set_params

from ..conftest import REPO

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: Flags that work on these machines: no sandbox as root, and no background connections, which
#: the closed network refuses (see .ci/run, which installs Debian's chromium).
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TOKEN = "nbops-browser-test"
MODEL = "failure-predictor"
LONG = 300_000  # ms: a shared 2-core machine runs cells and promotions slowly
#: The current notebook's kernel is idle (the app is exposed with --LabApp.expose_app_in_browser).
KERNEL_IDLE = """() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.status === 'idle'; }"""
#: Every code cell of the current notebook shows an execution count: "Run All" has finished.
ALL_RAN = """() => { const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputArea-prompt')];
  return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent)); }"""


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return "Debian's chromium is not installed (`apt-get install -y chromium`; .ci/run does it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright's Python client is not installed (`pip install playwright`, in nbops[test])"
    return None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_missing() is not None, reason=str(_missing()))]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """(project, env, page, base URL): the reproduced example, JupyterLab serving it, a browser tab."""
    home = tmp_path_factory.mktemp("lab")
    env = command_env(home)
    project = copy_project(REPO, home / "project", files=(*PROJECT_FILES, ".gitattributes"))
    set_params(project, {"ingest": {"window_days": 9}, "train": {"max_iter": 50},
                         "promote": {"thresholds": {"roc_auc": ">= 0.8", "recall": ">= 0.3"}, "tolerance": 0.0}})
    init_repo(project, env)
    run(["nbops", "git-filter"], project, env)  # the README's once-per-clone setup
    run(["dvc", "repro"], project, env)
    run(["git", "add", "-A"], project, env)
    run(["git", "commit", "-q", "-m", "reproduced"], project, env)
    assert run(["git", "status", "--porcelain"], project, env).stdout == ""

    dirs = {name: home / name for name in ("runtime", "config", "data", "settings", "workspaces")}
    for folder in dirs.values():
        folder.mkdir()
    news = dirs["settings"] / "@jupyterlab/apputils-extension/notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text('{"fetchNews": "false", "checkForUpdates": false}')
    lab_env = {**env, "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]), "JUPYTER_CONFIG_DIR": str(dirs["config"]),
               "JUPYTER_DATA_DIR": str(dirs["data"]), "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
               "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]), "NBOPS_REGISTRY": str(home / "registry")}
    log = open(home / "lab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1", "--port=0",
         f"--ServerApp.root_dir={project}", f"--IdentityProvider.token={TOKEN}", "--LabApp.expose_app_in_browser=True"],
        cwd=project, env=lab_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        port = _wait_for_port(dirs["runtime"], server, home / "lab.log")
        base = f"http://127.0.0.1:{port}"
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(LONG)
                yield project, env, page, base
            finally:
                browser.close()
    finally:
        _shut_down(server, base if "base" in locals() else None)
        log.close()


def _wait_for_port(runtime: Path, server: subprocess.Popen, log: Path) -> int:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        for info in runtime.glob("jpserver-*.json"):
            return int(json.loads(info.read_text())["port"])
        if server.poll() is not None:
            raise AssertionError(f"JupyterLab exited {server.returncode}:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    raise AssertionError(f"JupyterLab did not start in 180 s:\n{log.read_text()[-3000:]}")


def _shut_down(server: subprocess.Popen, base: str | None) -> None:
    """Ask the server to stop (it shuts its kernels down), else stop its process group."""
    if base is not None and server.poll() is None:
        request = urllib.request.Request(f"{base}/api/shutdown", method="POST", headers={"Authorization": f"token {TOKEN}"})
        try:
            urllib.request.urlopen(request, timeout=30).close()
            server.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            pass
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def open_notebook(page, base: str, path: str) -> None:
    page.goto(f"{base}/lab/tree/{path}?token={TOKEN}")
    page.wait_for_function(KERNEL_IDLE)
    time.sleep(2)  # Lab copies the kernel's language_info into the notebook once it is ready


def run_all(page) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()


def test_opening_a_committed_notebook_does_not_mark_it_modified(lab):
    project, env, page, base = lab
    open_notebook(page, base, "notebooks/featurize.ipynb")
    assert page.locator(".lm-TabBar-tab.jp-mod-dirty").count() == 0
    assert page.evaluate("() => window.jupyterapp.shell.currentWidget.context.model.dirty") is False


def test_run_all_and_save_leave_dvc_status_and_git_status_clean(lab):
    project, env, page, base = lab
    open_notebook(page, base, "notebooks/featurize.ipynb")
    run_all(page)
    page.wait_for_function(ALL_RAN)
    page.wait_for_function(KERNEL_IDLE)
    outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
    assert any("records into .nbops/scratch/featurize/" in text for text in outputs), outputs
    page.keyboard.press("Control+s")
    page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty")
    saved = json.loads((project / "notebooks/featurize.ipynb").read_text())
    assert any(cell.get("outputs") for cell in saved["cells"])  # the working copy keeps its outputs
    assert (project / ".nbops/scratch/featurize/data/features/train.csv").exists()  # what exploring wrote
    assert "up to date" in run(["dvc", "status"], project, env).stdout
    assert run(["git", "status", "--porcelain"], project, env).stdout == ""


def write_cells(path: Path, *sources: str) -> None:
    notebook = {
        "cells": [{"cell_type": "code", "execution_count": None, "id": f"cell-{i}", "metadata": {}, "outputs": [],
                   "source": source} for i, source in enumerate(sources)],
        "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}},
        "nbformat": 4, "nbformat_minor": 5,
    }
    path.write_text(json.dumps(notebook))


def test_promote_in_a_cell_shows_the_version_and_what_every_gate_compared(lab):
    project, env, page, base = lab
    write_cells(project / "promote.ipynb", f"import nbops\nnbops.promote({MODEL!r})")
    open_notebook(page, base, "promote.ipynb")
    run_all(page)
    card = page.locator(".nbops-card")
    card.wait_for()
    assert "promoted to staging as version 0.1.0" in card.locator("h2").inner_text()
    rows = {row.locator("td").nth(0).inner_text(): row for row in card.locator("tr.gate-pass, tr.gate-fail").all()}
    assert set(rows) == {"thresholds", "reports", "freshness", "clean-tree", "parity", "champion", "up-to-date"}
    assert card.locator("tr.gate-fail").count() == 0
    details = {name: row.locator("td").nth(2).inner_text() for name, row in rows.items()}
    assert all(details.values()), details  # every gate says what it compared
    metrics = json.loads((project / "metrics/evaluate.json").read_text())
    assert f"roc_auc {metrics['roc_auc']:g} ≥ 0.8 (stage 'evaluate')" in details["thresholds"]
    assert f"recall {metrics['recall']:g} ≥ 0.3 (stage 'evaluate')" in details["thresholds"]
    assert "no version in staging yet" in details["champion"]
    assert "sample rows: predictions and probabilities identical" in details["parity"]
    # JupyterLab right-aligns the tables of outputs; the card's own style must win there
    aligned = card.locator("td, th").evaluate_all("cells => [...new Set(cells.map(c => getComputedStyle(c).textAlign))]")
    assert aligned == ["left"], aligned
    assert f"Registry: {project.parent / 'registry'}" in card.locator("p").first.inner_text()


def test_a_refused_promotion_shows_the_card_with_failed_gates_in_red_not_a_traceback(lab):
    project, env, page, base = lab
    set_params(project, {"promote": {"thresholds": {"roc_auc": ">= 0.9999", "recall": ">= 0.3"}}})
    run_all(page)  # promote.ipynb is still open: the same cell, now refused
    page.locator(".nbops-card h2", has_text="refused").wait_for()
    card = page.locator(".nbops-card")
    assert "would have been version 0.2.0 in staging" in card.locator("h2").inner_text()
    failed = card.locator("tr.gate-fail")
    assert failed.count() == 1 and failed.locator("td").nth(0).inner_text() == "thresholds"
    assert failed.locator("td.fail").evaluate("e => getComputedStyle(e).color") == "rgb(207, 34, 46)"
    detail = failed.locator("td").nth(2).inner_text()
    assert "roc_auc is" in detail and ", needs ≥ 0.9999 (stage 'evaluate')" in detail, detail  # not "x >= 0.9999"
    assert "lineage is marked dirty" not in card.inner_text()  # nothing was written, so nothing was marked
    champion = card.locator("tr.gate-pass", has_text="champion").locator("td").nth(2).inner_text()
    assert "vs staging's" in champion and "(version 0.1.0)" in champion  # the champion's value, compared
    error = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
                         has_text="PromotionError").inner_text()
    assert error.startswith("PromotionError: promotion of 'failure-predictor' to staging refused")
    assert "Traceback" not in error and "nbops/" not in error and "File " not in error


def test_the_magic_shows_a_refusal_as_the_function_does(lab):
    """`%nbops promote` (still refused: the thresholds above) shows the card and the one-line
    PromotionError, not a UsageError that drops the card; a dry run says nothing was written."""
    project, env, page, base = lab
    write_cells(project / "magic.ipynb", "%load_ext nbops", f"%nbops promote {MODEL} --dry-run")
    open_notebook(page, base, "magic.ipynb")
    run_all(page)
    page.locator(".nbops-card h2", has_text="refused").wait_for()
    card = page.locator(".nbops-card")
    assert f"dry run: nothing was written to {project.parent / 'registry'}" in card.inner_text()
    assert card.locator("tr.gate-fail td").nth(0).inner_text() == "thresholds"
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
    assert len(errors) == 1 and errors[0].startswith("PromotionError: promotion of 'failure-predictor' to staging refused")
    assert "UsageError" not in errors[0] and "Traceback" not in errors[0]


def test_a_promote_cell_saved_in_a_stage_notebook_is_named_by_check(lab):
    """A promote cell tried in a stage notebook: saving writes it into the paired script the
    stage runs (the stage goes stale), and `nbops check` names the notebook, cell and line."""
    project, env, page, base = lab
    open_notebook(page, base, "notebooks/evaluate.ipynb")
    call = f"nbops.promote({MODEL!r})"
    cells = page.evaluate(f"""() => {{ const shared = window.jupyterapp.shell.currentWidget.context.model.sharedModel;
        shared.insertCell(shared.cells.length, {{cell_type: 'code', source: {call!r}}}); return shared.cells.length; }}""")
    page.keyboard.press("Control+s")
    page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty")
    assert call in (project / "notebooks/evaluate.py").read_text()  # jupytext wrote it into the script
    assert "evaluate" in run(["dvc", "status"], project, env).stdout  # the stage is stale
    checked = run(["nbops", "check"], project, env, check=False)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    [finding] = [line for line in checked.stdout.splitlines() if "[not-for-a-stage]" in line]
    script = (project / "notebooks/evaluate.py").read_text().splitlines()
    line = script.index(call) + 1
    assert finding.startswith(f"notebooks/evaluate.py:{line}: error: notebooks/evaluate.py (cell {cells}, line 1): `{call}`")
    page.evaluate("() => { const shared = window.jupyterapp.shell.currentWidget.context.model.sharedModel;"
                  " shared.deleteCell(shared.cells.length - 1); }")
    page.keyboard.press("Control+s")
    page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty")
    assert run(["git", "status", "--porcelain", "notebooks"], project, env).stdout == ""
