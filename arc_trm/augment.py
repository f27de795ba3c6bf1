"""Invertible augmentations of ARC grids: a View is a dihedral transform, a colour permutation and a
translation on the canvas.

Dihedral ids follow the reference: 0 identity, 1 rot90, 2 rot180, 3 rot270 (numpy's counter-clockwise
np.rot90 with k=1, 2, 3), 4 flip left-right, 5 flip up-down, 6 transpose, 7 anti-transpose. A view
applies the dihedral transform first, then maps colour c to `colours[c]`; `invert` undoes both in the
opposite order. The translation (row, column offset) only places the grid on the canvas (see
encoding); it does not change the grid's content, so views are deduplicated without it.
"""

import hashlib
import re
from dataclasses import dataclass

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


def _compose_table() -> list[list[int]]:
    """table[a][b] = the id c with dihedral(dihedral(g, b), a) == dihedral(g, c) for every g."""
    probe = np.arange(6).reshape(2, 3)
    images = [dihedral(probe, d) for d in range(8)]

    def find(img: np.ndarray) -> int:
        return next(d for d, im in enumerate(images) if np.array_equal(im, img))

    return [[find(dihedral(dihedral(probe, b), a)) for b in range(8)] for a in range(8)]


DIHEDRAL_COMPOSE = _compose_table()


@dataclass(frozen=True)
class View:
    dihedral: int = 0  # 0-7, see DIHEDRAL_NAMES
    colours: tuple[int, ...] = IDENTITY_COLOURS  # colour c -> colours[c], a permutation of 0-9
    offset: tuple[int, int] = (0, 0)  # (row, column) where the grid's top-left sits on the canvas

    def __post_init__(self):
        if not 0 <= self.dihedral <= 7:
            raise ValueError(f"dihedral id must be 0-7, got {self.dihedral}")
        if sorted(self.colours) != list(range(10)):
            raise ValueError(f"colours must be a permutation of 0-9, got {self.colours}")
        if min(self.offset) < 0:
            raise ValueError(f"offset must be non-negative, got {self.offset}")

    def apply(self, grid: np.ndarray) -> np.ndarray:
        lut = np.asarray(self.colours, dtype=np.uint8)
        return np.ascontiguousarray(lut[dihedral(grid, self.dihedral)])

    def invert(self, grid: np.ndarray) -> np.ndarray:
        inverse_lut = np.argsort(np.asarray(self.colours)).astype(np.uint8)
        return np.ascontiguousarray(dihedral(inverse_lut[grid], DIHEDRAL_INVERSE[self.dihedral]))

    def then(self, other: "View") -> "View":
        """The view equal to applying self, then other (offsets: other's, as it places the result)."""
        colours = tuple(other.colours[c] for c in self.colours)
        return View(DIHEDRAL_COMPOSE[other.dihedral][self.dihedral], colours, other.offset)

    def __str__(self) -> str:
        return f"d{self.dihedral}-c{''.join(map(str, self.colours))}-t{self.offset[0]}.{self.offset[1]}"

    @classmethod
    def parse(cls, text: str) -> "View":
        m = re.fullmatch(r"d([0-7])-c(\d{10})-t(\d+)\.(\d+)", text)
        if not m:
            raise ValueError(f"not a view string: {text!r} (expected like d3-c0123456789-t0.0)")
        return cls(int(m[1]), tuple(int(c) for c in m[2]), (int(m[3]), int(m[4])))


def random_view(rng: np.random.Generator, permute_background: bool = False) -> View:
    """A uniformly random dihedral id and colour permutation (colour 0 fixed unless asked)."""
    d = int(rng.integers(8))
    if permute_background:
        colours = tuple(int(c) for c in rng.permutation(10))
    else:
        colours = (0, *(int(c) + 1 for c in rng.permutation(9)))
    return View(d, colours)


def task_digest(task: Task, view: View) -> str:
    """Hash of the augmented task's content (demonstrations and test inputs) under `view`."""
    h = hashlib.sha1()
    for grid in task.grids():
        g = view.apply(grid)
        h.update(np.asarray(g.shape, dtype=np.int32).tobytes())
        h.update(g.tobytes())
    return h.hexdigest()


def sample_views(task: Task, n: int, rng: np.random.Generator, permute_background: bool = False,
                 max_tries: int | None = None) -> list[View]:
    """Up to `n` views giving distinct augmented tasks; the first is always the identity.

    Views whose augmented task has the same content as an earlier one are dropped (as the reference
    does), so a very symmetric task may get fewer than `n`.
    """
    views, seen = [View()], {task_digest(task, View())}
    tries = max_tries if max_tries is not None else 20 * n
    for _ in range(tries):
        if len(views) >= n:
            break
        view = random_view(rng, permute_background)
        digest = task_digest(task, view)
        if digest not in seen:
            seen.add(digest)
            views.append(view)
    return views
