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


def build_parser() -> argparse.ArgumentParser:
    from arc_trm import __version__

    parser = argparse.ArgumentParser(prog="arc-trm", description=__doc__)
    parser.add_argument("--version", action="version", version=f"arc-trm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("datasets", help="list dataset names with their task and test-input counts")
    p.set_defaults(func=cmd_datasets)

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
