"""Solving tasks: voting (Ballot), exact inversion of every view, a submission that is valid at every
moment (after prediction, under a time budget, after Ctrl-C), pass@k results, bad checkpoints and
tasks, and `arc-trm predict` / `arc-trm evaluate` run end to end on a tiny CPU checkpoint.

The in-process tests drive Predictor with small stand-ins for TRM (anything with a
`predict(tokens, puzzle_ids, stop_on_halt)` method), so they check the voting pipeline exactly, with
answers that are known in advance; the subprocess tests use a real checkpoint.
"""

import json
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
import torch
from conftest import ARC_TRM
from torch import nn

from arc_trm.augment import View
from arc_trm.checkpoint import latest_checkpoint, load_for_inference
from arc_trm.cli import main
from arc_trm.config import load_config
from arc_trm.data import PuzzleSet, estimate_output_side
from arc_trm.encoding import VOCAB_SIZE, decode, encode
from arc_trm.errors import UserError
from arc_trm.infer import Ballot, Item, Predictor, merge_rounds, plan_rounds, submission_from_votes
from arc_trm.pipeline import PASS_AT, results, solve
from arc_trm.submission import FALLBACK_ATTEMPT_2, load_submission, make_submission, validate_submission
from arc_trm.tasks import Task, load_tasks, write_kaggle_files
from arc_trm.train import make_accelerator


# ---- stand-ins and tasks ------------------------------------------------------------------------------
class StubModel(nn.Module):
    """Stands in for TRM: `answer(row, canvas) -> (canvas, halt probability)` for every example.

    Records each example it is given as (puzzle row, decoded input grid); raises KeyboardInterrupt on
    the first batch that holds a row in `interrupt_rows`, and calls `on_batch()` for every batch it runs.
    """

    def __init__(self, answer, interrupt_rows=(), on_batch=lambda: None):
        super().__init__()
        self.answer, self.interrupt_rows, self.on_batch = answer, set(interrupt_rows), on_batch
        self.seen: list[tuple[int, np.ndarray]] = []
        self.batches = 0

    def predict(self, tokens: torch.Tensor, puzzle_ids: torch.Tensor, stop_on_halt: bool = False):
        rows = [int(r) for r in puzzle_ids]
        if self.interrupt_rows & set(rows):
            raise KeyboardInterrupt
        self.on_batch()
        self.batches += 1
        canvases = tokens.cpu().numpy()
        self.seen += [(r, decode(c)) for r, c in zip(rows, canvases)]
        out = [self.answer(r, c) for r, c in zip(rows, canvases)]
        answers = torch.from_numpy(np.stack([c for c, _ in out])).long()
        return answers, torch.tensor([h for _, h in out]), confident(answers)


def confident(canvases: torch.Tensor, p: float = 0.9) -> torch.Tensor:
    """Log-probabilities (B, S, S, 12) that put `p` on each cell's token of `canvases` (B, S, S)."""
    probs = torch.full((*canvases.shape, VOCAB_SIZE), (1 - p) / (VOCAB_SIZE - 1))
    probs.scatter_(-1, canvases.unsqueeze(-1), p)
    return probs.log()


def echo(row: int, canvas: np.ndarray) -> tuple[np.ndarray, float]:
    """The perfect model of an identity task: the answer canvas is the question canvas."""
    return canvas, 0.5


def identity_tasks(seed: int = 0) -> list[Task]:
    """Tasks whose outputs equal their inputs, on non-square grids of many colours (so that every
    dihedral transform and colour permutation changes them), one with two test inputs."""
    rng = np.random.default_rng(seed)
    shapes = {"idA": [(2, 3), (3, 5)], "idB": [(4, 1), (1, 6), (5, 2)], "idC": [(3, 4), (6, 5)]}
    tasks = []
    for task_id, sides in shapes.items():
        grids = [rng.integers(0, 10, s).astype(np.uint8) for s in sides]
        tests = grids[1:]
        tasks.append(Task(task_id, [(grids[0], grids[0].copy())], tests, [g.copy() for g in tests]))
    return tasks


def every_view(rng: np.random.Generator) -> list[View]:
    """The identity, then all 8 dihedral ids, each with a colour permutation (colour 0 moved in two)."""
    views = [View()]
    for d in range(8):
        colours = np.r_[1 + rng.permutation(9), 0] if d in (3, 6) else np.r_[0, 1 + rng.permutation(9)]
        views.append(View(d, tuple(int(c) for c in colours)))
    return views


def puzzle_set(tasks: list[Task], views: list[View]) -> PuzzleSet:
    return PuzzleSet([t.id for t in tasks], [list(views) for _ in tasks],
                     [1 + i * len(views) for i in range(len(tasks))])


