"""Shared fixtures: running the real `arc-trm` command (as a subprocess, or in-process for its one-line
errors), a few small tasks written as Kaggle files, tiny checkpoints trained on them or on others, and
what `arc-trm submit` stages from.

In-process commands share this process's one Accelerate state, made by the first of them (or by the
`accelerator` fixture) in fp32; a test that needs another precision runs its command as a subprocess
(resetting Accelerate's state would also clear the state of every Accelerator made before).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from arc_trm.tasks import load_tasks, write_kaggle_files

# the console script installed beside this interpreter (skips pyenv/venv shims); PATH otherwise
_SCRIPT = Path(sys.executable).with_name("arc-trm")
ARC_TRM = str(_SCRIPT) if _SCRIPT.exists() else "arc-trm"


# tiny-cpu made tiny (hidden 32, 4 views, N_sup 2, 5 steps): training, adaptation and prediction of a
# few small tasks take seconds on a CPU
TINY = ["model.hidden=32", "model.heads=2", "model.puzzle_dim=32", "model.n_supervision=2", "views=4",
        "batch_size=8", "max_steps=5", "data.train_tasks=", "eval_every=0"]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([ARC_TRM, *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.fixture
def cli():
    """cli(*args) runs `arc-trm ARGS` as a subprocess and returns the CompletedProcess."""
    return _run


@pytest.fixture
def cli_error(capsys):
    """cli_error(args, *fragments): `arc-trm ARGS`, run in-process (arc_trm.cli.main), must return exit code 2
    with one stderr line naming every fragment."""
    from arc_trm.cli import main

    def check(args: list, *fragments: str) -> str:
        capsys.readouterr()  # only this command's output
        code = main([str(a) for a in args])
        err = capsys.readouterr().err
        assert code == 2, f"exit {code}, stderr: {err}"
        lines = err.strip().splitlines()
        assert len(lines) == 1, f"expected one error line, got: {err}"
        assert lines[0].startswith(f"arc-trm {args[0]}: error: "), lines[0]
        for fragment in fragments:
            assert str(fragment) in lines[0], f"{fragment!r} not in {lines[0]!r}"
        return lines[0]

    return check


@pytest.fixture(scope="session")
def accelerator():
    """The one Accelerator of the in-process tests (fp32 on the CPU), as a command makes one."""
    from arc_trm.train import make_accelerator

    return make_accelerator("no")


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


def _train_here(run: Path, challenges: Path) -> int:
    """`arc-trm train` of the TINY config on the demonstrations of `challenges`, in-process."""
    from arc_trm.cli import main

    return main(["train", "--config", "tiny-cpu", "--out", str(run), f"data.held_out_tasks={challenges}", *TINY])


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, small_files):
    """The run directory of a real 5-step tiny-cpu training on the demonstrations of `small_files`'
    three tasks (hidden 32, 4 views, N_sup 2): a checkpoint that knows those tasks and is cheap to
    adapt and predict with on a CPU."""
    _, challenges, _ = small_files
    run = tmp_path_factory.mktemp("tiny") / "run"
    assert _train_here(run, challenges) == 0
    return run


@pytest.fixture(scope="session")
def other_checkpoint(tmp_path_factory, small_files):
    """The run directory of the TINY training on three arc1-small tasks that are NOT `small_files`' tasks:
    every task of small_files is unseen, so a notebook or a rehearsal on them has something to adapt."""
    chosen = {t.id for t in small_files[0]}
    folder = tmp_path_factory.mktemp("other")
    write_kaggle_files([t for t in load_tasks("arc1-small") if t.id not in chosen][:3], folder / "other.json")
    assert _train_here(folder / "run", folder / "other.json") == 0
    return folder / "run"


@pytest.fixture
def placeholder_run(tmp_path):
    """A run directory laid out as `arc-trm train` writes it (two checkpoints, `latest` naming the second),
    its files placeholders: staging copies them without reading them."""
    from arc_trm.checkpoint import INFERENCE_FILES

    run = tmp_path / "run"
    for step in (100, 200):
        folder = run / "checkpoints" / f"step-{step}"
        folder.mkdir(parents=True)
        for name in (*INFERENCE_FILES, "optimizer.pt", "carry-rank0.pt"):
            (folder / name).write_text(f"{name} of step {step}")
    (run / "checkpoints" / "step-200" / "model.safetensors").write_bytes(b"\0" * 1000)
    (run / "latest").write_text("checkpoints/step-200")
    return run


def _rebuilt_or_downloaded(name: str, folder: Path) -> None:
    """The wheel of the installed distribution `name` in `folder`: rebuilt from its installed files
    (kaggle_submit.installed_wheel; no network), or, for an install without a WHEEL and RECORD to rebuild
    from, downloaded (pytest.skip when that fails: no network, no index)."""
    from importlib.metadata import distribution

    from arc_trm.kaggle_submit import installed_wheel

    dist = distribution(name)
    if dist.files and dist.read_text("WHEEL"):
        installed_wheel(folder, dist)
        return
    pin = f"{name}=={dist.version}"
    download = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-q",
                               "--timeout", "10", "--retries", "0", "-d", str(folder), pin],
                              capture_output=True, text=True)
    if download.returncode != 0:
        last = (download.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"no wheel of {pin}: its install has no WHEEL/RECORD to rebuild one from, and `pip download` "
                    f"failed (no network or index?): {last}; set ARC_TRM_WHEEL_CACHE to a folder holding it")


@pytest.fixture(scope="session")
def wheel_cache(tmp_path_factory):
    """A folder with the dependency wheels `arc-trm submit` stages (for --wheels-from): $ARC_TRM_WHEEL_CACHE,
    or made once per session from the installed distributions (see _rebuilt_or_downloaded)."""
    if os.environ.get("ARC_TRM_WHEEL_CACHE"):
        return os.environ["ARC_TRM_WHEEL_CACHE"]
    from arc_trm.kaggle_submit import DEPENDENCY_WHEELS

    folder = tmp_path_factory.mktemp("wheels")
    for name in DEPENDENCY_WHEELS:
        _rebuilt_or_downloaded(name, folder)
    return str(folder)
