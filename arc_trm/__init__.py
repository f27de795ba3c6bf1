"""arc-trm: Tiny Recursive Models for ARC-AGI.

The paper: "Less is More: Recursive Reasoning with Tiny Networks" (arXiv 2510.04871). "The reference", in
comments throughout, is its public code, https://github.com/SamsungSAILMontreal/TinyRecursiveModels
(pretrain.py, models/recursive_reasoning/trm.py, dataset/build_arc_dataset.py, evaluators/arc.py).

Modules, one responsibility each, importing one way (top to bottom): tasks (load and validate ARC
tasks), augment (invertible views), encoding (grid <-> canvas tokens), config, data (puzzles, examples,
the rolling batch), model (the TRM), loss, checkpoint (the on-disk format), train (the Accelerate loop),
infer (views -> recursion -> vote), adapt (test-time training on unseen tasks), submission (Kaggle JSON
and the official score), pipeline (train, solve, evaluate, demo), render (pictures and reports), bench,
kaggle_submit / kaggle_run / rehearse (the competition path), cli (the `arc-trm` command).
"""

import os
from importlib.metadata import PackageNotFoundError, version

# OpenMP threads that spin while they wait for work make every op many times slower once other processes
# share the cores (measured: a tiny-cpu step 6 s instead of 0.2 s on 2 busy cores). Read when torch
# loads, which the imports below do; a user's setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    __version__ = version("arc-trm")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

from arc_trm.checkpoint import load_for_inference  # noqa: E402
from arc_trm.config import Config, load_config  # noqa: E402
from arc_trm.infer import Predictor  # noqa: E402
from arc_trm.model import TRM  # noqa: E402
from arc_trm.pipeline import demo, evaluate, solve, train  # noqa: E402
from arc_trm.submission import score_submission, validate_submission, write_submission  # noqa: E402
from arc_trm.tasks import Task, load_tasks  # noqa: E402
from arc_trm.train import Trainer, make_accelerator  # noqa: E402

__all__ = ["Config", "Predictor", "TRM", "Task", "Trainer", "demo", "evaluate", "load_config", "load_for_inference",
           "load_tasks", "make_accelerator", "score_submission", "solve", "train", "validate_submission",
           "write_submission"]
