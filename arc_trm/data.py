"""Puzzles, examples and the rolling batches of deep supervision.

A puzzle is a (task, view) pair with its own row in the puzzle-embedding table (row 0 is the blank
puzzle). An example is (task, pair, view): one input/output pair seen under one view. Examples are
never materialised as augmented copies: a batch applies the views and encodes the canvases on the fly.
Each example belongs to a canvas bucket, the smallest bucket side that holds its grids plus the EOS
edge, and batches are drawn per bucket so small grids are not padded to 30x30.

Deep supervision trains each example over several optimizer steps: a `RollingBatch` keeps one example
per slot, with its (y, z) carried from step to step, until the example halts; then the slot takes the
bucket's next example.
"""

import json
from dataclasses import dataclass

import numpy as np
import torch

from arc_trm.augment import View, sample_views
from arc_trm.config import Config
from arc_trm.encoding import canvas_side, encode
from arc_trm.errors import UserError
from arc_trm.synthetic import load_training_tasks
from arc_trm.tasks import MAX_SIDE, Task, load_tasks

# A content-sized output (see estimate_output_side) is given this factor over the shape bound: in the
# public ARC sets such outputs exceed the bound by up to about 1.5x, and a canvas too small for the
# output (and its EOS edge) makes every view wrong, while one bucket larger only costs compute.
CONTENT_MARGIN = 1.5


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
    large as their inputs, outputs of one fixed shape, outputs scaled by one ratio per axis, or the input
    tiled by itself (each axis squared). Otherwise a safe bound: the largest of the task's grids, and
    `grid` scaled by the demonstrations' largest growth; half again as much when the output's size
    depends on the content, not the input's shape (see `CONTENT_MARGIN`).
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
    elif (outs == ins * ins).all():
        out_side = side * side
    else:
        growth = (outs.max(axis=1) / ins.max(axis=1)).max()
        out_side = max(task.max_side(), int(np.ceil(side * growth)))
        # two demonstrations with one input shape and outputs of different shapes: the size is decided
        # by the content (a count, an object's size), so the test output may well exceed the bound
        same_input = (ins[:, None] == ins[None]).all(axis=-1)
        other_output = (outs[:, None] != outs[None]).any(axis=-1)
        if (same_input & other_output).any():
            out_side = int(np.ceil(CONTENT_MARGIN * out_side))
    return min(MAX_SIDE, max(side, out_side))


@dataclass
class TrainingData:
    """What a run trains on: every task's trainable pairs, its puzzles, and the held-out test inputs."""

    tasks: list[Task | None]  # aligned with puzzles.task_ids; None for a task this run does not load
    pairs: list[list[tuple[np.ndarray, np.ndarray]]]  # trainable pairs per task (may be empty)
    puzzles: PuzzleSet  # every puzzle of the model's table, saved with each checkpoint
    held_out: list[tuple[int, int]]  # (task index, test index): test inputs scored at evaluation
    sources: list[tuple[str, str, int, int]]  # (role "train" or "eval", source, tasks, trainable pairs) added

    def examples_per_view(self) -> float:
        """Mean trainable pairs per puzzle (task x view): the reference's `mean_puzzle_examples`."""
        views = np.array([len(v) for v in self.puzzles.views], dtype=np.float64)
        pairs = np.array([len(p) for p in self.pairs], dtype=np.float64)
        return float((views * pairs).sum() / views.sum())

    def steps_for_epochs(self, epochs: float, batch_size: int) -> int:
        """The reference's run length (pretrain.py): epochs x task groups x mean examples per puzzle / batch."""
        return int(epochs * sum(bool(p) for p in self.pairs) * self.examples_per_view() / batch_size)


