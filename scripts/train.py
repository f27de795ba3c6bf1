"""Train a TRM: `python scripts/train.py --config tiny-cpu --out runs/t max_steps=50`.

The same as `arc-trm train`, and the script to launch on many processes:
`accelerate launch scripts/train.py ...` or `torchrun --nproc_per_node 2 scripts/train.py ...`.
Starting again with an existing --out resumes.
"""

import sys

from arc_trm.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
