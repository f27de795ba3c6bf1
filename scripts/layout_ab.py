"""A/B of canvas layouts at tiny scale: our layout (canvas buckets, 2-D positions) against the reference's
(one 30x30 canvas, 1-D positions, its placement, SwiGLU width and init, no gradient clipping).

    python scripts/layout_ab.py [--tasks arc1-train:max_side=8:part=2/3] [--minutes 5] [--seeds 0 1] [key=value ...]

For each seed and layout, `tiny-cpu` trains on the demonstrations of the tasks for the same time budget
(held-out test outputs never trained on), then the test inputs are solved by voting over the trained
views (pass@2, the Kaggle score) and scored cell by cell on the identity view (cell accuracy: the share
of the true outputs' tokens, EOS edge included, predicted right; it moves before exact answers do).
Prints one JSON line per run, then a summary.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see arc_trm.cli.main

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from arc_trm.checkpoint import load_for_inference  # noqa: E402
from arc_trm.config import load_config  # noqa: E402
from arc_trm.data import estimate_output_side  # noqa: E402
from arc_trm.encoding import PAD, canvas_side, encode  # noqa: E402
from arc_trm.pipeline import evaluate, train  # noqa: E402
from arc_trm.tasks import load_tasks  # noqa: E402
from arc_trm.train import make_accelerator  # noqa: E402

LAYOUTS = {
    "ours": [],
    "reference": ["data.buckets=[30]", "data.placement=reference", "model.positions=1d", "model.init=reference",
                  "model.mlp_multiple=256", "optim.grad_clip=0"],
}


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
            pred = model.predict(torch.from_numpy(encode(grid, side)).long()[None], torch.tensor([row]))[0]
            label = encode(truth, side)
            cells = label != PAD
            right += int((pred[0].numpy() == label)[cells].sum())
            total += int(cells.sum())
    return right / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="arc1-train:max_side=8:part=2/3",
                        help="held-out tasks: their demonstrations are trained on, their test outputs scored")
    parser.add_argument("--minutes", type=float, default=5.0, help="training budget per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="tiny-cpu overrides for both layouts")
    args = parser.parse_args()
    tasks = load_tasks(args.tasks)
    acc = make_accelerator("no")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for name, layout in LAYOUTS.items():
                cfg = load_config("tiny-cpu", [f"data.held_out_tasks={args.tasks}", "data.train_tasks=", "eval_every=0",
                                               f"seed={seed}", *layout, *args.overrides])
                run_dir = f"{tmp}/{name}-{seed}"
                start = time.monotonic()
                trained = train(cfg, run_dir, acc, time_budget=60 * args.minutes, budget_decides=True, quiet=True)
                res = evaluate([run_dir], tasks, args.tasks, f"{run_dir}-eval", acc, no_adapt=True)
                run = {"layout": name, "seed": seed, "steps": trained["step"], "seconds": time.monotonic() - start,
                       "correct_outputs": res["scores"]["correct_outputs"], "outputs": res["scores"]["outputs"],
                       "oracle": res["scores"]["oracle"], "cell_accuracy": cell_accuracy(run_dir, tasks)}
                runs.append(run)
                print(json.dumps(run), flush=True)
    summary = {name: {"correct_outputs": [r["correct_outputs"] for r in runs if r["layout"] == name],
                      "cell_accuracy": [round(r["cell_accuracy"], 4) for r in runs if r["layout"] == name],
                      "steps": [r["steps"] for r in runs if r["layout"] == name]} for name in LAYOUTS}
    print(json.dumps({"tasks": args.tasks, "minutes": args.minutes, "outputs": runs[0]["outputs"], **summary},
                     indent=1))


if __name__ == "__main__":
    main()
