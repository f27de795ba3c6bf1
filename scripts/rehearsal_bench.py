"""The benchmark of the competition path, on ARC-AGI-1 training tasks only: pretrain, then rehearse.

    python scripts/rehearsal_bench.py [--minutes 7] [--budget 420] [--seeds 0 1] [--out runs/rehearsal-bench]

The recipe, fixed so its figures compare across versions: `tiny-cpu` is pretrained for `--minutes` on
every pair of part 3 of 3 of the ARC-AGI-1 training tasks whose grids are all at most 8x8, then
`arc-trm rehearse` runs the Kaggle notebook with a `--budget` of seconds on part 2 of 3 of those tasks
(never seen in pretraining; their test outputs are read only to score), as Kaggle would run it: staged
wheels, the internet-off install, adaptation and prediction against the budget. Part 1 of 3 is left for
choosing settings. Prints one JSON line per seed (the rehearsal's report) and a summary.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

PRETRAIN = "arc1-train:max_side=8:part=3/3"
HELD_OUT = "arc1-train:max_side=8:part=2/3"
ARC_TRM = [sys.executable, "-m", "arc_trm.cli"]


def run(args: list[str]) -> str:
    done = subprocess.run([*ARC_TRM, *args], stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(f"`arc-trm {' '.join(args)}` failed (exit {done.returncode})")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=7.0, help="pretraining budget (default: 7)")
    parser.add_argument("--budget", type=float, default=420.0, help="the notebook's budget in seconds (default: 420)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", default="runs/rehearsal-bench")
    args = parser.parse_args()
    reports = []
    for seed in args.seeds:
        pretrained = Path(args.out) / f"pretrain-{seed}"
        if not (pretrained / "latest").exists():  # a finished pretraining is reused
            run(["train", "--config", "tiny-cpu", "--out", str(pretrained), "--time-budget", str(60 * args.minutes),
                 f"data.train_tasks={PRETRAIN}", "data.held_out_tasks=", f"seed={seed}"])
        report = json.loads(run(["rehearse", "--checkpoint", str(pretrained), "--tasks", HELD_OUT, "--budget",
                                 str(args.budget), "--out", str(Path(args.out) / f"rehearse-{seed}"), "--json"]))
        reports.append({"seed": seed, **report})
        print(json.dumps(reports[-1]), flush=True)
    print(json.dumps({"pretrain": PRETRAIN, "held_out": HELD_OUT, "minutes": args.minutes, "budget": args.budget,
                      "correct_outputs": [r["correct_outputs"] for r in reports], "outputs": reports[0]["outputs"],
                      "unused": [round(r["unused"], 3) for r in reports]}, indent=1))


if __name__ == "__main__":
    main()