@pytest.fixture
def cfg():
    return load_config("tiny-cpu")


def predictor(model: nn.Module, cfg, puzzles: PuzzleSet, batch_size: int = 4) -> Predictor:
    return Predictor(model, cfg, puzzles, make_accelerator("no"), batch_size=batch_size)


# ---- voting -------------------------------------------------------------------------------------------
def grid(*rows) -> np.ndarray:
    return np.array(rows, dtype=np.uint8)


def test_ballot_ranks_by_votes_then_mean_halt_probability():
    a, b, c, d = grid([1]), grid([2]), grid([3]), grid([4, 4])
    ballot = Ballot()
    for g, h in [(b, 0.9), (a, 0.1), (c, 0.95), (b, 0.7), (a, 0.2), (d, 0.6), (a, 0.3)]:
        ballot.add(g, h)
    ballot.add(d, 0.6, votes=1)
    ranked = ballot.ranked()
    # a: 3 votes; b and d: 2 votes, b's mean 0.8 beats d's 0.6; c: 1 vote despite the highest halt
    assert [c_.grid.tolist() for c_ in ranked] == [a.tolist(), b.tolist(), d.tolist(), c.tolist()]
    assert [c_.votes for c_ in ranked] == [3, 2, 2, 1]
    assert [c_.halt_prob for c_ in ranked] == pytest.approx([0.2, 0.8, 0.6, 0.95])
    first, second = ballot.top_two()
    assert (first == a).all() and (second == b).all()


def test_ballot_keys_on_shape_and_content_and_merges_like_one_ballot():
    flat, square = grid([1, 2, 3, 4]), grid([1, 2], [3, 4])  # same bytes, different grids
    whole, left, right = Ballot(), Ballot(), Ballot()
    adds = [(flat, 0.2), (square, 0.9), (flat, 0.4), (square.copy(), 0.1), (flat, 0.3)]
    for i, (g, h) in enumerate(adds):
        whole.add(g, h)
        (left if i % 2 else right).add(g, h)
    assert len(whole.candidates) == 2
    left.merge(right)
    for ranked in (left.ranked(), whole.ranked()):
        assert [(c.grid.shape, c.votes) for c in ranked] == [((1, 4), 3), ((2, 2), 2)]
        assert [c.halt_prob for c in ranked] == pytest.approx([0.3, 0.5])


def test_one_candidate_fills_both_attempts_and_no_candidate_keeps_the_base():
    tasks = identity_tasks()
    answer = grid([7, 7], [7, 7])
    votes = {t.id: [Ballot() for _ in t.test_inputs] for t in tasks}
    for ballot in votes["idA"]:
        ballot.add(answer, 0.3)
        ballot.add(answer, 0.8)
    votes["idB"][0].add(answer, 0.5)  # only one of idB's two test inputs answered: it keeps the base
    base = make_submission(tasks, {})
    sub = submission_from_votes(tasks, votes, base=base)
    validate_submission(sub, tasks)
    assert sub["idA"] == [{"attempt_1": answer.tolist(), "attempt_2": answer.tolist()}]
    assert sub["idB"] == base["idB"] and sub["idC"] == base["idC"]
    assert Ballot().top_two() is None


def test_predict_votes_by_count_then_halt_across_views(cfg):
    """Through Predictor, ranked by votes: the views of one test input disagree; counts decide first, halt
    breaks ties."""
    task = identity_tasks()[0]
    views = every_view(np.random.default_rng(1))[:5]
    puzzles = puzzle_set([task], views)
    x = task.test_inputs[0]
    y, w = (x + 1) % 10, (x + 2) % 10  # two wrong answers
    # view index -> (answer in the task's frame, halt probability): x twice at 0.2, y twice at 0.4, w once at 0.9
    script = {0: (x, 0.2), 1: (y, 0.4), 2: (x, 0.2), 3: (w, 0.9), 4: (y, 0.4)}

    def answer(row, canvas):
        v = row - puzzles.first_row[0]
        want, halt = script[v]
        return encode(views[v].apply(want), canvas.shape[0]), halt

    cfg.infer.rank = "votes"
    votes = predictor(StubModel(answer), cfg, puzzles).predict([task], progress=False)
    ranked = votes[task.id][0].ranked()
    assert [(c.votes, c.halt_prob) for c in ranked] == [(2, pytest.approx(0.4)), (2, pytest.approx(0.2)),
                                                        (1, pytest.approx(0.9))]
    assert [c.grid.tolist() for c in ranked] == [y.tolist(), x.tolist(), w.tolist()]


