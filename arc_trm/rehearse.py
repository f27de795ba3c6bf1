"""`arc-trm rehearse`: the Kaggle notebook run on this machine as Kaggle runs it, then scored.

What it lays out in DIR (--out), and what the notebook writes there:

    input/arc-prize-2025/arc-agi_test_challenges.json   SOURCE's test inputs, without their solutions
    input/rehearsal-assets/wheels/, checkpoint/         the dataset `arc-trm submit` would upload, staged by
                                                        the same code (kaggle_submit.stage)
    kernel/                                             the notebook it would push, and its kernel-metadata.json
    venv/                                               the environment the notebook's kernel runs in
    executed.ipynb, notebook.log                        the notebook after its run, and its output as text
    submission.json, timings.json, arc_trm_work/        what the notebook wrote (timings.json: seconds per phase)

The notebook installs the staged wheels with pip, as on Kaggle (internet off). In the caller's environment
that would replace its arc_trm (an editable install, say), so the kernel runs in a throwaway virtual
environment that sees the caller's packages (torch and the rest, as the Kaggle image has them) and gets
the staged arc_trm of its own. Afterwards the submission is validated and, when SOURCE has solutions,
scored with the competition's metric; the phases' seconds come from the notebook's timings.json.
"""

import contextlib
import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

from arc_trm.errors import UserError
from arc_trm.kaggle_submit import DEFAULT_COMPETITION, NOTEBOOK, NOTEBOOK_FILE, inference_checkpoint, stage
from arc_trm.submission import load_submission, score_submission, validate_submission
from arc_trm.tasks import Task, load_tasks, write_kaggle_files

KERNEL, DATASET = "rehearsal/arc-trm", "rehearsal/rehearsal-assets"  # placeholders: nothing is pushed
KERNEL_NAME = "arc-trm-rehearsal"  # the kernelspec of the venv's python
PHASES = ("install", "fallback", "probe", "adapt", "predict")  # as the notebook names them in timings.json
DEFAULT_OUT = "runs/rehearsal"
# what a rehearsal writes in DIR; removed first, so nothing of an earlier one is resumed or reported
_OWNED = ("input", "kernel", "venv", "arc_trm_work", "executed.ipynb", "notebook.log", "submission.json",
          "timings.json")

# nbclient, run in a child process whose environment carries the notebook's parameters; the kernel it
# starts is KERNEL_NAME, found through JUPYTER_PATH
_EXECUTE = """
import sys, nbformat
from nbclient import NotebookClient
notebook, cwd, executed, kernel, timeout = sys.argv[1:]
nb = nbformat.read(notebook, as_version=4)
try:
    NotebookClient(nb, timeout=float(timeout), kernel_name=kernel, resources={"metadata": {"path": cwd}}).execute()
finally:
    nbformat.write(nb, executed)
"""


def kernel_python(folder: Path) -> Path:
    """A fresh virtual environment in `folder` for the notebook's kernel, with its kernelspec (KERNEL_NAME,
    under folder/share/jupyter); returns its python. The notebook's pip install lands in it."""
    shutil.rmtree(folder, ignore_errors=True)
    venv.create(folder, system_site_packages=True, with_pip=False)  # pip comes from the caller's packages
    python = folder / "bin" / "python"
    # system_site_packages reaches the base interpreter's packages only; a caller in a virtual environment
    # has its packages in that one, so a .pth file adds the caller's (after the venv's own: its arc_trm wins)
    callers = site.getsitepackages() + ([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(folder), "platbase": str(folder)}))
    (purelib / "_arc_trm_caller.pth").write_text("".join(f"import site; site.addsitedir({p!r})\n" for p in callers))
    spec = folder / "share" / "jupyter" / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "arc-trm rehearsal", "language": "python"}))
    return python


def execute_notebook(notebook: Path, cwd: Path, executed: Path, env: dict, venv_dir: Path,
                     timeout: float) -> str:
    """Run `notebook` headless in `cwd` on the kernel of `venv_dir` (see kernel_python), with `env`; write
    it with its outputs to `executed` and return the outputs as text. A failed cell raises UserError
    naming the error; `timeout` bounds each cell."""
    env = {**env, "JUPYTER_PATH": str(venv_dir / "share" / "jupyter")}
    result = subprocess.run([sys.executable, "-c", _EXECUTE, str(notebook), str(cwd), str(executed), KERNEL_NAME,
                             str(timeout)], capture_output=True, text=True, env=env)
    if not executed.is_file():
        lines = result.stderr.strip().splitlines() or [f"exit code {result.returncode}"]
        raise UserError(f"the notebook did not run: {lines[-1]}")
    cells = [c for c in json.loads(executed.read_text())["cells"] if c["cell_type"] == "code"]
    outputs = [o for c in cells for o in c["outputs"]]
    failed = next((o for o in outputs if o["output_type"] == "error"), None)
    if failed is not None:
        raise UserError(f"the notebook failed: {failed['ename']}: {failed['evalue']} (see {executed})")
    return "".join("".join(o.get("text", "")) for o in outputs)


