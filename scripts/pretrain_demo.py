"""Build the pretrained checkpoint `arc-trm demo` starts from (arc_trm/pretrained/tiny-cpu/).

    python scripts/pretrain_demo.py [--steps 4000 7000] [--seed 0] [--work runs/pretrain-demo]
    python scripts/pretrain_demo.py --work RUN --export-only      # write RUN's latest checkpoint only

`tiny-cpu` trains on every pair of the ARC-AGI-1 training tasks whose largest grid is 9x9 to 12x12
(`arc1-train:over=8:max_side=12`, 150 tasks): none of the tasks the demo is measured on (ARC-AGI-1
training tasks up to 8x8, arc1-small among them, and every evaluation set) is among them, and the demo
refuses a start checkpoint that was trained on a task it scores. The checkpoint is then written for
inference only (the EMA weights as the weights, no optimizer state or rolling batches), a few MB.

Several step counts train in stages in the same run directory: the first to its count, each next one
resumed from there with the learning-rate schedule fitted anew to its count (a warm restart). The
shipped start is 4,000 steps, then resumed to 7,000.
"""

import argparse
import json
import shutil

from safetensors.torch import load_file, save_file

from arc_trm.checkpoint import CONFIG_FILE, EMA_FILE, MODEL_FILE, PUZZLES_FILE, STATE_FILE, latest_checkpoint
from arc_trm.config import load_config
from arc_trm.pipeline import SHIPPED_START, train
from arc_trm.train import make_accelerator

SOURCE = "arc1-train:over=8:max_side=12"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[4000, 7000],
                        help="the step count of each stage, increasing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default="runs/pretrain-demo", help="the training run directory")
    parser.add_argument("--export-only", action="store_true", help="write --work's latest checkpoint, no training")
    args = parser.parse_args()
    if args.steps != sorted(set(args.steps)):
        parser.error("--steps: each stage's count must be larger than the one before")
    for steps in [] if args.export_only else args.steps:
        cfg = load_config("tiny-cpu", [f"data.train_tasks={SOURCE}", "data.held_out_tasks=",
                                       f"max_steps={steps}", f"seed={args.seed}", "eval_every=0"])
        train(cfg, args.work, make_accelerator(cfg.run.mixed_precision))
    ckpt = latest_checkpoint(args.work)
    shutil.rmtree(SHIPPED_START, ignore_errors=True)
    SHIPPED_START.mkdir(parents=True)
    weights = {**load_file(ckpt / MODEL_FILE), **load_file(ckpt / EMA_FILE)}  # the EMA weights, as inference uses
    save_file(weights, SHIPPED_START / MODEL_FILE)
    for name in (CONFIG_FILE, PUZZLES_FILE):
        shutil.copy2(ckpt / name, SHIPPED_START / name)
    state = json.loads((ckpt / STATE_FILE).read_text())
    (SHIPPED_START / STATE_FILE).write_text(json.dumps({
        "step": state["step"], "pretrained_on": SOURCE,
        "built_by": built_by(args)}) + "\n")
    print(f"wrote {SHIPPED_START}: {state['step']} steps on {SOURCE}")


def built_by(args: argparse.Namespace) -> str:
    """The command that made the shipped start: the stages trained here, or, with --export-only, the export
    of a run whose stages this invocation does not know."""
    if args.export_only:
        return f"python scripts/pretrain_demo.py --work {args.work} --export-only"
    return f"python scripts/pretrain_demo.py --steps {' '.join(map(str, args.steps))} --seed {args.seed}"


if __name__ == "__main__":
    main()