class MixtureStub(nn.Module):
    """Stands in for TRM with chosen output distributions: `answer(row, canvas)` gives (first canvas, p,
    second canvas, q, halt probability); each cell puts p on the first canvas's token, q on the second's
    and spreads the rest evenly. The argmax (the view's vote) is the first canvas."""

    def __init__(self, answer):
        super().__init__()
        self.answer = answer

    def predict(self, tokens: torch.Tensor, puzzle_ids: torch.Tensor, stop_on_halt: bool = False):
        outs = [self.answer(int(r), c) for r, c in zip(puzzle_ids, tokens.cpu().numpy())]
        first = torch.from_numpy(np.stack([o[0] for o in outs])).long()
        second = torch.from_numpy(np.stack([o[2] for o in outs])).long()
        p = torch.tensor([o[1] for o in outs])[:, None, None, None]
        q = torch.tensor([o[3] for o in outs])[:, None, None, None]
        probs = ((1 - p - q) / VOCAB_SIZE).expand(*first.shape, VOCAB_SIZE).clone()
        probs.scatter_add_(-1, first.unsqueeze(-1), p.expand(*first.shape, 1).clone())
        probs.scatter_add_(-1, second.unsqueeze(-1), q.expand(*first.shape, 1).clone())
        return first, torch.tensor([o[4] for o in outs]), probs.log()


@pytest.mark.parametrize("rank, score_views, winner", [("votes", 32, "wrong"), ("probability", 32, "truth"),
                                                       ("probability", 3, "wrong")])
def test_probability_ranking_lets_confident_views_outweigh_more_votes(cfg, rank, score_views, winner):
    """Three views vote for a wrong grid but are unsure (0.5 on it, 0.4 on the truth); two views vote for
    the truth and are sure (0.9 on it, 0.05 on the wrong grid). By votes the wrong grid wins 3 to 2; by
    the product of the five distributions, each mapped back through its view (every view transposes or
    rotates and recolours), the truth wins; scored by the first three views only, the wrong grid wins."""
    task = identity_tasks()[0]
    views = every_view(np.random.default_rng(5))[2:7]
    puzzles = puzzle_set([task], views)
    x = task.test_inputs[0]
    wrong = (x + 1) % 10  # differs from the truth in every cell, same shape

    def answer(row, canvas):
        v = row - puzzles.first_row[0]
        truth, other = (encode(views[v].apply(g), canvas.shape[0]) for g in (x, wrong))
        return (other, 0.5, truth, 0.4, 0.5) if v < 3 else (truth, 0.9, other, 0.05, 0.5)

    cfg.infer.rank, cfg.infer.score_views = rank, score_views
    votes = predictor(MixtureStub(answer), cfg, puzzles).predict([task], progress=False)
    ranked = votes[task.id][0].ranked()
    assert [c.votes for c in ranked] == ([3, 2] if winner == "wrong" else [2, 3])
    assert ranked[0].grid.tolist() == (wrong if winner == "wrong" else x).tolist()
    if rank == "probability":
        assert ranked[0].log_prob > ranked[1].log_prob and ranked[0].scored == min(score_views, len(views))
    sub = submission_from_votes([task], votes)
    assert sub[task.id][0]["attempt_1"] == ranked[0].grid.tolist()


@pytest.mark.parametrize("rank", ["votes", "probability", "consensus"])
def test_consensus_enters_the_grid_the_views_agree_on_cell_by_cell(cfg, rank):
    """Five views each vote for the truth with one cell wrong, a different cell each (0.5 on their wrong
    colour, 0.4 on the truth's). No view votes for the truth, so votes and probability cannot rank it;
    consensus sums each cell's log-probabilities over the views (mapped back through them: every view
    transposes or rotates and recolours) and enters the truth, which then beats every voted grid."""
    task = identity_tasks()[0]
    views = every_view(np.random.default_rng(7))[2:7]
    puzzles = puzzle_set([task], views)
    x = task.test_inputs[0]  # 3x5
    misses = []
    for v, cell in enumerate([(0, 0), (0, 4), (1, 2), (2, 1), (2, 3)]):
        miss = x.copy()
        miss[cell] = (miss[cell] + 1 + v) % 10
        misses.append(miss)

    def answer(row, canvas):
        v = row - puzzles.first_row[0]
        miss, truth = (encode(views[v].apply(g), canvas.shape[0]) for g in (misses[v], x))
        return miss, 0.5, truth, 0.4, 0.5

    cfg.infer.rank = rank
    votes = predictor(MixtureStub(answer), cfg, puzzles).predict([task], progress=False)
    ranked = votes[task.id][0].ranked()
    assert sorted(c.grid.tolist() for c in ranked if c.votes) == sorted(m.tolist() for m in misses)
    if rank == "consensus":
        assert ranked[0].grid.tolist() == x.tolist() and ranked[0].votes == 0 and len(ranked) == 6
        assert ranked[0].log_prob > ranked[1].log_prob and ranked[0].scored == len(views)
        assert submission_from_votes([task], votes)[task.id][0]["attempt_1"] == x.tolist()
    else:
        assert len(ranked) == 5 and x.tolist() not in [c.grid.tolist() for c in ranked]


