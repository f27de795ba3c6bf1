"""arc-trm: Tiny Recursive Models for ARC-AGI.

Modules, one responsibility each: tasks (load and validate ARC tasks), augment (invertible views),
encoding (grid <-> canvas tokens), data (puzzles and batches), model (the TRM), loss, train (the
Accelerate loop), adapt (test-time training on unseen tasks), infer (views -> recursion -> vote),
submission (Kaggle JSON and the official score), cli (the `arc-trm` command).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("arc-trm")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
