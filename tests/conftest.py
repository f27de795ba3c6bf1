"""Shared fixtures: running the real `arc-trm` command, and a few small tasks written as Kaggle files."""

import subprocess
import sys
from pathlib import Path

import pytest

from arc_trm.tasks import load_tasks, write_kaggle_files

# the console script installed beside this interpreter (skips pyenv/venv shims); PATH otherwise
_SCRIPT = Path(sys.executable).with_name("arc-trm")
ARC_TRM = str(_SCRIPT) if _SCRIPT.exists() else "arc-trm"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([ARC_TRM, *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.fixture
def cli():
    """cli(*args) runs `arc-trm ARGS` as a subprocess and returns the CompletedProcess."""
    return _run


@pytest.fixture
def cli_error():
    """cli_error(args, *fragments): `arc-trm ARGS` must exit 2 with one stderr line naming every fragment."""

    def check(args: list, *fragments: str) -> str:
        result = _run(*args)
        assert result.returncode == 2, f"exit {result.returncode}, stderr: {result.stderr}"
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, f"expected one error line, got: {result.stderr}"
        assert lines[0].startswith(f"arc-trm {args[0]}: error: "), lines[0]
        for fragment in fragments:
            assert str(fragment) in lines[0], f"{fragment!r} not in {lines[0]!r}"
        return lines[0]

    return check


@pytest.fixture(scope="session")
def small_files(tmp_path_factory):
    """Three arc1-small tasks (the last with two test inputs) as challenges + solutions files beside
    each other: (tasks, challenges_path, solutions_path)."""
    tasks = load_tasks("arc1-small")
    single = [t for t in tasks if len(t.test_inputs) == 1][:2]
    double = [t for t in tasks if len(t.test_inputs) == 2][:1]
    chosen = single + double
    assert len(chosen) == 3
    folder = tmp_path_factory.mktemp("small")
    challenges, solutions = folder / "small_challenges.json", folder / "small_solutions.json"
    write_kaggle_files(chosen, challenges, solutions)
    return chosen, challenges, solutions


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, small_files):
    """The run directory of a real 5-step tiny-cpu training on the demonstrations of `small_files`'
    three tasks (hidden 32, 4 views, N_sup 2): a checkpoint that knows those tasks and is cheap to
    adapt and predict with on a CPU."""
    _, challenges, _ = small_files
    run = tmp_path_factory.mktemp("tiny") / "run"
    result = _run("train", "--config", "tiny-cpu", "--out", run, "model.hidden=32", "model.heads=2",
                  "model.puzzle_dim=32", "model.n_supervision=2", "views=4", "batch_size=8", "max_steps=5",
                  f"data.eval_tasks={challenges}", "data.train_tasks=", "eval_every=0")
    assert result.returncode == 0, result.stderr
    return run