# ---- rounds of views ----------------------------------------------------------------------------------
def test_rounds_hold_the_views_in_order_identity_first_each_item_once():
    """Tasks known with 3, 5 and 1 views (idB has two test inputs), and one task the puzzles do not know."""
    tasks = [*identity_tasks(), identity_tasks(seed=1)[0]]
    tasks[3].id = "unseen"
    views = every_view(np.random.default_rng(6))
    puzzles = PuzzleSet(["idA", "idB", "idC"], [views[:3], views[:5], views[:1]], [1, 4, 9])
    rounds, views_of = plan_rounds(tasks, puzzles, None, seed=0)
    assert len(rounds) == 5 and views_of["idB"] == views[:5] and views_of["idC"] == views[:1]
    assert [it.view_index for it in rounds[0]] == [0] * 5 and all(views_of[t.id][0] == View() for t in tasks)
    # round v: every test input of every task with more than v views, under view v, on that view's row
    assert [[(it.task_index, it.test_index, it.row) for it in r] for r in rounds] == [
        [(0, 0, 1), (1, 0, 4), (1, 1, 4), (2, 0, 9), (3, 0, 0)],
        [(0, 0, 2), (1, 0, 5), (1, 1, 5)],
        [(0, 0, 3), (1, 0, 6), (1, 1, 6)],
        [(1, 0, 7), (1, 1, 7)],
        [(1, 0, 8), (1, 1, 8)]]
    assert len(views_of["unseen"]) == 1  # unknown: the blank row under its own views (n_views or 1)

    capped, views_of = plan_rounds(tasks, puzzles, 2, seed=0)
    assert len(capped) == 2 and capped == rounds[:1] + [rounds[1] + [Item(3, 0, 1, 0)]]
    assert views_of["idB"] == views[:2] and len(views_of["unseen"]) == 2
    # an unknown task's views are seeded by its id: the same whatever else is being solved
    alone, alone_views = plan_rounds(tasks[3:], puzzles, 2, seed=0)
    assert alone_views["unseen"] == views_of["unseen"] and [it.row for r in alone for it in r] == [0, 0]


@pytest.mark.parametrize("sizes, min_items, merged", [
    ([3, 2, 2, 2, 5, 1], 4, [3, 4, 7, 1]),  # round 0 alone, however small; then joined up to 4 or more
    ([3, 2, 2, 2, 5, 1], 1, [3, 2, 2, 2, 5, 1]),  # full enough: unchanged
    ([1, 1, 1, 1], 100, [1, 3]),  # few tasks, many views: one round after the identity's
    ([6], 4, [6]),
    ([], 4, []),
])
def test_merge_rounds_keeps_round_0_alone_and_fills_the_others(sizes, min_items, merged):
    rounds = [[Item(r, i, r, 0) for i in range(n)] for r, n in enumerate(sizes)]
    out = merge_rounds(rounds, min_items)
    assert [len(r) for r in out] == merged
    assert [it for r in out for it in r] == [it for r in rounds for it in r]  # every item once, in order


# ---- exact inversion ----------------------------------------------------------------------------------
def test_inversion_is_exact_for_every_view(cfg, tmp_path):
    """A model that answers each canvas with itself must give back every test input under every view
    (8 dihedral ids, colour permutations), and must have been shown each view of each test input once."""
    tasks = identity_tasks()
    views = every_view(np.random.default_rng(2))
    puzzles = puzzle_set(tasks, views)
    stub = StubModel(echo)
    out = tmp_path / "submission.json"
    votes = predictor(stub, cfg, puzzles, batch_size=5).predict(tasks, out, progress=False)

    expected = sorted((puzzles.row(k, v), view.apply(x).shape, view.apply(x).tobytes())
                      for k, task in enumerate(tasks) for x in task.test_inputs for v, view in enumerate(views))
    assert sorted((r, g.shape, g.tobytes()) for r, g in stub.seen) == expected
    for task in tasks:
        for x, ballot in zip(task.test_inputs, votes[task.id]):
            (cand,) = ballot.candidates.values()
            assert cand.votes == len(views) and (cand.grid.shape, cand.grid.tolist()) == (x.shape, x.tolist())
    sub = load_submission(out)
    validate_submission(sub, tasks)
    assert sub == {t.id: [{"attempt_1": x.tolist(), "attempt_2": x.tolist()} for x in t.test_outputs]
                   for t in tasks}


