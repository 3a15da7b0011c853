"""Bad inputs to `nbops run` (the CLI, in a subprocess): each gets one line naming the file, the
parameter or the cell and the fix; a run stopped from outside or by its time limit fails like a
failed cell, and no process of its kernel outlives it. Real kernels where a kernel is involved."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nbops.testing import run, write_notebook

from .test_run import assert_one_line_error, nbops_run, output_text, write_params


def nbops_popen(project: Path, env, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(["nbops", "run", "-q", *args], cwd=project, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie left for an init that does not reap is dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_for(path: Path, seconds: float = 120) -> str:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


#: A cell that starts a child process (its pid in child.pid, its own in kernel.pid), then hangs.
HANGS = [
    "import nbops, os, subprocess\nnbops.log_metric('before', 1)\n"
    "child = subprocess.Popen(['sleep', str(seconds)])\n"
    "open('kernel.pid', 'w').write(str(os.getpid()))\nopen('child.pid', 'w').write(str(child.pid))",
    "import time\ntime.sleep(seconds)",
    "print('never reached')",
]


@pytest.fixture
def hangs(nb_project: Path) -> Path:
    write_notebook(nb_project / "notebooks/hangs.ipynb", ["seconds = 600"], body=HANGS)
    return nb_project


def assert_stopped_and_cleaned(project: Path, result_stderr: str, *fragments: str) -> None:
    """The one line, the partial report marking cell 3 failed, nothing recorded left, no process left."""
    lines = [line for line in result_stderr.strip().splitlines() if line.startswith("nbops: error:")]
    assert len(lines) == 1 and "Traceback" not in result_stderr, result_stderr
    for fragment in ("notebooks/hangs.ipynb: ", "while running cell 3 (`import time`)",
                     "the kernel and its processes were stopped and what the run recorded removed",
                     "partial report: reports/hangs.ipynb", *fragments):
        assert fragment in lines[0], lines[0]
    report = json.loads((project / "reports/hangs.ipynb").read_text())
    cells = [c for c in report["cells"] if "injected-parameters" not in c["metadata"].get("tags", [])]
    assert cells[2]["metadata"]["papermill"]["status"] == "failed"
    assert [o["output_type"] for o in cells[2]["outputs"]] == ["error"]
    assert cells[3]["metadata"]["papermill"]["status"] == "pending"
    assert report["metadata"]["papermill"]["exception"] is True
    assert not (project / "metrics/hangs.json").exists()  # the run had recorded it
    assert not (project / ".nbops").exists()  # nor its journal
    for pid_file in ("kernel.pid", "child.pid"):
        pid = int((project / pid_file).read_text())
        deadline = time.time() + 10
        while alive(pid) and time.time() < deadline:
            time.sleep(0.05)
        assert not alive(pid), f"{pid_file}: process {pid} outlived the run"


# --- params.yaml and -p -----------------------------------------------------------------------


@pytest.mark.parametrize("make, fragments", [
    (lambda p: p.write_bytes(b"typed_parameters:\n  an_int: \xff\n"), ["params.yaml:2: not UTF-8 text (byte 0xff); save the file as UTF-8"]),
    (lambda p: p.mkdir(), ["params.yaml: is a folder, not a file"]),
    (lambda p: p.write_text("typed_parameters:\n  1: 2\n  b: 3\n"), ["sets 1, b, which notebooks/typed_parameters.ipynb does not define"]),
    (lambda p: p.write_text("typed_parameters:\n  an_int:\n"),
     ["parameter 'an_int' has no value but notebooks/typed_parameters.ipynb expects int (its default is 1); "
      "write the value, or `null` if you mean None"]),
    (lambda p: p.write_text("nbops:\n  timeout: soon\n"), ["params.yaml: nbops.timeout is 'soon'; write a positive number"]),
])
def test_params_yaml_problems_are_one_line(nb_project, env, make, fragments):
    (nb_project / "params.yaml").unlink()
    make(nb_project / "params.yaml")
    assert_one_line_error(nbops_run(nb_project, env, "notebooks/typed_parameters.ipynb"), *fragments)
    assert not (nb_project / "reports").exists()


@pytest.mark.parametrize("args, fragment", [
    (["-p", "an_int="], "-p: parameter 'an_int' has no value but notebooks/typed_parameters.ipynb expects int"),
    (["--timeout", "0"], "--timeout is '0'; write a positive number of seconds or a duration such as 90s, 15m or 2h"),
    (["--stage", "nbops"], "stage name 'nbops' is reserved: params.yaml's `nbops:` section holds nbops' own settings"),
])
def test_command_line_problems_are_one_line(nb_project, env, args, fragment):
    assert_one_line_error(nbops_run(nb_project, env, "notebooks/typed_parameters.ipynb", *args), fragment)


# --- the notebook -----------------------------------------------------------------------------


def _notebook_with(nb_project: Path, name: str, change) -> str:
    nb = json.loads((nb_project / "notebooks/typed_parameters.ipynb").read_text())
    change(nb)
    (nb_project / f"notebooks/{name}.ipynb").write_text(json.dumps(nb))
    return f"notebooks/{name}.ipynb"


def _second_parameters_cell(source: str):
    def change(nb):
        nb["cells"].append({"cell_type": "code", "execution_count": None, "id": "again", "metadata": {"tags": ["parameters"]},
                            "outputs": [], "source": source})
    return change


@pytest.mark.parametrize("change, params, fragments", [
    (lambda nb: nb["cells"][1].pop("source"), "", ["cell 2 has no `source` (every cell needs one, even empty)"]),
    (lambda nb: nb.update(nbformat=3, worksheets=[{"cells": nb.pop("cells")}]), "",
     ["an nbformat 3 notebook", "jupyter nbconvert --to notebook --nbformat 4 --inplace notebooks/bad.ipynb"]),
    (lambda nb: nb["cells"][0].update(source="an_int = = 1"), "", ["notebooks/bad.ipynb (cell 1): the parameters cell is not valid Python"]),
    # a second parameters cell overriding the injected value: params.yaml says 5, it would say 10
    (_second_parameters_cell("an_int = 10"), "bad:\n  an_int: 5\n", ["cells 1 and 3 are all tagged `parameters`", "cell 3 would override them"]),
    # a name defined only in a second parameters cell
    (_second_parameters_cell("extra = 1"), "bad:\n  extra: 2\n", ["cells 1 and 3 are all tagged `parameters`", "move its assignments into cell 1"]),
])
def test_notebook_problems_are_one_line(nb_project, env, change, params, fragments):
    notebook = _notebook_with(nb_project, "bad", change)
    write_params(nb_project, params)
    assert_one_line_error(nbops_run(nb_project, env, notebook), f"{notebook}", *fragments)
    assert not (nb_project / "reports").exists()


def test_tuple_parameters_and_merge_keys_run(nb_project, env):
    write_notebook(nb_project / "notebooks/pair.ipynb", ["a, b = 1, 2"], body=["print(a + b)"])
    write_params(nb_project, "base: &base\n  a: 10\npair:\n  <<: *base\n  b: 20\n")
    nbops_run(nb_project, env, "notebooks/pair.ipynb", check=True)
    assert output_text(nb_project / "reports/pair.ipynb", 2) == "30\n"


def test_a_failure_printed_only_to_stderr_names_the_cell(nb_project, env):
    write_notebook(nb_project / "notebooks/magic.ipynb", ["n = 1"], body=["print(n)", "%no_such_magic", "print('after')"])
    result = nbops_run(nb_project, env, "notebooks/magic.ipynb")
    assert_one_line_error(result, "notebooks/magic.ipynb failed in cell 3 (`%no_such_magic`)",
                          "UsageError: Line magic function `%no_such_magic` not found",
                          "partial report: reports/magic.ipynb")


def test_running_another_file_than_the_stage_runs_names_it(nb_project, env):
    (nb_project / "dvc.yaml").write_text(
        "stages:\n  typed_parameters:\n    cmd: nbops run notebooks/typed_parameters.py\n"
        "    deps:\n      - notebooks/typed_parameters.py\n")
    result = nbops_run(nb_project, env, "notebooks/typed_parameters.ipynb")
    assert_one_line_error(
        result, "notebooks/typed_parameters.ipynb: stage 'typed_parameters' in dvc.yaml runs notebooks/typed_parameters.py",
        "run `nbops run notebooks/typed_parameters.py` (or `dvc repro typed_parameters`)")
    assert not (nb_project / "reports").exists()


# --- where the report goes ----------------------------------------------------------------------


@pytest.mark.parametrize("output, fragment", [
    ("reports", "-o reports: is a folder; give the report's file name, e.g. -o reports/typed_parameters.ipynb"),
    ("out/", "-o out/: is a folder; give the report's file name, e.g. -o out/typed_parameters.ipynb"),
    ("afile/x.ipynb", "-o afile/x.ipynb: afile is a file, not a folder; choose another path"),
    ("report.txt", "-o report.txt: the report is a notebook; give a path ending in .ipynb, e.g. -o report.ipynb"),
])
def test_bad_output_paths(nb_project, env, output, fragment):
    (nb_project / "reports").mkdir()
    (nb_project / "afile").write_text("")
    assert_one_line_error(nbops_run(nb_project, env, "notebooks/typed_parameters.ipynb", "-o", output), fragment)
    assert list((nb_project / "reports").iterdir()) == [] and not (nb_project / "out").exists()


def test_output_into_a_missing_folder_creates_it(nb_project, env):
    nbops_run(nb_project, env, "notebooks/typed_parameters.ipynb", "-o", "out/new/run.ipynb", check=True)
    assert '"an_int": 1' in output_text(nb_project / "out/new/run.ipynb", 1)  # no injected cell: params.yaml is empty


def _without_root_override() -> None:
    """For root, drop the capabilities that ignore file permissions (so that a read-only folder is
    read-only to the command as to any user); runs in the child before exec."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.mark.parametrize("read_only, fragment", [
    ("reports", "reports/typed_parameters.ipynb: cannot write into reports/ (Permission denied); make it writable (chmod u+w reports)"),
    ("reports/typed_parameters.ipynb",
     "reports/typed_parameters.ipynb: cannot write the report reports/typed_parameters.ipynb (Permission denied); "
     "make it writable (chmod u+w reports/typed_parameters.ipynb)"),
    (".", "cannot write .nbops/ in the project folder (Permission denied)"),
])
def test_read_only_places_are_named(nb_project, env, read_only, fragment):
    (nb_project / "reports").mkdir()
    (nb_project / "reports/typed_parameters.ipynb").write_text("{}")
    target = nb_project / read_only
    mode = target.stat().st_mode
    target.chmod(0o555 if target.is_dir() else 0o444)
    try:
        result = subprocess.run(["nbops", "run", "-q", "notebooks/typed_parameters.ipynb"], cwd=nb_project, env=env,
                                capture_output=True, text=True, timeout=300,
                                preexec_fn=_without_root_override if os.geteuid() == 0 else None)
    finally:
        target.chmod(mode)
    if os.geteuid() == 0 and "Traceback" not in result.stderr and result.returncode == 0:
        pytest.skip("running as root without the capability to drop file-permission overrides")
    assert_one_line_error(result, fragment)
    assert (nb_project / "reports/typed_parameters.ipynb").read_text() == "{}"


