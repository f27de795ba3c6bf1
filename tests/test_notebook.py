"""kaggle_notebook.ipynb executed headless (nbclient) on the CPU against a fake Kaggle layout in a temp dir:
a small challenges file drawn from arc2-eval, the wheels `arc-trm submit` stages, a tiny-cpu checkpoint.

The notebook installs the wheels with pip, so it runs in a throwaway virtual environment that sees this
environment's packages (torch and the rest, as the Kaggle image has them) but gets its own arc_trm.
"""

import json
import os
import subprocess
import venv
from pathlib import Path

import pytest
from conftest import ARC_TRM

from arc_trm.cli import build_parser
from arc_trm.kaggle_submit import build_wheels, source_root
from arc_trm.submission import load_submission, validate_submission
from arc_trm.tasks import load_tasks, write_kaggle_files

NOTEBOOK = Path(__file__).resolve().parents[1] / "kaggle_notebook.ipynb"
_COMMANDS = build_parser()._subparsers._group_actions[0].choices
# The notebook drives `arc-trm adapt` and `arc-trm predict` (and the test trains with `arc-trm train`);
# until they exist the runs are expected to fail and are reported as xfail, not skipped. Once they land
# the mark turns off by itself.
waiting = pytest.mark.xfail(not {"adapt", "predict", "train"} <= set(_COMMANDS), strict=True,
                            reason="waiting for `arc-trm train/adapt/predict`: the notebook is thin over them")

_RUN = """
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": sys.argv[2]}}).execute()
nbformat.write(nb, sys.argv[3])
"""


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    """{'input': the fake /kaggle/input, 'python': the venv's interpreter, 'tasks': the challenge tasks}."""
    root = tmp_path_factory.mktemp("kaggle")
    # the four arc2-eval tasks with the smallest grids keep the CPU run short
    tasks = sorted(load_tasks("arc2-eval"),
                   key=lambda t: max(g.size for pair in t.train for g in pair) + sum(g.size for g in t.test_inputs))
    tasks = tasks[:4]
    competition = root / "input" / "arc-prize-2025"
    write_kaggle_files(tasks, competition / "arc-agi_test_challenges.json")  # no solutions, as on Kaggle
    dataset = root / "input" / "arc-trm-assets"
    build_wheels(source_root(), dataset / "wheels")
    train = subprocess.run([ARC_TRM, "train", "--config", "tiny-cpu", "--out", str(dataset / "checkpoint")],
                           capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stderr
    env_dir = root / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=False)  # pip comes from the shared packages
    return {"input": root / "input", "python": env_dir / "bin" / "python", "tasks": tasks, "root": root}


def _execute(layout, name: str, budget: int) -> tuple[Path, str]:
    """Run the notebook with the ARC_TRM_* variables pointing into the layout; (submission, cell output)."""
    work = layout["root"] / name
    work.mkdir()
    dataset = layout["input"] / "arc-trm-assets"
    env = dict(os.environ, ARC_TRM_COMPETITION_DIR=str(layout["input"] / "arc-prize-2025"),
               ARC_TRM_WHEEL_DIR=str(dataset / "wheels"), ARC_TRM_CHECKPOINT=str(dataset / "checkpoint"),
               ARC_TRM_OUTPUT=str(work / "submission.json"), ARC_TRM_TIME_BUDGET=str(budget))
    executed = work / "executed.ipynb"
    result = subprocess.run([str(layout["python"]), "-c", _RUN, str(NOTEBOOK), str(work), str(executed)],
                            capture_output=True, text=True, env=env, timeout=budget + 600)
    assert result.returncode == 0, result.stderr[-3000:]
    cells = json.loads(executed.read_text())["cells"]
    text = "".join("".join(o.get("text", "")) for c in cells if c["cell_type"] == "code" for o in c["outputs"])
    return work / "submission.json", text


@waiting
@pytest.mark.slow
def test_notebook_adapts_predicts_and_writes_a_valid_submission(layout):
    submission, log = _execute(layout, "full", budget=150)
    validate_submission(load_submission(submission), layout["tasks"], file=str(submission))
    assert log.index("fallback submission written") < log.index("adapted checkpoint: /")
    assert "arc_trm.cli predict" in log and "killed" not in log
    assert "from " + str(layout["root"] / "venv") in log  # arc_trm came from the staged wheel


@waiting
@pytest.mark.slow
def test_notebook_with_no_time_to_adapt_still_writes_a_valid_submission(layout):
    submission, log = _execute(layout, "short", budget=20)
    validate_submission(load_submission(submission), layout["tasks"], file=str(submission))
    assert "too little to adapt" in log and "fallback submission written" in log


def test_only_the_notebook_parameters_cell_reads_the_environment():
    """Paths and budgets come from one parameters cell (tagged for papermill), Kaggle paths by default."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    params = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1
    source = "".join(params[0]["source"])
    for var in ("ARC_TRM_COMPETITION_DIR", "ARC_TRM_CHECKPOINT", "ARC_TRM_WHEEL_DIR", "ARC_TRM_OUTPUT",
                "ARC_TRM_TIME_BUDGET"):
        assert var in source, var
    assert "/kaggle/input/**/arc-agi_test_challenges.json" in source
    others = "".join("".join(c["source"]) for c in cells if c is not params[0] and c["cell_type"] == "code")
    assert "os.environ" not in others