@pytest.mark.parametrize("view", every_view(np.random.default_rng(3))[1:], ids=str)
def test_each_view_alone_is_inverted_exactly(cfg, view):
    """One view at a time (not the identity first), so a single wrong inverse cannot be outvoted."""
    tasks = identity_tasks()
    puzzles = puzzle_set(tasks, [view])
    votes = predictor(StubModel(echo), cfg, puzzles).predict(tasks, progress=False)
    for task in tasks:
        assert [b.top_two()[0].tolist() for b in votes[task.id]] == [x.tolist() for x in task.test_inputs]


# ---- the submission is always valid -------------------------------------------------------------------
def test_zero_time_budget_leaves_the_fallback_covering_every_task(cfg, tmp_path):
    tasks = identity_tasks()
    stub = StubModel(echo)
    out = tmp_path / "submission.json"
    predictor(stub, cfg, puzzle_set(tasks, every_view(np.random.default_rng(0)))).predict(
        tasks, out, time_budget=0.0, progress=False)
    assert stub.batches == 0
    sub = load_submission(out)
    validate_submission(sub, tasks)
    assert all(e["attempt_2"] == FALLBACK_ATTEMPT_2 for t in tasks for e in sub[t.id])


class FakeClock:
    """Stands in for the `time` module of arc_trm.infer: `monotonic()` is `now`, moved on by hand."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


def test_a_short_time_budget_stops_at_the_first_batch_boundary_past_it(cfg, tmp_path, monkeypatch):
    """Batches of 0.25 s on a fake clock, a 1 s budget: the deadline is checked before each batch, so the
    batches starting at 0, 0.25, 0.5, 0.75 and 1.0 s run (round 0: the 4 test inputs' identity views, then
    one of round 1) and the one at 1.25 s does not; the file holds the finished round."""
    clock = FakeClock()
    monkeypatch.setattr("arc_trm.infer.time", clock)
    tasks = identity_tasks()
    views = every_view(np.random.default_rng(0))
    stub = StubModel(echo, on_batch=lambda: setattr(clock, "now", clock.now + 0.25))
    out = tmp_path / "submission.json"
    rounds = []
    run = predictor(stub, cfg, puzzle_set(tasks, views), batch_size=1)
    votes = run.predict(tasks, out, time_budget=1.0, progress=False, on_round=lambda r, votes: rounds.append(r))
    assert stub.batches == 5 and clock.now == 1.25
    assert rounds == [0, 1]  # round 1 was cut short, its one batch still voted
    assert sum(c.votes for t in tasks for b in votes[t.id] for c in b.candidates.values()) == 5
    sub = load_submission(out)
    validate_submission(sub, tasks)
    assert sub == {t.id: [{"attempt_1": x.tolist(), "attempt_2": x.tolist()} for x in t.test_inputs] for t in tasks}


def test_ctrl_c_mid_run_leaves_a_valid_file_with_the_finished_rounds(cfg, tmp_path):
    tasks = identity_tasks()
    views = every_view(np.random.default_rng(0))
    puzzles = puzzle_set(tasks, views)
    # interrupt on the first batch of the third round (view index 2 of any task)
    stub = StubModel(echo, interrupt_rows=[puzzles.row(k, 2) for k in range(len(tasks))])
    out = tmp_path / "submission.json"
    with pytest.raises(KeyboardInterrupt):
        predictor(stub, cfg, puzzles, batch_size=2).predict(tasks, out, progress=False)
    sub = load_submission(out)
    validate_submission(sub, tasks)
    # two rounds were voted on: every test input has its (only) candidate in both attempts
    assert sub == {t.id: [{"attempt_1": x.tolist(), "attempt_2": x.tolist()} for x in t.test_inputs]
                   for t in tasks}


# ---- results and pass@k -------------------------------------------------------------------------------
def test_results_pass_at_k_follows_the_rank_of_the_true_output():
    """Twelve wrong candidates with 20, 19, ..., 9 votes; the truth ties the one at its target rank in
    votes and beats it on halt probability, so it lands exactly at that rank."""
    rng = np.random.default_rng(4)
    truths = [rng.integers(0, 10, (2, 2)).astype(np.uint8) for _ in range(5)]
    tasks = [Task(f"t{i}", [(g, g)], [g], [g]) for i, g in enumerate(truths)]
    votes = {}
    for task, truth, rank in zip(tasks, truths, [1, 2, 3, 11, None]):
        ballot = Ballot()
        for k in range(12):
            ballot.add(np.full((3, 3), k, dtype=np.uint8), 0.5, votes=20 - k)
        if rank is not None:
            ballot.add(truth, 0.9, votes=21 - rank)
        votes[task.id] = [ballot]
    sub = submission_from_votes(tasks, votes)
    res = results(tasks, votes, sub, "crafted")
    ranks = [res["tasks"][t.id][0]["correct_rank"] for t in tasks]
    assert ranks == [1, 2, 3, 11, None]
    s = res["scores"]
    assert [s[f"pass@{k}"] for k in PASS_AT] == [0.2, 0.4, 0.6, 0.6, 0.8]
    assert s["oracle"] == 0.8 and s["score"] == s["pass@2"] and s["correct_outputs"] == 2
    assert all(len(res["tasks"][t.id][0]["candidates"]) == 10 for t in tasks)


def test_results_without_solutions_have_no_scores():
    task = identity_tasks()[1]
    hidden = Task(task.id, task.train, task.test_inputs, None)
    votes = {task.id: [Ballot() for _ in task.test_inputs]}
    for b, x in zip(votes[task.id], task.test_inputs):
        b.add(x, 0.5)
    res = results([hidden], votes, submission_from_votes([hidden], votes), "hidden")
    assert res["scores"] is None and [e["correct_rank"] for e in res["tasks"][task.id]] == [None, None]


# ---- bad input ----------------------------------------------------------------------------------------
def test_an_empty_test_list_is_a_user_error(cfg):
    task = identity_tasks()[0]
    empty = Task(task.id, task.train, [], [])
    with pytest.raises(UserError, match=f"task {task.id}: empty test list"):
        predictor(StubModel(echo), cfg, puzzle_set([empty], [View()])).predict([empty], progress=False)


def copy_checkpoint(run, dest):
    """A copy of the run's latest checkpoint folder, to tamper with."""
    return shutil.copytree(latest_checkpoint(run), dest)


