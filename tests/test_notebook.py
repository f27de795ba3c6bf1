"""kaggle_notebook.ipynb executed headless (nbclient) on the CPU against a fake Kaggle layout in a temp dir:
a small challenges file drawn from arc2-eval, and the dataset `arc-trm submit --dry-run` stages (the wheels
and the inference files of a tiny checkpoint trained on other tasks, so the notebook must adapt).

The notebook installs the wheels with pip, so its kernel runs in a throwaway virtual environment that sees
this environment's packages (torch and the rest, as the Kaggle image has them) but gets its own arc_trm
(rehearse.kernel_python, as `arc-trm rehearse` does). Also here: the notebook's helpers, arc_trm.kaggle_run.
"""

import json
import os
import sys
from pathlib import Path

import psutil
import pytest

from arc_trm.checkpoint import INFERENCE_FILES
from arc_trm.cli import main
from arc_trm.kaggle_run import Speed, adapt_seconds, run
from arc_trm.kaggle_submit import NOTEBOOK
from arc_trm.rehearse import execute_notebook, kernel_python
from arc_trm.submission import load_submission, validate_submission
from arc_trm.tasks import load_tasks, write_kaggle_files


@pytest.fixture(scope="module")
def layout(tmp_path_factory, other_checkpoint, wheel_cache):
    """{'root', 'competition' (the challenges' folder), 'dataset' (staged: wheels/ and checkpoint/),
    'run' (the training run directory), 'venv' (the kernel's environment)}."""
    root = tmp_path_factory.mktemp("kaggle")
    # the three arc2-eval tasks with the smallest grids keep the CPU run short
    tasks = sorted(load_tasks("arc2-eval"),
                   key=lambda t: max(g.size for pair in t.train for g in pair) + sum(g.size for g in t.test_inputs))
    competition = root / "input" / "arc-prize-2025"
    write_kaggle_files(tasks[:3], competition / "arc-agi_test_challenges.json")  # no solutions, as on Kaggle
    # the dataset exactly as `arc-trm submit` uploads it
    assert main(["submit", "--kernel", "alice/arc-trm-test", "--checkpoint", str(other_checkpoint),
                 "--staging", str(root / "stage"), "--dry-run", "--wheels-from", wheel_cache]) == 0
    dataset = root / "stage" / "dataset"
    assert sorted(p.name for p in (dataset / "checkpoint").iterdir()) == sorted(INFERENCE_FILES)
    kernel_python(root / "venv")
    return {"root": root, "competition": competition, "dataset": dataset, "run": other_checkpoint,
            "venv": root / "venv"}


def _execute(layout, name: str, budget: int, checkpoint: Path, **params: str) -> tuple[Path, str]:
    """Run the notebook with the ARC_TRM_* variables pointing into the layout, and ARC_TRM_<KEY> for each
    of `params`; (submission, cell output)."""
    work = layout["root"] / name
    work.mkdir()
    env = dict(os.environ, ARC_TRM_COMPETITION_DIR=str(layout["competition"]),
               ARC_TRM_WHEEL_DIR=str(layout["dataset"] / "wheels"), ARC_TRM_CHECKPOINT=str(checkpoint),
               ARC_TRM_OUTPUT=str(work / "submission.json"), ARC_TRM_TIME_BUDGET=str(budget),
               **{f"ARC_TRM_{key.upper()}": value for key, value in params.items()})
    log = execute_notebook(NOTEBOOK, work, work / "executed.ipynb", env, layout["venv"], timeout=budget + 300)
    return work / "submission.json", log


def _assert_valid(layout, submission: Path) -> None:
    tasks = load_tasks(layout["competition"] / "arc-agi_test_challenges.json")
    assert len(tasks) == 3
    validate_submission(load_submission(submission), tasks, file=str(submission))


@pytest.mark.slow
def test_notebook_adapts_predicts_and_writes_a_valid_submission(layout):
    """The staged checkpoint folder: fallback first, then the probe, adapt, and predict with the adapted
    checkpoint; timings.json holds every phase."""
    submission, log = _execute(layout, "full", budget=240, checkpoint=layout["dataset"] / "checkpoint",
                               adapt_steps="10")
    _assert_valid(layout, submission)
    adapted = layout["root"] / "full" / "arc_trm_work" / "adapted"
    assert log.index("fallback submission written") < log.index("3 unseen tasks") < log.index(
        f"adapted checkpoint: {adapted}") < log.index(f"arc_trm.cli predict --checkpoint {adapted}")
    assert "killed" not in log and "adapt failed" not in log
    assert "from " + str(layout["venv"]) in log  # arc_trm came from the staged wheel
    timings = json.loads((submission.parent / "timings.json").read_text())
    assert timings["budget"] == 240 and set(timings["phases"]) == {"install", "fallback", "probe", "adapt", "predict"}
    assert sum(timings["phases"].values()) <= timings["elapsed"]


