"""Benchmark (not a test): is training on canvas buckets as good as on fixed 30x30 canvases?

Trains `tiny-cpu` on the same tasks for the same number of steps twice per seed, once with every grid
on a 30x30 canvas (`data.buckets=[30]`, the reference layout) and once with the config's buckets, and
prints for each run, on the held-out test inputs (identity view, all N_sup steps, EMA weights), the
exact accuracy and the cell accuracy (predicted tokens equal to the true output's tokens, EOS edge
included, over the true output's cells; it separates short runs whose exact accuracy is still 0),
and the wall time:

    python scripts/bucket_quality.py [--tasks arc1-small] [--steps 60] [--seeds 0 1] [key=value ...]

Extra `key=value` arguments override the config of every run alike (e.g. batch_size=8).
"""

import os

# OpenMP threads that spin while waiting ruin throughput on a busy machine (see arc_trm.cli.main)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from arc_trm.checkpoint import load_for_inference  # noqa: E402
from arc_trm.config import load_config  # noqa: E402
from arc_trm.data import estimate_output_side  # noqa: E402
from arc_trm.encoding import PAD, canvas_side, encode  # noqa: E402
from arc_trm.pipeline import train  # noqa: E402
from arc_trm.tasks import load_tasks  # noqa: E402
from arc_trm.train import make_accelerator  # noqa: E402


@torch.no_grad()
def cell_accuracy(run_dir: str, tasks: list) -> float:
    """Fraction of the true outputs' tokens (cells and EOS edge) predicted right, identity view."""
    cfg, puzzles, model = load_for_inference(run_dir)
    model.eval()
    right = total = 0
    for task in tasks:
        row = puzzles.row(puzzles.index(task.id), 0)
        for grid, truth in zip(task.test_inputs, task.test_outputs):
            side = canvas_side(estimate_output_side(task, grid), tuple(cfg.data.buckets))
            pred = model.solve(torch.from_numpy(encode(grid, side)).long()[None], torch.tensor([row]))[0]
            label = encode(truth, side)
            cells = label != PAD
            right += int((pred[0].numpy() == label)[cells].sum())
            total += int(cells.sum())
    return right / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny-cpu")
    parser.add_argument("--tasks", default="arc1-small",
                        help="evaluation tasks: their demonstrations are trained on, their tests held out")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()
    base = load_config(args.config, args.overrides)
    layouts = {"fixed": [30], "bucketed": base.data.buckets}
    tasks = load_tasks(args.tasks)
    results: dict[str, list[dict]] = {name: [] for name in layouts}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for name, buckets in layouts.items():
                cfg = load_config(args.config, [*args.overrides, f"data.eval_tasks={args.tasks}", "data.train_tasks=",
                                                f"data.buckets={json.dumps(buckets)}", f"max_steps={args.steps}",
                                                f"seed={seed}", "eval_every=0", f"save_every={args.steps}"])
                start = time.monotonic()
                out = train(cfg, f"{tmp}/{name}-{seed}", make_accelerator(cfg.run.mixed_precision), quiet=True)
                seconds = time.monotonic() - start
                run = {"seed": seed, "eval_exact_accuracy": out["eval_exact_accuracy"],
                       "eval_cell_accuracy": cell_accuracy(f"{tmp}/{name}-{seed}", tasks), "seconds": seconds}
                results[name].append(run)
                print(json.dumps({"layout": name, **run}), flush=True)
    summary = {name: {"mean_eval_exact_accuracy": statistics.mean(r["eval_exact_accuracy"] for r in runs),
                      "mean_eval_cell_accuracy": statistics.mean(r["eval_cell_accuracy"] for r in runs),
                      "runs": runs} for name, runs in results.items()}
    print(json.dumps({"config": base.name, "tasks": args.tasks, "steps": args.steps, **summary}, indent=1))


if __name__ == "__main__":
    main()