def edit_config(ckpt, edit) -> None:
    path = ckpt / "config.json"
    cfg = json.loads(path.read_text())
    edit(cfg)
    path.write_text(json.dumps(cfg))


def test_load_checkpoint_gives_the_trained_puzzles(tiny_checkpoint, small_files):
    tasks, _, _ = small_files
    cfg, puzzles, model = load_for_inference(tiny_checkpoint)
    assert puzzles.task_ids == [t.id for t in tasks] and cfg.model.hidden == 32
    assert model.puzzles.weight.shape == (puzzles.num_rows, 32)


def faulty_checkpoint(fault: str, run, tasks: list[Task], folder):
    """(checkpoint, tasks, fragments the error must name) for one kind of bad input."""
    ckpt = folder / "ckpt"
    if fault == "missing":
        return ckpt, tasks, [str(ckpt), "no such directory"]
    copy_checkpoint(run, ckpt)
    if fault == "corrupt-weights":
        (ckpt / "model.safetensors").write_bytes(b"\x00garbage, not safetensors" * 10)
        return ckpt, tasks, [str(ckpt), "model.safetensors", "corrupt"]
    if fault == "other-config":
        edit_config(ckpt, lambda c: c["model"].update(hidden=64))
        return ckpt, tasks, [str(ckpt), "do not match its config.json"]
    assert fault == "canvas"
    # the same weights with 7x7 as the largest canvas, and an unseen task with a 10x10 grid: the
    # error must come before adaptation trains on a canvas the model was not made for
    edit_config(ckpt, lambda c: c["data"].update(buckets=[7]))
    big = (np.arange(100) % 10).astype(np.uint8).reshape(10, 10)
    return ckpt, [*tasks, Task("big10x10", [(big, big)], [big], None)], ["task big10x10", "10x10", "7x7"]


FAULTS = ["missing", "corrupt-weights", "other-config", "canvas"]


@pytest.mark.parametrize("fault", FAULTS)
def test_bad_checkpoint_or_task_raises_one_line_naming_it(fault, tiny_checkpoint, small_files, tmp_path):
    ckpt, tasks, fragments = faulty_checkpoint(fault, tiny_checkpoint, small_files[0], tmp_path)
    with pytest.raises(UserError) as err:
        solve([ckpt], tasks, tmp_path / "submission.json", make_accelerator("no"), adapt_steps=1)
    message = str(err.value)
    assert "\n" not in message and all(f in message for f in fragments), message
    assert not (tmp_path / "submission-adapted").exists()  # nothing was adapted


