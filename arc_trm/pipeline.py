"""The jobs built from the pieces: train (a run directory, resumable, with held-out evaluation), solve
(adapt if needed, then predict, pooling several checkpoints' votes), evaluate (solve + score + per-task
results + report) and the demo (train tiny-cpu on small tasks, then evaluate, on a CPU).

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
from accelerate import Accelerator

from arc_trm.adapt import adapt, unknown_tasks
from arc_trm.atomic import atomic_write_json
from arc_trm.checkpoint import check_resumable, find_checkpoint, latest_checkpoint, load_for_inference, read_puzzles
from arc_trm.config import Config, load_config, sets_field
from arc_trm.data import ExampleTable, training_data
from arc_trm.errors import UserError
from arc_trm.infer import Candidate, Predictor, Votes, grid_key, held_out_accuracy, pool
from arc_trm.model import TRM
from arc_trm.render import write_report
from arc_trm.submission import (
    CONFIDENCE,
    binomial_interval,
    fallback_submission,
    format_interval,
    load_submission,
    score_submission,
    validate_submission,
    write_submission,
)
from arc_trm.tasks import Task, load_tasks
from arc_trm.train import Schedule, Trainer

PASS_AT = (1, 2, 5, 10, 100)
SHIPPED_START = Path(__file__).parent / "pretrained" / "tiny-cpu"  # what `arc-trm demo` adapts, when present
PREDICT_SLACK = 1.25  # prediction's measured cost is reserved with this factor ...
SAVE_SECONDS = 5.0  # ... plus this, for adaptation's last checkpoint and reloading it


def train(cfg: Config, out_dir: str | Path, accelerator: Accelerator, time_budget: float | None = None,
          budget_decides: bool = False, quiet: bool = False) -> dict:
    """Train `cfg` in `out_dir`, resuming from its latest checkpoint if there is one. With a time budget,
    training stops when it is spent; `budget_decides` lifts the config's max_steps (the schedule is
    fitted to the budget either way). Held-out test inputs are scored every run.eval_every steps."""
    out_dir = Path(out_dir)
    ckpt = latest_checkpoint(out_dir)
    if ckpt is not None:
        check_resumable(cfg, ckpt)
    data = training_data(cfg)
    if cfg.optim.epochs:  # the reference's way of stating a run's length, resolved (and saved) here
        cfg.optim.max_steps = data.steps_for_epochs(cfg.optim.epochs, cfg.optim.batch_size)
    trainer = Trainer(cfg, out_dir, data, accelerator, quiet=quiet)
    if accelerator.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out_dir / "config.json", cfg.to_dict(), indent=2)
    if ckpt is not None:
        trainer.resume(ckpt)
        if accelerator.is_main_process and not quiet:
            print(f"resuming from {ckpt} at step {trainer.step}", file=sys.stderr)
    schedule = Schedule(cfg.optim, None if budget_decides and time_budget else cfg.optim.max_steps, time_budget,
                        start_step=trainer.step)

    def held_out(model):
        return held_out_accuracy(model, cfg, data.puzzles, data.tasks, data.held_out, accelerator)

    return trainer.fit(schedule, held_out if data.held_out else None)


def plan(cfg: Config) -> dict:
    """What `train` would do, without training (`arc-trm train --dry-run`): the data loaded, the puzzle
    table and the model built, and their sizes, the resolved step count and the canvas buckets' shares."""
    data = training_data(cfg)
    steps = data.steps_for_epochs(cfg.optim.epochs, cfg.optim.batch_size) if cfg.optim.epochs else cfg.optim.max_steps
    model = TRM(cfg.model, num_puzzles=1)  # the dense weights; the puzzle table's size is the layout's
    table = ExampleTable(data.puzzles, data.pairs, cfg.data.buckets)
    return {"config": cfg.name, "tasks": len(data.tasks), "examples": len(table),
            "sources": [dict(zip(("role", "source", "tasks", "pairs"), row)) for row in data.sources],
            "puzzle_rows": data.puzzles.num_rows,
            "params": sum(p.numel() for name, p in model.named_parameters() if not name.startswith("puzzles.")),
            "max_steps": steps, "epochs": cfg.optim.epochs, "batch_size": cfg.optim.batch_size,
            "examples_per_view": data.examples_per_view(),
            "buckets": {side: len(idx) / len(table) for side, idx in table.by_bucket.items()}}


