"""Synthetic training tasks: the geometry ARC takes for granted, drawn on real ARC grids.

A tiny model trained for minutes learns the demonstrations of a new task by heart more easily than it
learns that the task is "mirror the grid": attention with relative positions has no notion of a grid's
far edge, and an ARC training set shows each geometric rule in a handful of tasks. `geometry:SOURCE`, a
training source (data.train_tasks), adds one task per rule of a fixed family: the seven non-identity
dihedral transforms, tilings (plain and mirrored), scaling up and down. Each has `PAIRS` demonstration
pairs whose inputs are crops of SOURCE's grids, so the network practises the rules on ARC-like content;
under the run's views each task becomes several puzzles (rot90 under a flip is another rotation).

The tasks have no test inputs (nothing to score) and ids that no ARC task has (`geometry-...`), so a
checkpoint trained on them has seen none of the tasks an evaluation set holds. Generation is seeded and
fixed: the same SOURCE always gives the same tasks.
"""

import zlib
from collections.abc import Callable

import numpy as np

from arc_trm.augment import DIHEDRAL_NAMES, dihedral
from arc_trm.errors import UserError
from arc_trm.tasks import Task, load_tasks

PREFIX = "geometry:"
PAIRS = 10  # demonstration pairs per synthetic task
MAX_OUTPUT = 9  # outputs fit a 10x10 canvas (with the EOS edge): cheap to train on


def _tile(rows: list[list[int]]) -> Callable[[np.ndarray], np.ndarray]:
    """The grid repeated in a block pattern, each block under a dihedral transform of its own."""
    return lambda g: np.block([[dihedral(g, d) for d in row] for row in rows])


def _scale(k: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda g: np.kron(g, np.ones((k, k), dtype=g.dtype))


# name -> (rule: input -> output, the largest input side whose output fits MAX_OUTPUT)
RULES: dict[str, tuple[Callable[[np.ndarray], np.ndarray], int]] = {
    **{DIHEDRAL_NAMES[d]: (_tile([[d]]), MAX_OUTPUT) for d in range(1, 8)},  # one block: the transform alone
    "tile-1x2": (_tile([[0, 0]]), MAX_OUTPUT // 2),
    "tile-2x1": (_tile([[0], [0]]), MAX_OUTPUT // 2),
    "tile-2x2": (_tile([[0, 0], [0, 0]]), MAX_OUTPUT // 2),
    "tile-3x3": (_tile([[0] * 3] * 3), MAX_OUTPUT // 3),
    "mirror-1x2": (_tile([[0, 4]]), MAX_OUTPUT // 2),
    "mirror-2x1": (_tile([[0], [5]]), MAX_OUTPUT // 2),
    "mirror-2x2": (_tile([[0, 4], [5, 2]]), MAX_OUTPUT // 2),
    "scale-2": (_scale(2), MAX_OUTPUT // 2),
    "scale-3": (_scale(3), MAX_OUTPUT // 3),
}
DOWNSCALED = {"unscale-2": 2, "unscale-3": 3}  # the input is the output scaled up by this factor


def crop(grids: list[np.ndarray], max_side: int, rng: np.random.Generator) -> np.ndarray:
    """A random crop of a random grid, each side 2 to `max_side` (or the grid's), of at least two colours."""
    while True:
        g = grids[rng.integers(len(grids))]
        h, w = (int(rng.integers(min(2, s), min(max_side, s) + 1)) for s in g.shape)
        r, c = int(rng.integers(g.shape[0] - h + 1)), int(rng.integers(g.shape[1] - w + 1))
        piece = g[r:r + h, c:c + w]
        if len(np.unique(piece)) > 1:
            return np.ascontiguousarray(piece)


def geometry_tasks(grids: list[np.ndarray], seed: int = 0) -> list[Task]:
    """One task per rule of RULES and DOWNSCALED, with PAIRS pairs each, inputs cropped from `grids`; a pair
    whose output equals its input (a symmetric crop) is drawn again, as it shows nothing of the rule."""
    if not any(len(np.unique(g)) > 1 for g in grids):
        raise UserError(f"{PREFIX}: the source has no grid of two colours or more to crop")
    tasks = []
    for name, (rule, max_side) in RULES.items():
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        pairs = []
        while len(pairs) < PAIRS:
            g = crop(grids, max_side, rng)
            out = rule(g)
            if out.shape != g.shape or not np.array_equal(out, g):
                pairs.append((g, np.ascontiguousarray(out)))
        tasks.append(Task(f"geometry-{name}", pairs, [], []))
    for name, k in DOWNSCALED.items():
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        pairs = [(_scale(k)(g), g) for g in (crop(grids, MAX_OUTPUT // k, rng) for _ in range(PAIRS))]
        tasks.append(Task(f"geometry-{name}", pairs, [], []))
    return tasks


def load_training_tasks(source: str) -> list[Task]:
    """A training source: `geometry:SOURCE` (synthetic tasks from SOURCE's grids, test outputs included),
    or any source `tasks.load_tasks` reads."""
    if not source.startswith(PREFIX):
        return load_tasks(source)
    base = source[len(PREFIX):]
    if not base:
        raise UserError(f"task source {source!r}: name the source whose grids to crop, e.g. {PREFIX}arc1-train")
    return geometry_tasks([g for t in load_tasks(base) for g in t.grids(with_test_outputs=True)])
