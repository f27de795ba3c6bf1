"""Solving test inputs: views -> recursion -> crop -> invert -> vote -> top two.

Every test input is run under V views of its task (the views its puzzle rows were trained under),
batched across tasks and views of one canvas bucket. Each predicted canvas is cropped to a grid
(encoding.decode), mapped back by the inverse view and counted as a vote for that grid; candidates
rank by one of Ballot's rules (by default the views' summed log-probabilities, with the grid the views
agree on cell by cell entered too), and the top two are attempt_1 and attempt_2 (attempt_2 repeats
attempt_1 when there is one candidate).

Views are processed in rounds (the identity view of every task first), and after each round the
submission is rewritten atomically, so a time budget, a Ctrl-C or a crash always leaves a valid file
that covers every task. Under `accelerate launch` the work items are split across processes and the
votes gathered before writing.
"""

import math
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from arc_trm.augment import View, dihedral
from arc_trm.config import Config
from arc_trm.data import PuzzleSet, estimate_output_side
from arc_trm.encoding import COLOUR0, PAD, canvas_side, decode, encode
from arc_trm.errors import UserError
from arc_trm.model import TRM
from arc_trm.submission import fallback_submission, make_submission, write_submission
from arc_trm.tasks import Task


# ---- voting -------------------------------------------------------------------------------------------
@dataclass
class Candidate:
    grid: np.ndarray
    votes: int = 0
    halt_sum: float = 0.0
    log_prob: float = 0.0  # sum of log p(grid) over the ballot's first `scored` evidence views
    scored: int = 0

    @property
    def halt_prob(self) -> float:
        return self.halt_sum / max(self.votes, 1)


def view_log_prob(grid: np.ndarray, view: View, log_probs: np.ndarray) -> float:
    """log p(grid) under one view's output distribution: `grid` mapped into the view and encoded on its
    canvas, then the log-probabilities of its colour cells and its EOS edge summed (the cells past the
    edge are PAD, never trained, and not counted). `log_probs` is (S, S, 12)."""
    side = log_probs.shape[0]
    g = view.apply(grid)
    if max(g.shape) > side:
        return -math.inf
    tokens = encode(g, side)
    r, c = np.nonzero(tokens != PAD)
    return float(log_probs[r, c, tokens[r, c]].astype(np.float64).sum())


def cell_log_probs(shape: tuple[int, int], view: View, log_probs: np.ndarray) -> np.ndarray | None:
    """(h, w, 10) log p(cell (i, j) has colour c) under one view's output distribution, for a grid of
    `shape` in the original frame: each cell and colour read where the view puts them. None when the
    shape, under the view, does not fit its canvas. `log_probs` is (S, S, 12)."""
    # at each position of the view's frame, the index of the original cell the view puts there
    cells = dihedral(np.arange(shape[0] * shape[1]).reshape(shape), view.dihedral)
    if max(cells.shape) > log_probs.shape[0]:
        return None
    h, w = cells.shape
    table = np.empty((cells.size, 10), dtype=np.float32)
    # in the view's frame, original colour c is the view's colour colours[c], token COLOUR0 + colours[c]
    table[cells.ravel()] = log_probs[:h, :w, COLOUR0 + np.asarray(view.colours)].reshape(-1, 10)
    return table.reshape(*shape, 10)


def grid_key(grid: np.ndarray) -> bytes:
    """A grid's identity for voting: its shape and its cells."""
    return np.asarray(grid.shape, dtype=np.int32).tobytes() + grid.astype(np.uint8).tobytes()