def solve(checkpoints: list[str | Path], tasks: list[Task], out: str | Path, accelerator: Accelerator, *,
          views: int | None = None, time_budget: float | None = None, no_adapt: bool = False,
          adapt_dir: str | Path | None = None, adapt_mode: str = "full", adapt_steps: int = 1000,
          stop_on_halt: bool = False, batch_size: int | None = None, rank: str | None = None) -> list[Votes]:
    """Adapt each checkpoint to the tasks it has not seen (unless `no_adapt`), then vote over views and
    write the submission `out`: valid from the first moment, improved as views complete, the votes of
    all checkpoints pooled (summed per candidate). A time budget is shared evenly by the checkpoints;
    within a checkpoint's share, prediction's cost is measured first (Predictor.estimate_seconds) and
    adaptation gets the rest. `rank` overrides the checkpoints' infer.rank. Returns each checkpoint's votes."""
    started, out = time.monotonic(), Path(out)
    if accelerator.is_main_process:  # a valid file before anything else: Ctrl-C or a crash keeps it
        write_submission(out, fallback_submission(tasks))
    done: list[Votes] = []
    for k, ckpt in enumerate(checkpoints):
        share = None if time_budget is None else (time_budget - (time.monotonic() - started)) / (len(checkpoints) - k)
        begun = time.monotonic()
        cfg, puzzles, model = load_for_inference(ckpt)
        if unknown_tasks(tasks, puzzles) and not no_adapt:
            where = Path(adapt_dir) if adapt_dir else out.with_name(out.stem + "-adapted")
            budget = None
            if share is not None:
                predicting = Predictor(model, cfg, puzzles, accelerator, batch_size).estimate_seconds(tasks, views)
                budget = max(0.0, share - (time.monotonic() - begun) - PREDICT_SLACK * predicting - SAVE_SECONDS)
            adapted = adapt(ckpt, tasks, where / f"checkpoint-{k}" if len(checkpoints) > 1 else where, accelerator,
                            mode=adapt_mode, steps=adapt_steps, views=views, time_budget=budget)
            cfg, puzzles, model = load_for_inference(adapted)
        if rank is not None:
            cfg.infer.rank = rank
        left = None if share is None else max(0.0, share - (time.monotonic() - begun))
        predictor = Predictor(model, cfg, puzzles, accelerator, batch_size=batch_size, stop_on_halt=stop_on_halt)
        done.append(predictor.predict(tasks, out, n_views=views, time_budget=left, prior=done))
    return done


def truth_rank(ranked: list[Candidate], truth: np.ndarray) -> int | None:
    """The 1-based place of `truth` among a ballot's ranked candidates, None if it is not one."""
    for rank, cand in enumerate(ranked, start=1):
        if np.array_equal(cand.grid, truth):
            return rank
    return None


def results(tasks: list[Task], votes: Votes, submission: dict, source: str) -> dict:
    """results.json: the scores (when solutions are known) and every test input's top candidates."""
    per_task, ranks = {}, []
    for task in tasks:
        entries = []
        for j, ballot in enumerate(votes[task.id]):
            ranked = ballot.ranked()  # ranking scores candidates (and finds the consensus grids): once per ballot
            rank = truth_rank(ranked, task.test_outputs[j]) if task.test_outputs is not None else None
            ranks.append(rank)
            entries.append({"candidates": [{"grid": c.grid.tolist(), "votes": c.votes, "halt_prob": c.halt_prob}
                                           for c in ranked[:10]],
                            "correct_rank": rank})
        per_task[task.id] = entries
    out = {"source": source, "tasks": per_task, "scores": None}
    if all(t.test_outputs is not None for t in tasks):
        n = len(ranks)
        hits = {f"pass@{k}": sum(r is not None and r <= k for r in ranks) for k in PASS_AT}
        hits["oracle"] = sum(r is not None for r in ranks)  # any candidate right (a view's vote, or the consensus)
        scores = {name: hit / n for name, hit in hits.items()}
        official = score_submission(submission, tasks)
        scores.update(score=official["score"], task_score=official["task_score"],
                      outputs=official["outputs"], correct_outputs=official["correct_outputs"])
        # every score that counts test outputs has a binomial interval; task_score, a mean of per-task
        # fractions, has none
        scores["interval"] = {**{name: list(binomial_interval(hit, n)) for name, hit in hits.items()},
                              "score": official["interval"]}
        out["scores"] = scores
    return out


