"""The jobs built from the pieces: solve (adapt if needed, then predict), evaluate (solve + score +
per-task results + report) and the demo (train tiny-cpu on small tasks, then evaluate, on a CPU).

An evaluation directory holds submission.json, results.json (scores, and per test input the ranked
candidates with their votes and mean halt probability, and the rank of the true output) and
report.html.
"""

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from arc_trm.adapt import adapt, unknown_tasks
from arc_trm.atomic import atomic_write_json
from arc_trm.checkpoint import load_for_inference
from arc_trm.errors import UserError
from arc_trm.infer import Ballot, Predictor, Votes
from arc_trm.submission import (
    fallback_submission,
    load_submission,
    score_submission,
    validate_submission,
    write_submission,
)
from arc_trm.tasks import Task

PASS_AT = (1, 2, 5, 10, 100)
ADAPT_SHARE = 0.6  # of a time budget, the part given to adaptation when there are unseen tasks


def solve(checkpoint: str | Path, tasks: list[Task], out: str | Path, *, views: int | None = None,
          time_budget: float | None = None, no_adapt: bool = False, adapt_dir: str | Path | None = None,
          adapt_mode: str = "rows", adapt_steps: int = 1000, stop_on_halt: bool = False,
          batch_size: int | None = None, rank: str | None = None) -> Votes:
    """Adapt the checkpoint to unseen tasks (unless `no_adapt`), then vote over views and write the
    submission `out`, valid from the first moment and improved as views complete. `rank` overrides the
    checkpoint's infer.rank."""
    from accelerate import PartialState

    started = time.monotonic()
    out = Path(out)
    cfg, puzzles, model = load_for_inference(checkpoint)
    if unknown_tasks(tasks, puzzles) and not no_adapt:
        if PartialState().is_main_process:  # a valid file before adapting: Ctrl-C or a crash there keeps it
            write_submission(out, fallback_submission(tasks))
        adapt_dir = Path(adapt_dir) if adapt_dir else out.with_name(out.stem + "-adapted")
        budget = None if time_budget is None else ADAPT_SHARE * time_budget
        checkpoint = adapt(checkpoint, tasks, adapt_dir, mode=adapt_mode, steps=adapt_steps, time_budget=budget,
                           views=views)
        cfg, puzzles, model = load_for_inference(checkpoint)
    remaining = None if time_budget is None else max(0.0, time_budget - (time.monotonic() - started))
    if rank is not None:
        cfg.infer.rank = rank
    predictor = Predictor(model, cfg, puzzles, batch_size=batch_size, stop_on_halt=stop_on_halt)
    return predictor.predict(tasks, out, n_views=views, time_budget=remaining)


def truth_rank(ballot: Ballot, truth: np.ndarray) -> int | None:
    for rank, cand in enumerate(ballot.ranked(), start=1):
        if np.array_equal(cand.grid, truth):
            return rank
    return None


def results(tasks: list[Task], votes: Votes, submission: dict, source: str) -> dict:
    """results.json: the scores (when solutions are known) and every test input's top candidates."""
    per_task, ranks = {}, []
    for task in tasks:
        entries = []
        for j, ballot in enumerate(votes[task.id]):
            rank = truth_rank(ballot, task.test_outputs[j]) if task.test_outputs is not None else None
            ranks.append(rank)
            entries.append({"candidates": [{"grid": c.grid.tolist(), "votes": c.votes, "halt_prob": c.halt_prob}
                                           for c in ballot.ranked()[:10]],
                            "correct_rank": rank})
        per_task[task.id] = entries
    out = {"source": source, "tasks": per_task, "scores": None}
    if all(t.test_outputs is not None for t in tasks):
        scores = {f"pass@{k}": sum(r is not None and r <= k for r in ranks) / len(ranks) for k in PASS_AT}
        scores["oracle"] = sum(r is not None for r in ranks) / len(ranks)  # any view right
        official = score_submission(submission, tasks)
        scores.update(score=official["score"], task_score=official["task_score"],
                      outputs=official["outputs"], correct_outputs=official["correct_outputs"])
        out["scores"] = scores
    return out


def evaluate(checkpoint: str | Path, tasks: list[Task], source: str, out_dir: str | Path, **solve_args) -> dict:
    """Solve, then write results.json and report.html beside the submission; returns the results."""
    from arc_trm.render import write_report

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sub_path = out_dir / "submission.json"
    votes = solve(checkpoint, tasks, sub_path, adapt_dir=out_dir / "adapted", **solve_args)
    submission = load_submission(sub_path)
    validate_submission(submission, tasks, str(sub_path))
    res = results(tasks, votes, submission, source)
    atomic_write_json(out_dir / "results.json", res)
    write_report(out_dir, tasks)
    return res


def print_scores(res: dict, out_dir: Path, as_json: bool) -> None:
    scores = res["scores"]
    if as_json:
        print(json.dumps({"scores": scores, "out": str(out_dir)}))
        return
    if scores is None:
        print(f"predicted {len(res['tasks'])} tasks (no solutions to score against); "
              f"submission: {out_dir / 'submission.json'}")
        return
    ks = "  ".join(f"pass@{k} {scores[f'pass@{k}']:.3f}" for k in PASS_AT)
    print(f"Kaggle score (pass@2): {scores['score']:.4f} ({scores['correct_outputs']}/{scores['outputs']} "
          f"test outputs); per-task score {scores['task_score']:.4f}")
    print(f"{ks}  oracle {scores['oracle']:.3f}")
    print(f"submission, results and report in {out_dir}")


def demo(source: str = "arc1-small", out_dir: str | Path = "runs/demo", minutes: float = 9.0,
         overrides: list[str] = ()) -> dict:
    """Train `tiny-cpu` on the demonstration pairs of `source` for `minutes`, then vote over the views
    of their test inputs (which were never trained on), write and score the submission."""
    from arc_trm.config import load_config
    from arc_trm.tasks import load_tasks
    from arc_trm.train import run_training

    started = time.monotonic()
    tasks = load_tasks(source)
    if any(t.test_outputs is None for t in tasks):
        raise UserError(f"demo: {source} has no solutions to score against")
    # the time budget, not a step count, ends the run: its schedule is fitted to the steps that fit
    cfg = load_config("tiny-cpu", [f"data.eval_tasks={source}", "data.train_tasks=", "eval_every=0",
                                   "max_steps=1000000", *overrides])
    out_dir = Path(out_dir)
    run_dir = out_dir / "run"
    shutil.rmtree(run_dir, ignore_errors=True)  # the demo always trains afresh
    print(f"demo: training tiny-cpu on the demonstrations of {len(tasks)} tasks of {source} "
          f"for {minutes:g} min", file=sys.stderr)
    run_training(cfg, run_dir, time_budget=60 * minutes)
    print("demo: predicting their test inputs with voting over views", file=sys.stderr)
    res = evaluate(run_dir, tasks, source, out_dir, no_adapt=True)
    res["seconds"] = time.monotonic() - started
    return res