@pytest.mark.slow
def test_notebook_with_no_time_to_adapt_still_writes_a_valid_submission(layout):
    """A run directory as the checkpoint, and less time for adaptation than it needs (MIN_ADAPT_SECONDS):
    predicting with the checkpoint as is still gives a valid submission."""
    submission, log = _execute(layout, "short", budget=60, checkpoint=layout["run"], min_adapt_seconds="1000")
    _assert_valid(layout, submission)
    assert "too little to adapt" in log and "fallback submission written" in log
    assert "arc_trm.cli adapt" not in log and "killed" not in log


@pytest.mark.slow
def test_an_overrun_on_two_processes_is_killed_with_its_workers(layout):
    """Two processes per command (torch.distributed.run on the CPU) and no grace: adaptation cannot start
    and save within its budget, so it is killed; none of its processes survives, and the submission is
    valid. Every process of the run has the run's folder on its command line."""
    submission, log = _execute(layout, "overrun", budget=90, checkpoint=layout["dataset"] / "checkpoint",
                               processes="2", kill_grace="0")
    assert "torch.distributed.run --standalone --nproc_per_node 2 -m arc_trm.cli adapt" in log
    assert "killed, with the" in log
    work = str(submission.parent)
    survivors = [p.info for p in psutil.process_iter(["pid", "cmdline", "status"])
                 if p.info["status"] != psutil.STATUS_ZOMBIE and any(work in arg for arg in p.info["cmdline"] or [])]
    assert survivors == []
    _assert_valid(layout, submission)


def test_run_kills_what_the_command_started_in_sessions_of_their_own(tmp_path):
    """kaggle_run.run past its timeout: the command, a child in a session of its own (as torchrun starts its
    workers) and a child in the command's group all die."""
    marker = str(tmp_path / "marker")
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)", marker]
    parent = (f"import subprocess, time; subprocess.Popen({sleeper!r}, start_new_session=True); "
              f"subprocess.Popen({sleeper!r}); time.sleep(60)")
    assert not run([sys.executable, "-c", parent, marker], timeout=3, log=lambda line: None)
    alive = [p for p in psutil.process_iter(["cmdline", "status"])
             if p.info["status"] != psutil.STATUS_ZOMBIE and marker in (p.info["cmdline"] or [])]
    assert alive == []


@pytest.mark.parametrize("speed, remaining, adapt", [
    # the time left less adaptation's start-up, prediction's start-up and work, and two margins
    (Speed(startup=10, predict=200, unseen=3), 1000, 1000 - 10 - (10 + 200) - 2 * 5),
    # prediction quicker than the least it is started with: that least is kept for it instead
    (Speed(startup=10, predict=1, unseen=3), 1000, 1000 - 10 - 60 - 2 * 5),
    # a slow start-up counts twice; too little left gives a budget below MIN_ADAPT_SECONDS, or below 0
    (Speed(startup=100, predict=50, unseen=3), 300, 300 - 100 - 150 - 2 * 5),
])
def test_adaptation_gets_what_prediction_and_the_start_ups_leave(speed, remaining, adapt):
    assert adapt_seconds(remaining, speed, margin=5, min_predict=60) == pytest.approx(adapt)


@pytest.mark.parametrize("startup, predict", [(5, 100), (30, 10), (0.5, 2000)])
def test_a_run_to_plan_spends_the_budget_less_the_margins(startup, predict):
    """The notebook's plan with made-up speeds, run exactly as measured: adaptation starts and runs its
    budget, then prediction (budget: what is left less a margin) starts and works. Prediction fits in its
    budget, and what stays unused is the two margins, whatever the speeds (prediction taking more than
    the least it is started with, min_predict)."""
    budget, margin, min_predict = 3600.0, 30.0, 20.0
    speed = Speed(startup=startup, predict=predict, unseen=2)
    remaining = budget - 50  # install, fallback and probe took 50 s
    adapt = adapt_seconds(remaining, speed, margin, min_predict)
    remaining -= speed.startup + adapt
    predict_budget = remaining - margin
    assert speed.startup + speed.predict <= predict_budget
    remaining -= speed.startup + speed.predict
    assert remaining == pytest.approx(2 * margin)


def test_only_the_notebook_parameters_cell_reads_the_environment():
    """Paths, budgets and knobs come from one parameters cell (tagged for papermill), Kaggle paths by default."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    params = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1
    source = "".join(params[0]["source"])
    for var in ("ARC_TRM_INPUT_DIR", "ARC_TRM_COMPETITION_DIR", "ARC_TRM_CHECKPOINT", "ARC_TRM_WHEEL_DIR",
                "ARC_TRM_OUTPUT", "ARC_TRM_TIME_BUDGET", "ARC_TRM_ADAPT_MODE", "ARC_TRM_VIEWS", "ARC_TRM_PROCESSES",
                "ARC_TRM_KILL_GRACE"):
        assert var in source, var
    assert '"/kaggle/input"' in source and "**/arc-agi_test_challenges.json" in source
    others = "".join("".join(c["source"]) for c in cells if c is not params[0] and c["cell_type"] == "code")
    assert "os.environ" not in others


def test_the_top_level_notebook_is_the_package_notebook():
    """kaggle_notebook.ipynb at the top of the checkout is a link to the one shipped in the package."""
    top = Path(__file__).resolve().parents[1] / "kaggle_notebook.ipynb"
    assert top.read_bytes() == NOTEBOOK.read_bytes()
