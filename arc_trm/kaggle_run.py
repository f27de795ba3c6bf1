"""What the Kaggle notebook runs, so that kaggle_notebook.ipynb stays thin: commands launched as one
process per device and killed with all their workers when they overrun, and the plan that spends the
notebook's time budget from measured speed.

The plan, against one deadline, after the fallback submission is written:

    probe    `python -m arc_trm.kaggle_run` loads the checkpoint as `arc-trm predict` does, counts the
             batches each process will run for every test input x view (as Predictor splits them), and
             times one batch of each canvas bucket: prediction's work in seconds. Its wall time less
             the timed batches is what a command takes to start (and to exit).
    adapt    `arc-trm adapt` gets everything else: the time left less two start-ups (its own and
             prediction's), prediction's work and a margin for each command's last write (adapt_seconds).
    predict  `arc-trm predict --no-adapt` gets what adaptation leaves.

Killing an overrun: torch.distributed.run starts each worker in a session of its own (torch 2.13:
start_new_session=True), so killing the launcher, or its process group, leaves the workers running
(re-parented to PID 1, holding their GPU). `run` starts each command in a session of its own and, past
its timeout, kills the launcher, every process it started, and whatever else is in its group.
"""

import argparse
import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil  # a dependency of accelerate

from arc_trm.adapt import unknown_tasks
from arc_trm.atomic import atomic_write_json
from arc_trm.checkpoint import find_checkpoint, load_for_inference, read_config
from arc_trm.infer import Predictor
from arc_trm.tasks import load_tasks
from arc_trm.train import make_accelerator


def command(processes: int, module: str, *args: str) -> list[str]:
    """`python -m MODULE ARGS`, as `processes` processes through torch.distributed.run when more than one
    (Accelerate finds each process's rank and device in the environment torchrun sets)."""
    launch = [sys.executable, "-m"]
    if processes > 1:
        launch += ["torch.distributed.run", "--standalone", "--nproc_per_node", str(processes), "-m"]
    return [*launch, module, *map(str, args)]


def kill_tree(pid: int) -> int:
    """SIGKILL process `pid` (running, or exited but not waited for), every process it started and whatever
    else is in its process group (`run` starts it in a session of its own). Returns how many it started."""
    leader = psutil.Process(pid)  # not waited for yet, so its pid is still its own
    started = leader.children(recursive=True)  # listed before anything dies: orphans descend from nobody
    for proc in [leader, *started]:
        with contextlib.suppress(psutil.NoSuchProcess):  # it exited meanwhile
            proc.kill()
    with contextlib.suppress(ProcessLookupError):  # nobody left in the group
        os.killpg(pid, signal.SIGKILL)
    return len(started)


def run(cmd: list[str], timeout: float, log: Callable[[str], None] = print) -> bool:
    """Run `cmd`, echoing its output as it comes; True when it exits 0 within `timeout` seconds. Past the
    timeout (or when the notebook is interrupted) it is killed with every process it started."""
    log("$ " + shlex.join(cmd))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)

    def echo() -> None:
        line = "\n"
        for line in proc.stdout:  # progress bars' carriage returns arrive as line ends
            print(line, end="", flush=True)
        if not line.endswith("\n"):  # a progress bar cut short: the next log line starts on its own
            print(flush=True)

    echoing = threading.Thread(target=echo, daemon=True)
    echoing.start()
    workers = None
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    finally:
        if proc.poll() is None:  # still running: over its time budget, or the notebook was interrupted
            workers = kill_tree(proc.pid)
            proc.wait()
        echoing.join(timeout=10)  # the pipe closes when the last process holding it has exited
    if workers is not None:
        log(f"killed, with the {workers} processes it started: over its time budget")
    return proc.returncode == 0


# ---- the time plan -----------------------------------------------------------------------------------
@dataclass
class Speed:
    startup: float  # seconds a command takes to start and exit (the probe's wall time less its timed batches)
    predict: float  # seconds of prediction's work once started, all test inputs x views
    unseen: int  # tasks the checkpoint does not know: 0 means nothing to adapt


def measure(processes: int, checkpoint: str, challenges: str, out: str, views: int | None, timeout: float,
            log: Callable[[str], None] = print) -> Speed | None:
    """Run the probe (this module's command line) as prediction will run; None if it fails or overruns."""
    started = time.monotonic()
    args = ["--checkpoint", checkpoint, "--tasks", challenges, "--out", out, *(["--views", views] if views else [])]
    if not run(command(processes, "arc_trm.kaggle_run", *args), timeout, log):
        return None
    found = json.loads(Path(out).read_text())
    return Speed(startup=time.monotonic() - started - found["timed_seconds"], predict=found["predict_seconds"],
                 unseen=found["unseen_tasks"])


def adapt_seconds(remaining: float, speed: Speed, margin: float, min_predict: float) -> float:
    """Adaptation's --time-budget: the time left less its start-up, prediction's (start-up and work, and
    never less than `min_predict`, the least the notebook starts prediction with), and `margin` for each
    command's last write (a checkpoint, the submission)."""
    return remaining - speed.startup - max(speed.startup + speed.predict, min_predict) - 2 * margin


def probe(checkpoint: str, tasks_source: str, out: str, views: int | None = None) -> None:
    """Write `out`: prediction's cost on these tasks, measured with the checkpoint as it is (adaptation
    adds puzzle rows but leaves the cost of a view unchanged), as {predict_seconds, timed_seconds,
    unseen_tasks}. Runs in every process of a launch, each timing its own share."""
    acc = make_accelerator(read_config(find_checkpoint(checkpoint)).run.mixed_precision)  # as predict makes it
    cfg, puzzles, model = load_for_inference(checkpoint)
    tasks = load_tasks(tasks_source)
    started = time.monotonic()
    # adaptation gives each unseen task data.views puzzle rows (or --views), and prediction votes over them
    seconds = Predictor(model, cfg, puzzles, acc).estimate_seconds(tasks, views)
    acc.wait_for_everyone()
    if acc.is_main_process:
        atomic_write_json(out, {"predict_seconds": seconds, "timed_seconds": time.monotonic() - started,
                                "unseen_tasks": len(unknown_tasks(tasks, puzzles))})


def main(argv: list[str] | None = None) -> None:
    """The probe's command line, which the notebook launches as it launches `arc-trm predict`."""
    p = argparse.ArgumentParser(prog="python -m arc_trm.kaggle_run", description=probe.__doc__)
    p.add_argument("--checkpoint", required=True, help="a run directory or checkpoint folder")
    p.add_argument("--tasks", required=True, help="a dataset name or a Kaggle challenges JSON")
    p.add_argument("--out", required=True, help="the JSON file to write")
    p.add_argument("--views", type=int, default=None, help="views per test input (default: the config's)")
    args = p.parse_args(argv)
    probe(args.checkpoint, args.tasks, args.out, args.views)


if __name__ == "__main__":
    main()