@dataclass
class Ballot:
    """The votes for one test input: candidate grids keyed by their content.

    `rule` ranks them: "votes" (the reference) by vote count, then mean halt probability; "probability"
    by the product of experts over views: the sum over the first `max_evidence` views of log p(candidate)
    under each view's output distribution, mapped through that view (`view_log_prob`), then by votes.
    Any view's distribution scores every candidate, including those it did not vote for. "consensus"
    ranks as "probability" but also enters, for each shape among the candidates, the grid that the
    product of experts rates best of all grids of that shape (`consensus`): views that each miss a few
    cells, different ones, can agree on a grid none of them voted for.
    """

    rule: str = "votes"
    max_evidence: int = 32  # views kept to score candidates (rules "probability", "consensus"); memory grows with it
    candidates: dict[bytes, Candidate] = field(default_factory=dict)
    evidence: list[tuple[View, np.ndarray]] = field(default_factory=list)  # (view, (S, S, 12) float16 log-probs)

    def add(self, grid: np.ndarray, halt_prob: float, votes: int = 1, view: View | None = None,
            log_probs: np.ndarray | None = None) -> None:
        cand = self.candidates.setdefault(grid_key(grid), Candidate(grid))
        cand.votes += votes
        cand.halt_sum += halt_prob * votes
        if self.rule != "votes" and log_probs is not None and len(self.evidence) < self.max_evidence:
            self.evidence.append((view, log_probs.astype(np.float16)))

    def merge(self, other: "Ballot") -> None:
        for key, c in other.candidates.items():
            mine = self.candidates.setdefault(key, Candidate(c.grid))
            mine.votes += c.votes
            mine.halt_sum += c.halt_sum
        self.evidence += other.evidence[:self.max_evidence - len(self.evidence)]

    def ranked(self) -> list[Candidate]:
        """Best first, by `rule`."""
        if self.rule == "votes" or not self.evidence:
            return sorted(self.candidates.values(), key=lambda c: (-c.votes, -c.halt_prob))
        for c in self.candidates.values():  # evidence only grows, so each (candidate, view) is scored once
            c.log_prob += sum(view_log_prob(c.grid, v, lp) for v, lp in self.evidence[c.scored:])
            c.scored = len(self.evidence)
        entered = self.consensus() if self.rule == "consensus" else []
        return sorted([*self.candidates.values(), *entered], key=lambda c: (-c.log_prob, -c.votes, -c.halt_prob))

    def consensus(self) -> list[Candidate]:
        """For each shape among the candidates, the grid of that shape with the largest summed log-probability
        over the evidence views, when no view voted for it (votes 0, scored like the others). The colour
        cells' terms add up cell by cell and the EOS edge's depend on the shape alone, so the best grid takes
        in each cell the colour whose log-probability, summed over the views, is largest."""
        found = []
        for shape in {c.grid.shape for c in self.candidates.values()}:
            tables = [cell_log_probs(shape, v, lp) for v, lp in self.evidence]
            if any(t is None for t in tables):  # some view cannot hold the shape: every such grid scores -inf
                continue
            grid = np.argmax(sum(tables), axis=-1).astype(np.uint8)
            if grid_key(grid) not in self.candidates:
                found.append(Candidate(grid, log_prob=sum(view_log_prob(grid, v, lp) for v, lp in self.evidence),
                                       scored=len(self.evidence)))
        return found

    def top_two(self) -> tuple[np.ndarray, np.ndarray] | None:
        ranked = self.ranked()
        if not ranked:
            return None
        return ranked[0].grid, (ranked[1] if len(ranked) > 1 else ranked[0]).grid


Votes = dict[str, list[Ballot]]  # task id -> one ballot per test input


def pool(votes: list[Votes]) -> Votes:
    """The votes of several runs (checkpoints) summed per candidate, in new ballots."""
    pooled: Votes = {}
    for v in votes:
        for task_id, ballots in v.items():
            mine = pooled.setdefault(task_id, [Ballot(b.rule, b.max_evidence) for b in ballots])
            for m, b in zip(mine, ballots):
                m.merge(b)
    return pooled


def submission_from_votes(tasks: list[Task], votes: Votes, base: dict | None = None) -> dict:
    attempts = {}
    for task in tasks:
        tops = [b.top_two() for b in votes.get(task.id, [])]
        if tops and all(t is not None for t in tops):
            attempts[task.id] = tops
    return make_submission(tasks, attempts, base=base)


# ---- prediction ---------------------------------------------------------------------------------------
@dataclass
class Item:
    """One (test input, view) to run: indices into the task list, the task's test inputs and its views."""

    task_index: int
    test_index: int
    view_index: int
    row: int  # puzzle-embedding row


def plan_rounds(tasks: list[Task], puzzles: PuzzleSet, n_views: int | None, seed: int) -> tuple[list[list[Item]], dict]:
    """Work items grouped in rounds of views: round 0 holds every task's identity view, so the first
    round alone gives every task an answer. Tasks the puzzle set does not know get the blank row 0
    under freshly sampled views (they should have been adapted; see adapt.py)."""
    views_of = {}
    rounds: list[list[Item]] = []
    unknown = PuzzleSet.build([t for t in tasks if puzzles.index(t.id) is None], n_views or 1, seed)
    for i, task in enumerate(tasks):
        k = puzzles.index(task.id)
        if k is None:
            views = unknown.views[unknown.index(task.id)]
            rows = [0] * len(views)
        else:
            views = puzzles.views[k]
            rows = [puzzles.row(k, v) for v in range(len(views))]
        views = views[:n_views] if n_views else views
        views_of[task.id] = views
        for v in range(len(views)):
            while len(rounds) <= v:
                rounds.append([])
            rounds[v].extend(Item(i, j, v, rows[v]) for j in range(len(task.test_inputs)))
    return rounds, views_of