@pytest.mark.parametrize("fault", ["canvas", "corrupt-weights"])
def test_bad_input_exits_2_with_one_line(fault, tiny_checkpoint, small_files, tmp_path, cli_error):
    ckpt, tasks, fragments = faulty_checkpoint(fault, tiny_checkpoint, small_files[0], tmp_path)
    challenges = tmp_path / "challenges.json"
    write_kaggle_files(tasks, challenges)
    cli_error(["predict", "--checkpoint", ckpt, "--tasks", challenges, "--out", tmp_path / "s.json",
               "--adapt-steps", "1"], *fragments)


# ---- the commands, end to end -------------------------------------------------------------------------
def test_predict_with_a_time_budget_stops_adapting_and_writes_a_valid_file(tiny_checkpoint, small_files, tmp_path,
                                                                           cli):
    """Known and unknown tasks, 100000 adaptation steps asked for: the budget, not the step count, ends
    adaptation (what prediction's measured cost leaves of 3 s, maybe nothing), and the submission covers
    every task."""
    tasks, challenges, _ = small_files
    known = {t.id for t in tasks}
    unknown = [t for t in load_tasks("arc1-small") if t.id not in known][:2]
    mixed = tmp_path / "mixed_challenges.json"
    write_kaggle_files(tasks + unknown, mixed)
    out = tmp_path / "submission.json"
    result = cli("predict", "--checkpoint", tiny_checkpoint, "--tasks", mixed, "--out", out, "--time-budget", 3,
                 "--adapt-steps", 100000)
    assert result.returncode == 0, result.stderr
    adapted = latest_checkpoint(tmp_path / "submission-adapted")
    assert adapted is not None
    assert json.loads((adapted / "trainer_state.json").read_text())["step"] < 100000
    validate_submission(load_submission(out), tasks + unknown)


