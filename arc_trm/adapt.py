"""Test-time adaptation: teach a trained checkpoint tasks it has never seen.

Without a trained puzzle row a task cannot be solved, so each unseen task gets rows for its views,
initialised to the mean of the trained rows, and training runs on the augmented demonstration pairs
of those tasks only (their test outputs are never read). Mode "full" (the default) also fine-tunes
every weight, as the strongest public TRM Kaggle entries did and as measured here (docs/benchmarks.md:
on held-out ARC-AGI-1 training tasks, 5 and 5 of 21 test outputs against 3 for the rows alone); mode
"rows" trains only the new rows, the network fixed. It is the same Accelerate loop as training
(train.Trainer), multi-process included, and stops at a step count or a time budget, whichever comes
first. The output is a checkpoint directory that knows the old puzzles and the new ones; an interrupted
adaptation resumes from it.
"""

import sys
from pathlib import Path

import torch

from arc_trm.checkpoint import latest_checkpoint, load_for_inference
from arc_trm.config import apply_overrides
from arc_trm.data import PuzzleSet, TrainingData
from arc_trm.errors import UserError
from arc_trm.infer import check_fits
from arc_trm.model import PuzzleEmbedding
from arc_trm.tasks import Task
from arc_trm.train import Schedule, Trainer

MODES = ("full", "rows")


def unknown_tasks(tasks: list[Task], puzzles: PuzzleSet) -> list[Task]:
    return [t for t in tasks if puzzles.index(t.id) is None]


def adapt(checkpoint: str | Path, tasks: list[Task], out_dir: str | Path, accelerator, mode: str = "full",
          steps: int | None = 1000, time_budget: float | None = None, views: int | None = None,
          overrides: list[str] = (), quiet: bool = False) -> Path:
    """Adapt `checkpoint` to the tasks it does not know, for `steps` steps or `time_budget` seconds,
    whichever comes first (steps None: the budget alone); returns the new checkpoint's run directory (or
    `checkpoint` itself when every task is already known)."""
    if mode not in MODES:
        raise UserError(f"adapt mode must be one of {', '.join(MODES)}, got {mode!r}")
    cfg, puzzles, model = load_for_inference(checkpoint)
    check_fits(tasks, tuple(cfg.data.buckets))  # before training on canvases the model does not have
    new = unknown_tasks(tasks, puzzles)
    if not new:
        return Path(checkpoint)
    apply_overrides(cfg, list(overrides))
    if views:
        cfg.data.views = views
    cfg.optim.max_steps, cfg.optim.epochs = steps or 0, 0
    cfg.optim.warmup_steps = min(cfg.optim.warmup_steps, max(1, (steps or cfg.optim.warmup_steps) // 10))
    added = PuzzleSet.build(new, cfg.data.views, cfg.run.seed, cfg.data.permute_background,
                            start_row=puzzles.num_rows)
    combined = puzzles.extended(added)

    # grow the table; the new rows start at the mean of the trained rows (row 0, the blank, excluded)
    old = model.puzzles.weight.data
    table = PuzzleEmbedding(combined.num_rows, old.shape[1])
    with torch.no_grad():
        table.weight[:len(old)] = old
        table.weight[len(old):] = old[1:].mean(0) if len(old) > 1 else 0.0
    model.puzzles = table

    known = len(puzzles.task_ids)
    data = TrainingData(tasks=[None] * known + new, pairs=[[]] * known + [t.train for t in new],
                        puzzles=combined, held_out=[], sources=[])
    out_dir = Path(out_dir)
    trainer = Trainer(cfg, out_dir, data, accelerator, model=model, train_weights=(mode == "full"), quiet=quiet)
    ckpt = latest_checkpoint(out_dir)
    if ckpt is not None:
        trainer.resume(ckpt)
        if not quiet and trainer.accelerator.is_main_process:
            print(f"resuming adaptation from {ckpt} at step {trainer.step}", file=sys.stderr)
    trainer.fit(Schedule(cfg.optim, steps, time_budget, start_step=trainer.step))
    return out_dir