def rehearse(checkpoint: str, source: str, budget: float, out: str = DEFAULT_OUT, *, processes: int | None = None,
             adapt_mode: str | None = None, wheels_from: str | None = None) -> dict:
    """Stage, lay out a fake /kaggle/input in `out`, run the notebook with `budget` seconds, then validate
    and score its submission. Returns the report (see format_report); ARC_TRM_* variables of the caller's
    environment other than those naming the inputs reach the notebook (ARC_TRM_VIEWS, say)."""
    if budget <= 0:
        raise UserError(f"--budget {budget:g}: must be more than 0 seconds")
    if processes is not None and processes < 1:
        raise UserError(f"--processes {processes}: must be at least 1")
    if not Path(checkpoint).is_dir():
        raise UserError(f"--checkpoint {checkpoint}: not a directory")
    if wheels_from is not None and not Path(wheels_from).is_dir():
        raise UserError(f"--wheels-from {wheels_from}: not a directory")
    ckpt = inference_checkpoint(Path(checkpoint))
    tasks = load_tasks(source)
    out = Path(out).resolve()
    for path in (out / name for name in _OWNED):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)

    # the competition, as Kaggle mounts it: the test inputs without their solutions
    write_kaggle_files(tasks, out / "input" / DEFAULT_COMPETITION / "arc-agi_test_challenges.json")
    # the dataset and the notebook exactly as `arc-trm submit` stages them (its messages go to stderr, so
    # that --json prints one object)
    with contextlib.redirect_stdout(sys.stderr):
        dataset_dir, kernel_dir = stage(kernel=KERNEL, dataset=DATASET, competition=DEFAULT_COMPETITION,
                                        checkpoint=ckpt, notebook=NOTEBOOK, staging=out,
                                        wheels_from=Path(wheels_from) if wheels_from else None)
    os.replace(dataset_dir, out / "input" / DATASET.split("/")[1])

    env = {k: v for k, v in os.environ.items()
           if k not in ("ARC_TRM_COMPETITION_DIR", "ARC_TRM_WHEEL_DIR", "ARC_TRM_CHECKPOINT")}
    env.update(ARC_TRM_INPUT_DIR=str(out / "input"), ARC_TRM_OUTPUT=str(out / "submission.json"),
               ARC_TRM_TIME_BUDGET=str(budget))
    if processes:
        env["ARC_TRM_PROCESSES"] = str(processes)
    if adapt_mode:
        env["ARC_TRM_ADAPT_MODE"] = adapt_mode
    python = kernel_python(out / "venv")
    print(f"rehearsing: the notebook runs with a budget of {budget:g} s; its output goes to {out / 'notebook.log'}",
          file=sys.stderr)
    log = execute_notebook(kernel_dir / NOTEBOOK_FILE, out, out / "executed.ipynb", env, out / "venv",
                           timeout=budget + 600)
    (out / "notebook.log").write_text(log)
    # the rehearsal is worth something only if the notebook ran the staged arc_trm, not the caller's (run
    # in `out`, as the kernel was: `python -c` looks in the working directory first)
    where = subprocess.run([str(python), "-c", "import arc_trm; print(arc_trm.__file__)"], cwd=out,
                           capture_output=True, text=True, env=env).stdout.strip()
    if not where.startswith(str(out / "venv")):
        raise UserError(f"the notebook's arc_trm came from {where or '(nowhere)'}, not the staged wheel "
                        "(is arc_trm on PYTHONPATH?)")
    return report(tasks, source, out, budget)


def report(tasks: list[Task], source: str, out: Path, budget: float) -> dict:
    """The rehearsal's result: the submission checked and scored, and the notebook's timings."""
    timings = json.loads((out / "timings.json").read_text())
    elapsed = timings["elapsed"]
    result = {"source": source, "tasks": len(tasks), "outputs": sum(len(t.test_inputs) for t in tasks),
              "valid": True, "problem": None, "score": None, "correct_outputs": None,
              "budget": budget, "seconds": elapsed, "unused": (budget - elapsed) / budget,
              "phases": {name: timings["phases"].get(name, 0.0) for name in PHASES},
              "out": str(out), "submission": str(out / "submission.json"), "notebook": str(out / "executed.ipynb")}
    submission = load_submission(out / "submission.json")
    try:
        validate_submission(submission, tasks, file=result["submission"])
    except UserError as e:
        result.update(valid=False, problem=str(e))
    if result["valid"] and all(t.test_outputs is not None for t in tasks):
        scores = score_submission(submission, tasks, file=result["submission"], source=source)
        result.update({k: v for k, v in scores.items() if k != "per_task"})
    return result


def format_report(r: dict) -> str:
    if not r["valid"]:
        verdict = f"INVALID submission: {r['problem']}"
    elif r["score"] is None:
        verdict = f"valid submission, not scored ({r['source']} has no solutions)"
    else:
        verdict = f"score (pass@2): {r['score']:.4f} ({r['correct_outputs']}/{r['outputs']} test outputs)"
    unused = r["budget"] - r["seconds"]
    return "\n".join([
        f"rehearsal of {r['source']}: {r['tasks']} tasks, {r['outputs']} test inputs",
        verdict,
        "phases: " + ", ".join(f"{name} {s:.1f} s" for name, s in r["phases"].items()),
        f"notebook: {r['seconds']:.1f} s of the {r['budget']:g} s budget; "
        + (f"unused {unused:.1f} s ({r['unused']:.1%})" if unused >= 0 else f"OVER by {-unused:.1f} s"),
        f"submission {r['submission']}, executed notebook {r['notebook']}",
    ])