@pytest.mark.slow
def test_evaluate_with_solutions_scores_and_writes_results(tiny_checkpoint, tmp_path, cli, capsys):
    """Three small ARC-AGI-1 evaluation tasks, unseen by the checkpoint: adapt, predict, score."""
    held_out_tasks = {t.id: t for t in load_tasks("arc1-eval")}
    chosen = [held_out_tasks[i] for i in ("6ea4a07e", "4cd1b7b2", "66e6c45b")]  # grids up to 4x4
    challenges, solutions = tmp_path / "eval_challenges.json", tmp_path / "eval_solutions.json"
    write_kaggle_files(chosen, challenges, solutions)
    out = tmp_path / "eval"
    result = cli("evaluate", "--checkpoint", tiny_checkpoint, "--dataset", challenges, "--out", out,
                 "--adapt-steps", 2, "--views", 2, "--json")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert set(printed) == {"scores", "out"}
    scores = printed["scores"]
    assert set(scores) == {*(f"pass@{k}" for k in PASS_AT), "oracle", "score", "task_score", "outputs",
                           "correct_outputs", "interval"}
    assert scores["outputs"] == 4
    passes = [scores[f"pass@{k}"] for k in PASS_AT]
    assert passes == sorted(passes) and passes[-1] <= scores["oracle"]
    assert latest_checkpoint(out / "adapted") is not None
    saved = json.loads((out / "results.json").read_text())
    assert saved["scores"] == scores and saved["source"] == str(challenges)
    for task in chosen:
        entries = saved["tasks"][task.id]
        assert len(entries) == len(task.test_inputs)
        assert all(sum(c["votes"] for c in e["candidates"]) == 2 for e in entries)  # one per view
    assert "<html" in (out / "report.html").read_text().lower()
    assert main(["score", str(out / "submission.json"), "--solutions", str(challenges), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["score"] == scores["pass@2"] == scores["score"]


@pytest.mark.slow
def test_evaluate_without_solutions_predicts_and_validates(tiny_checkpoint, small_files, tmp_path, cli):
    tasks, _, _ = small_files
    known = {t.id for t in tasks}
    unseen = [t for t in load_tasks("arc1-small") if t.id not in known][:1]
    challenges = tmp_path / "hidden_challenges.json"
    write_kaggle_files(tasks[:1] + unseen, challenges)  # no solutions file
    out = tmp_path / "eval"
    result = cli("evaluate", "--checkpoint", tiny_checkpoint, "--dataset", challenges, "--out", out,
                 "--adapt-steps", 1)
    assert result.returncode == 0, result.stderr
    assert "no solutions" in result.stdout
    assert json.loads((out / "results.json").read_text())["scores"] is None
    assert "hidden outputs" in (out / "report.html").read_text()  # predictions drawn, nothing scored
    validate_submission(load_submission(out / "submission.json"), load_tasks(challenges))


@pytest.mark.slow
def test_ctrl_c_during_adaptation_leaves_a_valid_submission(tiny_checkpoint, small_files, tmp_path):
    """The file is written before adaptation starts, so an interrupt there still leaves every task covered."""
    tasks, _, _ = small_files
    unseen = [t for t in load_tasks("arc1-small") if t.id not in {t.id for t in tasks}][:2]
    challenges = tmp_path / "mixed_challenges.json"
    write_kaggle_files(tasks + unseen, challenges)
    out, log = tmp_path / "submission.json", tmp_path / "stderr.txt"
    with open(log, "w") as stderr:
        # SIGINT at its default in the child, so Python turns it into KeyboardInterrupt even when pytest itself
        # was started in the background (`cmd &` in a script), where it is inherited as ignored
        proc = subprocess.Popen([ARC_TRM, "predict", "--checkpoint", str(tiny_checkpoint), "--tasks", str(challenges),
                                 "--out", str(out), "--adapt-steps", "100000"], stderr=stderr, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 120
        while "train:" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) != 0
    assert "train:" in log.read_text()
    validate_submission(load_submission(out), tasks + unseen)


@pytest.mark.slow
def test_demo_trains_for_its_budget_then_writes_and_scores_a_submission(small_files, tmp_path, cli, capsys):
    tasks, challenges, _ = small_files
    out = tmp_path / "demo"
    result = cli("demo", "--tasks", challenges, "--out", out, "--minutes", 0.1, "--scratch", "--json",
                 "model.hidden=32", "model.heads=2", "model.puzzle_dim=32", "views=4", "batch_size=8")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["out"] == str(out) and printed["seconds"] > 6
    assert printed["scores"]["outputs"] == sum(len(t.test_inputs) for t in tasks)
    assert main(["score", str(out / "submission.json"), "--solutions", str(challenges), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["score"] == printed["scores"]["pass@2"]
    saved = json.loads((out / "results.json").read_text())
    assert all(sum(c["votes"] for c in e["candidates"]) == 4 for t in tasks for e in saved["tasks"][t.id])
    trained = json.loads((out / "run" / "config.json").read_text())
    assert trained["data"]["held_out_tasks"] == [str(challenges)] and trained["model"]["hidden"] == 32
    steps = [json.loads(ln)["step"] for ln in (out / "run" / "metrics.jsonl").read_text().splitlines()]
    assert 1 < max(steps) < 1000000  # the budget, not max_steps, ended training


def test_demo_without_solutions_exits_2(small_files, tmp_path, cli_error):
    hidden = tmp_path / "hidden_challenges.json"
    write_kaggle_files(small_files[0], hidden)
    cli_error(["demo", "--tasks", hidden, "--out", tmp_path / "demo"], str(hidden), "no solutions")


def test_output_side_follows_the_shape_rule_the_demonstrations_agree_on():
    def task(*shapes):  # (input shape, output shape) per demonstration
        return Task("t", [(np.zeros(i, np.uint8), np.zeros(o, np.uint8)) for i, o in shapes], [], None)

    big = np.zeros((12, 12), np.uint8)
    small = np.zeros((3, 5), np.uint8)
    assert estimate_output_side(task(((12, 12), (12, 12)), ((4, 4), (4, 4))), small) == 5  # same shape
    assert estimate_output_side(task(((12, 12), (2, 2)), ((9, 9), (2, 2))), small) == 5  # fixed 2x2, input larger
    assert estimate_output_side(task(((12, 12), (3, 3)), ((4, 4), (3, 3))), np.zeros((2, 2))) == 3  # fixed 3x3
    assert estimate_output_side(task(((2, 3), (6, 9)), ((4, 4), (12, 12))), small) == 15  # 3x per axis
    assert estimate_output_side(task(((2, 3), (6, 9)), ((4, 4), (12, 12))), big) == 30  # capped at 30
    # no agreed rule: the task's largest grid, or the input scaled by the largest growth
    assert estimate_output_side(task(((12, 12), (3, 3)), ((4, 4), (8, 8))), small) == 12
    assert estimate_output_side(task(((2, 2), (3, 3)), ((4, 4), (8, 8))), small) == 10


@pytest.mark.parametrize("name", ["arc1-train", "arc1-eval", "arc2-eval"])
def test_output_side_estimate_holds_nearly_every_true_output(name):
    inputs = [(t, g, o) for t in load_tasks(name) for g, o in zip(t.test_inputs, t.test_outputs)]
    # the few misses are tasks whose output size the demonstrations do not determine (e.g. a count)
    short = [t.id for t, g, o in inputs if estimate_output_side(t, g) < max(o.shape)]
    assert len(short) <= 0.015 * len(inputs), short
