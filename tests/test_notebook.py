"""kaggle_notebook.ipynb executed headless (nbclient) on the CPU against a fake Kaggle layout in a temp dir:
a small challenges file drawn from arc2-eval, and the dataset `arc-trm submit --dry-run` stages (the wheels
and the inference files of a tiny-cpu checkpoint trained here on other tasks, so the notebook must adapt).

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

from arc_trm.checkpoint import INFERENCE_FILES
from arc_trm.tasks import load_tasks, write_kaggle_files

NOTEBOOK = Path(__file__).resolve().parents[1] / "kaggle_notebook.ipynb"
# tiny, so training, adaptation and four views of three tasks take seconds on a CPU
TINY = ["model.hidden=32", "model.heads=2", "model.puzzle_dim=32", "model.n_supervision=2", "views=4",
        "batch_size=8", "max_steps=5", "data.train_tasks=", "eval_every=0"]

_RUN = """
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": sys.argv[2]}}).execute()
nbformat.write(nb, sys.argv[3])
"""


@pytest.fixture(scope="module")
def layout(tmp_path_factory, small_files):
    """{'root', 'competition' (the challenges' folder), 'dataset' (staged: wheels/ and checkpoint/),
    'run' (the training run directory), 'python' (the venv's interpreter)}."""
    root = tmp_path_factory.mktemp("kaggle")
    # the three arc2-eval tasks with the smallest grids keep the CPU run short
    tasks = sorted(load_tasks("arc2-eval"),
                   key=lambda t: max(g.size for pair in t.train for g in pair) + sum(g.size for g in t.test_inputs))
    competition = root / "input" / "arc-prize-2025"
    write_kaggle_files(tasks[:3], competition / "arc-agi_test_challenges.json")  # no solutions, as on Kaggle
    # trained on three arc1-small tasks: none of the test tasks has a puzzle row yet
    run = root / "run"
    train = subprocess.run([ARC_TRM, "train", "--config", "tiny-cpu", "--out", str(run),
                            f"data.eval_tasks={small_files[1]}", *TINY], capture_output=True, text=True, timeout=300)
    assert train.returncode == 0, train.stderr[-3000:]
    # the dataset exactly as `arc-trm submit` uploads it; its wheels come from PyPI unless cached
    cache = ["--wheels-from", os.environ["ARC_TRM_WHEEL_CACHE"]] if os.environ.get("ARC_TRM_WHEEL_CACHE") else []
    stage = subprocess.run([ARC_TRM, "submit", "--kernel", "alice/arc-trm-test", "--checkpoint", str(run),
                            "--staging", str(root / "stage"), "--dry-run", *cache],
                           capture_output=True, text=True, timeout=300)
    assert stage.returncode == 0, stage.stderr[-3000:]
    dataset = root / "stage" / "dataset"
    assert sorted(p.name for p in (dataset / "checkpoint").iterdir()) == sorted(INFERENCE_FILES)
    env_dir = root / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=False)  # pip comes from the shared packages
    return {"root": root, "competition": competition, "dataset": dataset, "run": run,
            "python": env_dir / "bin" / "python"}


def _execute(layout, name: str, budget: int, checkpoint: Path) -> tuple[Path, str]:
    """Run the notebook with the ARC_TRM_* variables pointing into the layout; (submission, cell output)."""
    work = layout["root"] / name
    work.mkdir()
    env = dict(os.environ, ARC_TRM_COMPETITION_DIR=str(layout["competition"]),
               ARC_TRM_WHEEL_DIR=str(layout["dataset"] / "wheels"), ARC_TRM_CHECKPOINT=str(checkpoint),
               ARC_TRM_OUTPUT=str(work / "submission.json"), ARC_TRM_TIME_BUDGET=str(budget),
               ARC_TRM_ADAPT_STEPS="10")
    executed = work / "executed.ipynb"
    result = subprocess.run([str(layout["python"]), "-c", _RUN, str(NOTEBOOK), str(work), str(executed)],
                            capture_output=True, text=True, env=env, timeout=budget + 300)
    assert result.returncode == 0, result.stderr[-3000:]
    cells = json.loads(executed.read_text())["cells"]
    text = "".join("".join(o.get("text", "")) for c in cells if c["cell_type"] == "code" for o in c["outputs"])
    return work / "submission.json", text


def _assert_valid(layout, submission: Path) -> None:
    challenges = layout["competition"] / "arc-agi_test_challenges.json"
    result = subprocess.run([ARC_TRM, "validate", str(submission), "--tasks", str(challenges)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("valid: 3 tasks"), result.stdout


@pytest.mark.slow
def test_notebook_adapts_predicts_and_writes_a_valid_submission(layout):
    """The staged checkpoint folder: fallback first, then adapt, then predict with the adapted checkpoint."""
    submission, log = _execute(layout, "full", budget=240, checkpoint=layout["dataset"] / "checkpoint")
    _assert_valid(layout, submission)
    adapted = layout["root"] / "full" / "arc_trm_work" / "adapted"
    assert log.index("fallback submission written") < log.index(f"adapted checkpoint: {adapted}")
    assert log.index(f"adapted checkpoint: {adapted}") < log.index(f"arc_trm.cli predict --checkpoint {adapted}")
    assert "killed" not in log and "adapt failed" not in log
    assert "from " + str(layout["root"] / "venv") in log  # arc_trm came from the staged wheel


@pytest.mark.slow
def test_notebook_with_no_time_to_adapt_still_writes_a_valid_submission(layout):
    """A run directory as the checkpoint, and a budget too small to adapt: still a valid submission."""
    submission, log = _execute(layout, "short", budget=60, checkpoint=layout["run"])
    _assert_valid(layout, submission)
    assert "too little to adapt" in log and "fallback submission written" in log
    assert "arc_trm.cli adapt" not in log and "killed" not in log


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