def merge_rounds(rounds: list[list[Item]], min_items: int) -> list[list[Item]]:
    """Keep round 0 (every task's identity view) alone, then join later rounds until each holds at
    least `min_items`, so batches stay full when there are few tasks and many views."""
    merged = rounds[:1]
    for items in rounds[1:]:
        if len(merged) > 1 and len(merged[-1]) < min_items:
            merged[-1] = merged[-1] + items
        else:
            merged.append(list(items))
    return merged


def check_fits(tasks: list[Task], buckets: tuple[int, ...]) -> None:
    """Every task must have test inputs, and its grids (with the EOS edge) must fit the largest canvas."""
    largest = max(buckets)
    for task in tasks:
        if not task.test_inputs:
            raise UserError(f"task {task.id}: empty test list")
        if canvas_side(task.max_side()) > largest:
            raise UserError(f"task {task.id}: grids up to {task.max_side()}x{task.max_side()} exceed the model's "
                            f"largest canvas ({largest}x{largest}, data.buckets)")


class Predictor:
    """Runs the voting over views for a list of tasks, writing the submission as it improves."""

    def __init__(self, model: TRM, cfg: Config, puzzles: PuzzleSet, accelerator, batch_size: int | None = None,
                 stop_on_halt: bool = False):
        self.accelerator = accelerator  # its mixed precision is the prediction's (train.make_accelerator)
        self.model = model.to(self.accelerator.device).eval()
        self.cfg, self.puzzles, self.stop_on_halt = cfg, puzzles, stop_on_halt
        self.batch_size = batch_size or 256
        self.buckets = tuple(cfg.data.buckets)

    def empty_votes(self, tasks: list[Task]) -> Votes:
        """A ballot per test input, ranking by the config's rule (infer.rank)."""
        rule, n = self.cfg.infer.rank, self.cfg.infer.score_views
        return {t.id: [Ballot(rule, n) for _ in t.test_inputs] for t in tasks}

    def estimate_seconds(self, tasks: list[Task], n_views: int | None = None) -> float:
        """Seconds this process will spend voting on every test input x view of `tasks` (as `predict` splits
        and batches them), from one timed batch of each canvas bucket after a warm-up batch. Adaptation adds
        puzzle rows but leaves the cost of a view unchanged, so an unadapted model measures it too."""
        acc = self.accelerator
        rounds, views_of = plan_rounds(tasks, self.puzzles, n_views or self.cfg.data.views, self.cfg.run.seed)
        batches, sample = Counter(), {}  # canvas side -> batches this process will run, and a batch to time
        for items in merge_rounds(rounds, 4 * self.batch_size * acc.num_processes):
            for side, group in self.by_canvas(tasks, items[acc.process_index::acc.num_processes], views_of).items():
                batches[side] += math.ceil(len(group) / self.batch_size)
                if len(group) > len(sample.get(side, ())):
                    sample[side] = [item for item, _ in group[:self.batch_size]]
        votes, seconds = self.empty_votes(tasks), 0.0
        for side, items in sample.items():
            self.vote_items(tasks, items, views_of, votes, deadline=None)  # warm-up: kernels, allocator
            started = time.monotonic()
            self.vote_items(tasks, items, views_of, votes, deadline=None)  # ends copying to the CPU: synced
            seconds += batches[side] * (time.monotonic() - started)
        return seconds

    def by_canvas(self, tasks: list[Task], items: list[Item], views_of: dict) -> dict[int, list]:
        """`items` grouped by canvas bucket: side -> [(item, its test input encoded under its view)]."""
        groups: dict[int, list[tuple[Item, np.ndarray]]] = {}
        for it in items:
            task = tasks[it.task_index]
            grid = views_of[task.id][it.view_index].apply(task.test_inputs[it.test_index])
            side = canvas_side(estimate_output_side(task, grid), self.buckets)
            groups.setdefault(side, []).append((it, encode(grid, side)))
        return groups

    def vote_items(self, tasks: list[Task], items: list[Item], views_of: dict, votes: Votes,
                    deadline: float | None, on_batch: Callable[[int], None] = lambda n: None) -> bool:
        """Vote on `items`, batched per canvas bucket. Returns False if the deadline stopped it."""
        device = self.accelerator.device
        for group in self.by_canvas(tasks, items, views_of).values():
            for start in range(0, len(group), self.batch_size):
                if deadline is not None and time.monotonic() > deadline:
                    return False
                chunk = group[start:start + self.batch_size]
                tokens = torch.from_numpy(np.stack([c for _, c in chunk])).long().to(device)
                rows = torch.tensor([it.row for it, _ in chunk], device=device)
                with self.accelerator.autocast():
                    pred, halt, log_probs = self.model.predict(tokens, rows, stop_on_halt=self.stop_on_halt)
                pred, halt = pred.cpu().numpy(), halt.float().cpu().numpy()
                scoring = self.cfg.infer.rank != "votes"
                log_probs = log_probs.half().cpu().numpy() if scoring else [None] * len(chunk)
                for (it, _), canvas, h, lp in zip(chunk, pred, halt, log_probs):
                    task = tasks[it.task_index]
                    view = views_of[task.id][it.view_index]
                    votes[task.id][it.test_index].add(view.invert(decode(canvas)), float(h), view=view, log_probs=lp)
                on_batch(len(chunk) * self.accelerator.num_processes)
        return True

    def predict(self, tasks: list[Task], out: str | Path | None = None, n_views: int | None = None,
                time_budget: float | None = None, progress: bool = True,
                on_round: Callable[[int, Votes], None] | None = None, prior: list[Votes] = ()) -> Votes:
        """Vote over views for every test input; rewrite `out` after each round of views. Returns this
        model's votes; `prior` (other checkpoints' votes) is pooled with them in the file written."""
        from accelerate.utils import gather_object
        from tqdm.auto import tqdm

        acc = self.accelerator
        deadline = None if time_budget is None else time.monotonic() + time_budget
        check_fits(tasks, self.buckets)
        rounds, views_of = plan_rounds(tasks, self.puzzles, n_views, self.cfg.run.seed)
        rounds = merge_rounds(rounds, 4 * self.batch_size * acc.num_processes)
        merged = self.empty_votes(tasks)
        submission = submission_from_votes(tasks, pool(list(prior))) if prior else fallback_submission(tasks)
        if out is not None and acc.is_main_process:
            write_submission(out, submission)
        bar = tqdm(total=sum(len(r) for r in rounds), desc="predict", unit="view", dynamic_ncols=True,
                   disable=not progress or not acc.is_main_process, file=sys.stderr)
        try:
            for r, items in enumerate(rounds):
                local = self.empty_votes(tasks)
                finished = self.vote_items(tasks, items[acc.process_index::acc.num_processes], views_of, local,
                                            deadline, on_batch=bar.update)
                finished = all(gather_object([finished]))
                for part in gather_object([local]):
                    for task_id, ballots in part.items():
                        for mine, theirs in zip(merged[task_id], ballots):
                            mine.merge(theirs)
                bar.n = min(bar.total, sum(len(x) for x in rounds[:r + 1]))  # exact at each round's end
                bar.refresh()
                if acc.is_main_process:
                    submission = submission_from_votes(tasks, pool([*prior, merged]), base=submission)
                    if out is not None:
                        write_submission(out, submission)
                if on_round is not None:
                    on_round(r, merged)
                if not finished:
                    break
        except KeyboardInterrupt:
            if out is not None and acc.is_main_process:
                write_submission(out, submission_from_votes(tasks, pool([*prior, merged]), base=submission))
            raise
        finally:
            bar.close()
        return merged


def held_out_accuracy(model: TRM, cfg: Config, puzzles: PuzzleSet, tasks: list[Task | None],
                      items: list[tuple[int, int]], accelerator) -> float:
    """Exact accuracy on held-out test inputs, (task index, test index) `items` of `tasks`: identity view,
    all N_sup steps, through the same batching and decoding as prediction."""
    if not items:
        return float("nan")
    predictor = Predictor(model, cfg, puzzles, accelerator, batch_size=cfg.optim.batch_size)
    votes = {tasks[t].id: [Ballot() for _ in tasks[t].test_inputs] for t, _ in items}
    predictor.vote_items(tasks, [Item(t, j, 0, puzzles.row(t, 0)) for t, j in items],
                          {tasks[t].id: [View()] for t, _ in items}, votes, deadline=None)
    return sum(np.array_equal(votes[tasks[t].id][j].ranked()[0].grid, tasks[t].test_outputs[j])
               for t, j in items) / len(items)
