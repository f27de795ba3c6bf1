"""Benchmark (not a test): is training on canvas buckets as good as on fixed 30x30 canvases?

Trains `tiny-cpu` on the same tasks for the same number of steps twice per seed, once with every grid
on a 30x30 canvas (`data.buckets=[30]`, the reference layout) and once with the config's buckets, and
prints the exact accuracy on the held-out test inputs (identity view, all N_sup steps, EMA weights)
of each run, and the wall time:

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

from arc_trm.config import load_config  # noqa: E402
from arc_trm.train import run_training  # noqa: E402


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
    results: dict[str, list[dict]] = {name: [] for name in layouts}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for name, buckets in layouts.items():
                cfg = load_config(args.config, [*args.overrides, f"data.eval_tasks={args.tasks}", "data.train_tasks=",
                                                f"data.buckets={json.dumps(buckets)}", f"max_steps={args.steps}",
                                                f"seed={seed}", "eval_every=0", f"save_every={args.steps}"])
                start = time.monotonic()
                out = run_training(cfg, f"{tmp}/{name}-{seed}", quiet=True)
                run = {"seed": seed, "eval_exact_accuracy": out["eval_exact_accuracy"],
                       "token_accuracy": out.get("token_accuracy"), "seconds": time.monotonic() - start}
                results[name].append(run)
                print(json.dumps({"layout": name, **run}), flush=True)
    summary = {name: {"mean_eval_exact_accuracy": statistics.mean(r["eval_exact_accuracy"] for r in runs),
                      "runs": runs} for name, runs in results.items()}
    print(json.dumps({"config": base.name, "tasks": args.tasks, "steps": args.steps, **summary}, indent=1))


if __name__ == "__main__":
    main()