def training_data(cfg: Config) -> TrainingData:
    """The reference's recipe: all pairs of the training tasks, plus the demonstrations (never the test
    outputs) of the evaluation tasks, whose test inputs are held out. A task in both counts as an
    evaluation task; a task named by two sources is loaded once."""
    evals, sources = {}, []
    for source in cfg.data.held_out_tasks:
        tasks = [t for t in load_tasks(source) if t.id not in evals]
        evals.update((t.id, t) for t in tasks)
        sources.append(("eval", source, len(tasks), sum(len(t.train) for t in tasks)))
    trains: dict[str, Task] = {}
    for source in cfg.data.train_tasks:
        tasks = [t for t in load_training_tasks(source) if t.id not in evals and t.id not in trains]
        trains.update((t.id, t) for t in tasks)
        sources.append(("train", source, len(tasks), sum(len(t.train) + len(t.test_outputs or []) for t in tasks)))
    if not trains and not evals:
        raise UserError("config: data.train_tasks and data.held_out_tasks are both empty")
    tasks = [*trains.values(), *evals.values()]
    pairs = [t.train + list(zip(t.test_inputs, t.test_outputs or [])) for t in trains.values()]
    pairs += [t.train for t in evals.values()]
    puzzles = PuzzleSet.build(tasks, cfg.data.views, cfg.run.seed, cfg.data.permute_background)
    held_out = [(len(trains) + i, j) for i, t in enumerate(evals.values()) if t.test_outputs
                for j in range(len(t.test_inputs))]
    if cfg.data.max_eval_inputs:
        held_out = held_out[:cfg.data.max_eval_inputs]
    return TrainingData(tasks, pairs, puzzles, held_out, sources)


class ExampleTable:
    """Every (task, pair, view) example of a puzzle set, grouped by canvas bucket.

    `placement` "reference" fixes each example's offset for the whole run (seeded by `seed`), as the
    reference's dataset build does: anywhere the grids fit, up to the canvas edge, except one example per
    puzzle (task x view), chosen at random, which stays at the top-left.
    """

    def __init__(self, puzzles: PuzzleSet, pairs: list[list[tuple[np.ndarray, np.ndarray]]], buckets: list[int],
                 placement: str = "random", seed: int = 0):
        self.puzzles, self.pairs, self.placement = puzzles, pairs, placement
        blocks = []  # per (task, pair): its rows (task, pair, view, side), one per view
        for t, task_pairs in enumerate(pairs):
            views = np.arange(len(puzzles.views[t]))
            for p, (inp, out) in enumerate(task_pairs):
                side = canvas_side(max(*inp.shape, *out.shape), tuple(buckets))
                blocks.append(np.stack([np.full_like(views, t), np.full_like(views, p), views,
                                        np.full_like(views, side)], axis=1))
        table = np.concatenate(blocks).astype(np.int64) if blocks else np.zeros((0, 4), dtype=np.int64)
        self.task, self.pair, self.view, self.side = table.T
        self.by_bucket = {int(s): np.flatnonzero(self.side == s) for s in np.unique(self.side)}
        self.fixed = None  # (examples, 2) in [0, 1): the reference's placements, fixed for the run
        if placement == "reference":
            rng = np.random.default_rng([seed, 2])
            self.fixed = rng.random((len(self.task), 2))
            puzzle = self.task * (1 + int(self.view.max(initial=0))) + self.view  # one id per (task, view)
            order = np.lexsort((self.pair, puzzle))  # each puzzle's examples together
            _, start, count = np.unique(puzzle[order], return_index=True, return_counts=True)
            self.fixed[order[start + (rng.random(len(start)) * count).astype(np.int64)]] = 0.0

    def __len__(self) -> int:
        return len(self.task)

    def canvases(self, indices: np.ndarray, side: int, placement: np.ndarray | None = None):
        """Canvases for examples: inputs and labels (B, side, side) uint8, puzzle rows (B,) int64.

        `placement` (B, 2) in [0, 1) picks each example's offset within the room its canvas leaves
        (the EOS edge kept inside); None places every grid at the top-left. With the reference's placement,
        any `placement` is replaced by the example's fixed one, and the room reaches the canvas edge.
        """
        B = len(indices)
        edge = 1  # cells kept free for the EOS edge
        if placement is not None and self.fixed is not None:
            placement, edge = self.fixed[indices], 0
        inputs = np.zeros((B, side, side), dtype=np.uint8)
        labels = np.zeros((B, side, side), dtype=np.uint8)
        rows = np.zeros(B, dtype=np.int64)
        for b, i in enumerate(indices):
            t, v = self.task[i], self.view[i]
            view = self.puzzles.views[t][v]
            inp, out = (view.apply(g) for g in self.pairs[t][self.pair[i]])
            offset = (0, 0)
            if placement is not None:
                room = [max(side - edge - max(inp.shape[k], out.shape[k]), 0) for k in (0, 1)]
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


