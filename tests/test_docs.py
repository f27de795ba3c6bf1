"""Every command the README and docs/ show in a code block is a real one: `arc-trm ...` lines and
`scripts/train.py` launches (behind python, torchrun or accelerate launch) parse with the real argument
parser, and a training command's config and overrides load. Running them is the other tests' job: each
command has its end-to-end test, on tiny settings."""

import re
import shlex
from pathlib import Path

import pytest

from arc_trm.cli import build_parser
from arc_trm.config import load_config

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def documented_commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of every arc-trm command in the docs' code blocks; scripts/train.py becomes `train`."""
    found = []
    for path in DOCS:
        for language, block in re.findall(r"```(\w*)\n(.*?)```", path.read_text(), flags=re.S):
            if language not in ("", "bash", "sh", "console"):
                continue
            for line in re.sub(r"\\\n\s*", " ", block).splitlines():
                line = line.strip().removeprefix("$ ")
                if not line.startswith(("arc-trm ", "python ", "accelerate ", "torchrun ")):
                    continue
                words = shlex.split(line, comments=True)
                if words[:1] == ["arc-trm"]:
                    found.append((f"{path.name}: {line}", words[1:]))
                elif "scripts/train.py" in words:
                    found.append((f"{path.name}: {line}", ["train", *words[words.index("scripts/train.py") + 1:]]))
    return found


COMMANDS = documented_commands()


def test_the_docs_show_the_commands():
    assert len(COMMANDS) > 30
    shown = {argv[0] for _, argv in COMMANDS}
    assert {"demo", "train", "adapt", "predict", "evaluate", "score", "validate", "rehearse", "submit"} <= shown


@pytest.mark.parametrize("where, argv", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_documented_command_parses(where, argv):
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:
        pytest.fail(f"{where}: does not parse (exit {e.code})")
    if args.command == "train":
        load_config(args.config, args.overrides)  # every override names a real field with a valid value
