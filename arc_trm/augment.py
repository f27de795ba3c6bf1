"""Invertible augmentations of ARC grids: a View is a dihedral transform and a colour permutation.

Dihedral ids follow the reference: 0 identity, 1 rot90, 2 rot180, 3 rot270 (numpy's counter-clockwise
np.rot90 with k=1, 2, 3), 4 flip left-right, 5 flip up-down, 6 transpose, 7 anti-transpose. A view
applies the dihedral transform first, then maps colour c to `colours[c]`; `invert` undoes both in the
opposite order. Translation, the third augmentation of the paper, is not part of a view: it only places
a grid on its canvas during training (data.ExampleTable.encode).
"""

import math
import re
from dataclasses import dataclass
from itertools import permutations

import numpy as np

from arc_trm.tasks import Task

DIHEDRAL_NAMES = ["identity", "rot90", "rot180", "rot270", "flip_lr", "flip_ud", "transpose", "anti_transpose"]
DIHEDRAL_INVERSE = [0, 3, 2, 1, 4, 5, 6, 7]
IDENTITY_COLOURS = tuple(range(10))


def dihedral(grid: np.ndarray, d: int) -> np.ndarray:
    """Apply dihedral transform `d` (0-7) to a 2-D array; agrees with numpy's rot90 / flip / T."""
    if d == 0:
        return grid
    if d in (1, 2, 3):
        return np.rot90(grid, k=d)
    if d == 4:
        return np.fliplr(grid)
    if d == 5:
        return np.flipud(grid)
    if d == 6:
        return grid.T
    if d == 7:
        return np.rot90(grid, k=2).T
    raise ValueError(f"dihedral id must be 0-7, got {d}")


@dataclass(frozen=True)
class View:
    dihedral: int = 0  # 0-7, see DIHEDRAL_NAMES
    colours: tuple[int, ...] = IDENTITY_COLOURS  # colour c -> colours[c], a permutation of 0-9

    def __post_init__(self):
        if not 0 <= self.dihedral <= 7:
            raise ValueError(f"dihedral id must be 0-7, got {self.dihedral}")
        if sorted(self.colours) != list(range(10)):
            raise ValueError(f"colours must be a permutation of 0-9, got {self.colours}")

    def apply(self, grid: np.ndarray) -> np.ndarray:
        lut = np.asarray(self.colours, dtype=np.uint8)
        return np.ascontiguousarray(lut[dihedral(grid, self.dihedral)])

    def invert(self, grid: np.ndarray) -> np.ndarray:
        inverse_lut = np.argsort(np.asarray(self.colours)).astype(np.uint8)
        return np.ascontiguousarray(dihedral(inverse_lut[grid], DIHEDRAL_INVERSE[self.dihedral]))

    def __str__(self) -> str:
        return f"d{self.dihedral}-c{''.join(map(str, self.colours))}"

    @classmethod
    def parse(cls, text: str) -> "View":
        # "-t0.0": a translation suffix that checkpoints of earlier versions wrote, always zero
        m = re.fullmatch(r"d([0-7])-c(\d{10})(?:-t0\.0)?", text)
        if not m:
            raise ValueError(f"not a view string: {text!r} (expected like d3-c0123456789)")
        return cls(int(m[1]), tuple(int(c) for c in m[2]))


def random_view(rng: np.random.Generator, permute_background: bool = False) -> View:
    """A uniformly random dihedral id and colour permutation (colour 0 fixed unless asked)."""
    d = int(rng.integers(8))
    if permute_background:
        colours = tuple(int(c) for c in rng.permutation(10))
    else:
        colours = (0, *(int(c) + 1 for c in rng.permutation(9)))
    return View(d, colours)


class TaskImages:
    """A task's grids (demonstrations and test inputs) under each dihedral transform, flattened once, so
    that the content of the task under a view is one lookup (sampling 1000 views of each of 800 tasks,
    tens of thousands of tries for the symmetric ones, takes seconds, not minutes)."""

    def __init__(self, task: Task):
        grids = task.grids()
        self.images = []  # per dihedral id: (the grids' shapes as bytes, every cell in one flat array)
        for d in range(8):
            seen = [dihedral(g, d) for g in grids]
            self.images.append((np.asarray([g.shape for g in seen], dtype=np.int32).tobytes(),
                                np.concatenate([g.ravel() for g in seen])))

    def content(self, d: int, colours: np.ndarray) -> bytes:
        """The augmented task under dihedral `d` and colour map `colours` (uint8, 10): equal bytes, equal
        augmented tasks."""
        shapes, cells = self.images[d]
        return shapes + colours[cells].tobytes()

    def count_distinct(self, permute_background: bool, limit: int) -> int | None:
        """How many distinct augmented tasks the views can make, counted by trying every dihedral id with
        every map of the colours the task uses; None when that is over `limit` tries."""
        used = np.unique(self.images[0][1]).tolist()
        moved = [c for c in used if permute_background or c != 0]  # colour 0 stays unless permute_background
        targets = range(10) if permute_background else range(1, 10)
        if 8 * math.perm(len(targets), len(moved)) > limit:
            return None
        colours = np.arange(10, dtype=np.uint8)
        contents = set()
        for image in permutations(targets, len(moved)):
            colours[moved] = image
            contents.update(self.content(d, colours) for d in range(8))
        return len(contents)


def sample_views(task: Task, n: int, rng: np.random.Generator, permute_background: bool = False,
                 max_tries: int | None = None) -> list[View]:
    """Up to `n` views giving distinct augmented tasks; the first is always the identity.

    Views whose augmented task has the same content as an earlier one are dropped (as the reference
    does), so a task with few colours or much symmetry may get fewer than `n`. Draws as `random_view`
    does. When a task can make fewer distinct augmented tasks than the tries allowed (few colours), they
    are counted first and drawing stops once all are found: the same views, without the futile tries.
    """
    images = TaskImages(task)
    colours = np.arange(10, dtype=np.uint8)  # colour 0 stays unless permute_background
    views, seen = [View()], {images.content(0, colours)}
    tries = max_tries if max_tries is not None else 20 * n
    reachable = images.count_distinct(permute_background, limit=tries)
    for _ in range(tries):
        if len(views) >= n or len(views) == reachable:
            break
        d = int(rng.integers(8))
        if permute_background:
            colours[:] = rng.permutation(10)
        else:
            colours[1:] = 1 + rng.permutation(9)
        content = images.content(d, colours)
        if content not in seen:
            seen.add(content)
            views.append(View(d, tuple(colours.tolist())))
    return views