def evaluate(checkpoints: list[str | Path], tasks: list[Task], source: str, out_dir: str | Path,
             accelerator: Accelerator, **solve_args) -> dict:
    """Solve, then write results.json and report.html beside the submission; returns the results. With
    several checkpoints, each candidate also records the votes each checkpoint gave it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sub_path = out_dir / "submission.json"
    per_checkpoint = solve(checkpoints, tasks, sub_path, accelerator, adapt_dir=out_dir / "adapted", **solve_args)
    if not accelerator.is_main_process:
        return {}
    submission = load_submission(sub_path)
    validate_submission(submission, tasks, str(sub_path))
    res = results(tasks, pool(per_checkpoint), submission, source)
    res["checkpoints"], res["precision"] = [str(c) for c in checkpoints], accelerator.mixed_precision
    for task in tasks:
        for j, entry in enumerate(res["tasks"][task.id]):
            for cand in entry["candidates"]:
                key = grid_key(np.array(cand["grid"], dtype=np.uint8))
                cand["checkpoint_votes"] = [v[task.id][j].candidates[key].votes if key in v[task.id][j].candidates
                                            else 0 for v in per_checkpoint]
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
    interval = {name: format_interval(*ci) for name, ci in scores["interval"].items()}
    print(f"Kaggle score (pass@2): {scores['score']:.4f} ({scores['correct_outputs']}/{scores['outputs']} "
          f"test outputs; {CONFIDENCE:.0%} interval {interval['score']}); per-task score {scores['task_score']:.4f}")
    names = [*(f"pass@{k}" for k in PASS_AT), "oracle"]
    print("  ".join(f"{name} {scores[name]:.3f} [{interval[name]}]" for name in names),
          f"({CONFIDENCE:.0%} intervals in brackets)")
    print(f"submission, results and report in {out_dir}")


def demo(accelerator: Accelerator, source: str = "arc1-small", out_dir: str | Path = "runs/demo",
         minutes: float = 9.0, overrides: list[str] = (), start: str | Path | None = "auto") -> dict:
    """Train `tiny-cpu` on the demonstration pairs of `source` for `minutes` (the budget decides the step
    count unless max_steps is among the overrides), then vote over the views of their test inputs (which
    were never trained on), write and score the submission.

    Training starts from a pretrained checkpoint and adapts it (every weight) when there is one: `start`,
    or with "auto" the package's SHIPPED_START (none: from scratch). A start that was trained on any of the
    tasks is refused (with "auto": not used), so the score is always one of tasks never seen."""
    started = time.monotonic()
    tasks = load_tasks(source)
    if any(t.test_outputs is None for t in tasks):
        raise UserError(f"demo: {source} has no solutions to score against")
    cfg = load_config("tiny-cpu", [f"data.held_out_tasks={source}", "data.train_tasks=", "eval_every=0", *overrides])
    if start == "auto":
        start = SHIPPED_START if latest_checkpoint(SHIPPED_START) else None
        if start is not None and seen_in_training(start, tasks):
            print(f"demo: {start} was pretrained on some of these tasks: training from scratch", file=sys.stderr)
            start = None
    elif start is not None and (seen := seen_in_training(start, tasks)):
        raise UserError(f"demo: --start {start} was trained on task {seen[0]} of {source} ({len(seen)} of its "
                        "tasks); its score would not be of unseen tasks")
    out_dir = Path(out_dir)
    run_dir = out_dir / "run"
    shutil.rmtree(run_dir, ignore_errors=True)  # the demo always trains afresh
    if start is not None:
        print(f"demo: adapting {start} (every weight) to the demonstrations of {len(tasks)} tasks of {source} "
              f"for {minutes:g} min", file=sys.stderr)
        steps = cfg.optim.max_steps if sets_field(overrides, "max_steps") else None
        adapt(start, tasks, run_dir, accelerator, mode="full", steps=steps, time_budget=60 * minutes,
              overrides=[o for o in overrides if not sets_field([o], "max_steps")])
    else:
        print(f"demo: training tiny-cpu on the demonstrations of {len(tasks)} tasks of {source} "
              f"for {minutes:g} min", file=sys.stderr)
        train(cfg, run_dir, accelerator, time_budget=60 * minutes,
              budget_decides=not sets_field(overrides, "max_steps"))
    print("demo: predicting their test inputs with voting over views", file=sys.stderr)
    res = evaluate([run_dir], tasks, source, out_dir, accelerator, no_adapt=True, rank=cfg.infer.rank)
    res["seconds"], res["start"] = time.monotonic() - started, str(start) if start else None
    return res


def seen_in_training(checkpoint: str | Path, tasks: list[Task]) -> list[str]:
    """The ids of `tasks` that `checkpoint` has puzzle rows for (was trained on), sorted."""
    return sorted({t.id for t in tasks} & set(read_puzzles(find_checkpoint(checkpoint)).task_ids))
