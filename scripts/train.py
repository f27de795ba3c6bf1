"""Train a TRM: `python scripts/train.py --config tiny-cpu --out runs/t max_steps=50`.

The same script runs on many processes: `accelerate launch scripts/train.py ...` or
`torchrun --nproc_per_node 2 scripts/train.py ...`. Starting again with an existing --out resumes.
"""

import argparse
import sys

from arc_trm.config import add_train_arguments
from arc_trm.errors import UserError
from arc_trm.train import train_command


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_arguments(parser)
    args = parser.parse_args()
    try:
        train_command(args)
    except UserError as e:
        print(f"train: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
