"""Puzzles, examples and batches.

A puzzle is a (task, view) pair with its own row in the puzzle-embedding table (row 0 is the blank
puzzle). An example is (task, pair, view): one input/output pair seen under one view. Examples are
never materialised as augmented copies: a batch applies the views and encodes the canvases on the fly.
Each example belongs to a canvas bucket, the smallest bucket side that holds its grids plus the EOS
edge, and batches are drawn per bucket so small grids are not padded to 30x30.
"""

import json
from dataclasses import dataclass

import numpy as np

from arc_trm.augment import View, sample_views
from arc_trm.encoding import canvas_side, encode
from arc_trm.tasks import MAX_SIDE, Task


@dataclass
class PuzzleSet:
    """The puzzle-embedding layout: each task's views and the table row of its first view."""

    task_ids: list[str]
    views: list[list[View]]  # per task; views[t][0] is the identity
    first_row: list[int]  # table row of views[t][0]

    @property
    def num_rows(self) -> int:
        """Rows a table needs for this set: up to its last view's row (row 0 is the blank puzzle)."""
        return max((first + len(v) for first, v in zip(self.first_row, self.views)), default=1)

    def row(self, task_index: int, view_index: int) -> int:
        return self.first_row[task_index] + view_index

    def index(self, task_id: str) -> int | None:
        try:
            return self.task_ids.index(task_id)
        except ValueError:
            return None

    @classmethod
    def build(cls, tasks: list[Task], n_views: int, seed: int, permute_background: bool = False,
              start_row: int = 1) -> "PuzzleSet":
        """Sample `n_views` distinct views per task (seeded per task id, so a task gets the same views
        whatever else is in the set), laid out from `start_row` on."""
        views, first_row, row = [], [], start_row
        for task in tasks:
            rng = np.random.default_rng([seed, *task.id.encode()])
            views.append(sample_views(task, n_views, rng, permute_background))
            first_row.append(row)
            row += len(views[-1])
        return cls([t.id for t in tasks], views, first_row)

    def extended(self, other: "PuzzleSet") -> "PuzzleSet":
        """This set followed by `other` (whose rows must come after ours)."""
        assert not other.first_row or other.first_row[0] == self.num_rows, "rows of the added set must follow"
        return PuzzleSet(self.task_ids + other.task_ids, self.views + other.views, self.first_row + other.first_row)

    def to_json(self) -> str:
        return json.dumps({"task_ids": self.task_ids, "first_row": self.first_row,
                           "views": [[str(v) for v in vs] for vs in self.views]})

    @classmethod
    def from_json(cls, text: str) -> "PuzzleSet":
        d = json.loads(text)
        return cls(d["task_ids"], [[View.parse(v) for v in vs] for vs in d["views"]], d["first_row"])


def estimate_output_side(task: Task, grid: np.ndarray) -> int:
    """The side of the square that must hold `grid` and its output, which is unknown at test time.

    When every demonstration agrees on one shape rule, the rule gives the output's shape: outputs as
    large as their inputs, outputs of one fixed shape, or outputs scaled by one ratio per axis. Otherwise
    a safe bound: the largest of the task's grids, and `grid` scaled by the demonstrations' largest growth.
    `grid` may be seen under a view that transposes it, so only sides (largest dimensions) are compared.
    """
    ins = np.array([i.shape for i, _ in task.train])
    outs = np.array([o.shape for _, o in task.train])
    side = max(grid.shape)
    ratio = outs / ins
    if (ins == outs).all():
        out_side = side
    elif (outs == outs[0]).all():
        out_side = int(outs[0].max())
    elif (ratio == ratio[0]).all():
        out_side = int(np.ceil(side * ratio[0].max()))
    else:
        growth = (outs.max(axis=1) / ins.max(axis=1)).max()
        out_side = max(task.max_side(), int(np.ceil(side * growth)))
    return min(MAX_SIDE, max(side, out_side))


class ExampleTable:
    """Every (task, pair, view) example of a puzzle set, grouped by canvas bucket."""

    def __init__(self, puzzles: PuzzleSet, pairs: list[list[tuple[np.ndarray, np.ndarray]]], buckets: list[int]):
        self.puzzles, self.pairs = puzzles, pairs
        rows = []  # (task, pair, view, side)
        for t, task_pairs in enumerate(pairs):
            for p, (inp, out) in enumerate(task_pairs):
                side = canvas_side(max(*inp.shape, *out.shape), tuple(buckets))
                for v in range(len(puzzles.views[t])):
                    rows.append((t, p, v, side))
        table = np.array(rows, dtype=np.int64).reshape(-1, 4)
        self.task, self.pair, self.view, self.side = table.T
        self.by_bucket = {int(s): np.flatnonzero(self.side == s) for s in np.unique(self.side)}

    def __len__(self) -> int:
        return len(self.task)

    def encode(self, indices: np.ndarray, side: int, placement: np.ndarray | None = None):
        """Canvases for examples: inputs and labels (B, side, side) uint8, puzzle rows (B,) int64.

        `placement` (B, 2) in [0, 1) picks each example's offset within the room its canvas leaves
        (the EOS edge kept inside); None places every grid at the top-left.
        """
        B = len(indices)
        inputs = np.zeros((B, side, side), dtype=np.uint8)
        labels = np.zeros((B, side, side), dtype=np.uint8)
        rows = np.zeros(B, dtype=np.int64)
        for b, i in enumerate(indices):
            t, v = self.task[i], self.view[i]
            view = self.puzzles.views[t][v]
            inp, out = (view.apply(g) for g in self.pairs[t][self.pair[i]])
            offset = (0, 0)
            if placement is not None:
                room = [max(side - 1 - max(inp.shape[k], out.shape[k]), 0) for k in (0, 1)]
                offset = tuple(int(placement[b, k] * (room[k] + 1)) for k in (0, 1))
            inputs[b], labels[b] = encode(inp, side, offset), encode(out, side, offset)
            rows[b] = self.puzzles.row(t, v)
        return inputs, labels, rows


class ExampleStream:
    """An endless, seeded, resumable stream of one bucket's examples: a fresh permutation each epoch."""

    def __init__(self, indices: np.ndarray, seed: int, side: int):
        self.indices, self.seed, self.side = indices, seed, side
        self.epoch, self.pos = 0, 0
        self._order = self._permutation()

    def _permutation(self) -> np.ndarray:
        return self.indices[np.random.default_rng([self.seed, self.side, self.epoch]).permutation(len(self.indices))]

    def take(self, n: int) -> np.ndarray:
        out = []
        while n > 0:
            chunk = self._order[self.pos:self.pos + n]
            out.append(chunk)
            self.pos += len(chunk)
            n -= len(chunk)
            if self.pos == len(self._order):
                self.epoch, self.pos = self.epoch + 1, 0
                self._order = self._permutation()
        return np.concatenate(out)

    def state(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state(self, state: dict) -> None:
        self.epoch, self.pos = state["epoch"], state["pos"]
        self._order = self._permutation()