# --- stopping a run: signals and time limits (real kernels) ---------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_the_run_like_a_failed_cell(hangs, env, signum):
    proc = nbops_popen(hangs, env, "notebooks/hangs.ipynb")
    wait_for(hangs / "child.pid")
    time.sleep(0.5)  # into cell 3's sleep
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum
    assert_stopped_and_cleaned(hangs, stderr, f"stopped by {signal.Signals(signum).name}")


def test_ctrl_c_prints_one_line_and_the_report_says_interrupted(hangs, env):
    proc = nbops_popen(hangs, env, "notebooks/hangs.ipynb")
    wait_for(hangs / "child.pid")
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert stderr.count("\n") == 1, stderr  # no asyncio traceback
    assert_stopped_and_cleaned(hangs, stderr, "interrupted (Ctrl-C)")
    report = json.loads((hangs / "reports/hangs.ipynb").read_text())
    [error] = [o for c in report["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert error["ename"] == "KeyboardInterrupt" and "interrupted (Ctrl-C)" in error["evalue"]


@pytest.mark.parametrize("where", ["params.yaml", "command line"])
def test_a_hung_cell_times_out(hangs, env, where):
    args = ["--timeout", "3"] if where == "command line" else []
    write_params(hangs, "hangs:\n  seconds: 600\nnbops:\n  timeout: 1h\n  stages:\n    hangs:\n      timeout: 3s\n"
                 if where == "params.yaml" else "")
    started = time.monotonic()
    result = nbops_run(hangs, env, "notebooks/hangs.ipynb", *args)
    assert time.monotonic() - started < 60
    origin = "--timeout 3" if where == "command line" else "params.yaml: nbops.stages.hangs.timeout"
    assert result.returncode == 1
    assert_stopped_and_cleaned(hangs, result.stderr, f"timed out after 3 s (the limit set by {origin})")
    report = json.loads((hangs / "reports/hangs.ipynb").read_text())
    [error] = [o for c in report["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert error["ename"] == "TimeoutError"


def test_a_kernel_that_never_starts_times_out(nb_project, env, tmp_path):
    """A kernelspec whose process never answers (and starts a child): the start-up limit stops
    both, and no cell is said to have run."""
    spec = tmp_path / "jupyter/kernels/stuck"
    spec.mkdir(parents=True)
    script = ("import os, signal, subprocess, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
              "child = subprocess.Popen(['sleep', '600']); "
              f"open({str(tmp_path / 'stuck.pid')!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}'); time.sleep(600)")
    (spec / "kernel.json").write_text(json.dumps(
        {"argv": [sys.executable, "-c", script, "{connection_file}"], "display_name": "stuck", "language": "python"}))
    env = {**env, "JUPYTER_PATH": str(tmp_path / "jupyter")}
    result = nbops_run(nb_project, env, "notebooks/typed_parameters.ipynb", "--kernel", "stuck", "--start-timeout", "2")
    assert_one_line_error(result, "notebooks/typed_parameters.ipynb: the kernel 'stuck' did not start within 2 s",
                          "set by --start-timeout 2", "its processes were stopped and no cell ran")
    for pid in map(int, (tmp_path / "stuck.pid").read_text().split()):
        deadline = time.time() + 10
        while alive(pid) and time.time() < deadline:
            time.sleep(0.05)
        assert not alive(pid)
    assert not (nb_project / ".nbops").exists() and not (nb_project / "reports/typed_parameters.ipynb").exists()


def test_a_successful_run_leaves_no_process_behind(nb_project, env):
    write_notebook(nb_project / "notebooks/spawns.ipynb", ["seconds = 600"], body=[HANGS[0]])
    nbops_run(nb_project, env, "notebooks/spawns.ipynb", check=True)
    assert json.loads((nb_project / "metrics/spawns.json").read_text()) == {"before": 1}
    pid = int((nb_project / "child.pid").read_text())
    deadline = time.time() + 10
    while alive(pid) and time.time() < deadline:
        time.sleep(0.05)
    assert not alive(pid)