class RollingBatch:
    """The rolling batch of one canvas bucket: `global_batch` slots, each holding one example until it halts.

    The slot bookkeeping (which example, its steps so far, its placement, whether it halted) is global and
    identical on every process, since it is decided from gathered halt logits with the same generator; the
    canvases and the (y, z) carry are kept only for this process's slice `local` of the slots.
    """

    def __init__(self, side: int, global_batch: int, local: slice, stream: ExampleStream):
        self.side, self.local, self.stream = side, local, stream
        self.example = np.full(global_batch, -1, dtype=np.int64)  # example index in each slot
        self.steps = np.zeros(global_batch, dtype=np.int64)  # supervision steps taken by each slot's example
        self.halted = np.ones(global_batch, dtype=bool)  # the slot needs a new example
        self.placement = np.zeros((global_batch, 2))  # offset choice of each slot's example, in [0, 1)
        self.tensors: dict[str, torch.Tensor] = {}  # inputs, labels, rows, y, z of the local slots

    def refill(self, table: ExampleTable, initial_carry, rng: np.random.Generator, translate: bool, device) -> None:
        """Put the stream's next examples into the halted slots, with a fresh carry from
        `initial_carry(n, side) -> (y, z)`."""
        new = np.flatnonzero(self.halted)
        if len(new) == 0:
            return
        self.example[new] = self.stream.take(len(new))
        self.steps[new] = 0
        self.placement[new] = rng.random((len(new), 2)) if translate else 0.0
        self.halted[new] = False
        lo, hi = self.local.start, self.local.stop
        mine = new[(new >= lo) & (new < hi)]
        if len(mine) == 0:
            return
        inputs, labels, rows = table.canvases(self.example[mine], self.side, self.placement[mine])
        fresh = {"inputs": torch.from_numpy(inputs).long(), "labels": torch.from_numpy(labels).long().flatten(1),
                 "rows": torch.from_numpy(rows)}
        y, z = initial_carry(len(mine), self.side)
        fresh["y"], fresh["z"] = y.detach(), z.detach()
        if not self.tensors:  # first fill: every local slot is new
            self.tensors = {k: v.to(device) for k, v in fresh.items()}
            return
        at = torch.from_numpy(mine - lo).to(device)
        for k, v in fresh.items():
            self.tensors[k][at] = v.to(device, self.tensors[k].dtype)

    def advance(self, y: torch.Tensor, z: torch.Tensor, halt_logits: np.ndarray, n_supervision: int,
                exploration: float, rng: np.random.Generator) -> np.ndarray:
        """After a supervision step: keep the new carry, count the step, and halt the slots whose example
        reached N_sup steps or whose halt logit (`halt_logits`, all slots, gathered) is > 0, unless an
        exploration draw gives that example a random minimum number of steps first. Returns the mask of
        slots whose example left the batch."""
        self.tensors["y"], self.tensors["z"] = y, z
        self.steps += 1
        explore = rng.random(len(self.steps)) < exploration
        min_steps = np.where(explore, rng.integers(min(2, n_supervision), n_supervision + 1, len(self.steps)), 0)
        self.halted = (self.steps >= n_supervision) | ((halt_logits > 0) & (self.steps >= min_steps))
        return self.halted

    def state(self) -> dict:
        return {"example": self.example.tolist(), "steps": self.steps.tolist(), "halted": self.halted.tolist(),
                "placement": self.placement.tolist(), "stream": self.stream.state()}

    def load_state(self, state: dict, tensors: dict[str, torch.Tensor] | None) -> None:
        self.example = np.array(state["example"], dtype=np.int64)
        self.steps = np.array(state["steps"], dtype=np.int64)
        self.halted = np.array(state["halted"], dtype=bool)
        self.placement = np.array(state["placement"], dtype=np.float64)
        self.stream.load_state(state["stream"])
        if tensors is None:  # the carry tensors could not be restored: start every slot afresh
            self.halted[:] = True
            self.tensors = {}
        else:
            self.tensors = tensors
