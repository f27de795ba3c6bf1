"""What a paper-scale run depends on and no CPU run shows: several task sources, the run length in the
reference's epochs, the plan printed by `train --dry-run`, the reference's placement of grids, bucket
draws weighted by compute, votes pooled across checkpoints, and prediction in bf16 in a fresh process."""

import json

import numpy as np
import pytest
from conftest import TINY

from arc_trm.cli import main
from arc_trm.config import load_config
from arc_trm.data import ExampleTable, PuzzleSet, training_data
from arc_trm.encoding import EOS, PAD
from arc_trm.tasks import load_tasks, write_kaggle_files
from arc_trm.train import Trainer


@pytest.fixture(scope="module")
def two_files(tmp_path_factory):
    """Two challenges files with solutions: arc1-small tasks 0-2 and 2-4 (task 2 in both)."""
    tasks = load_tasks("arc1-small")
    folder = tmp_path_factory.mktemp("sources")
    paths = []
    for name, chosen in (("a", tasks[0:3]), ("b", tasks[2:5])):
        paths.append(folder / f"{name}_challenges.json")
        write_kaggle_files(chosen, paths[-1], folder / f"{name}_solutions.json")
    return tasks[:5], paths


def test_several_sources_load_each_task_once_and_held_out_tasks_win(two_files):
    tasks, (a, b) = two_files
    cfg = load_config("tiny-cpu", [f'data.train_tasks=["{a}", "{b}"]', f"data.held_out_tasks={b}", "views=2"])
    data = training_data(cfg)
    assert [t.id for t in data.tasks] == [t.id for t in tasks[0:2]] + [t.id for t in tasks[2:5]]
    # train tasks give every pair (test outputs included); eval tasks their demonstrations only
    assert [len(p) for p in data.pairs] == [len(t.train) + len(t.test_inputs) for t in tasks[0:2]] + [
        len(t.train) for t in tasks[2:5]]
    assert data.sources == [("eval", str(b), 3, sum(len(t.train) for t in tasks[2:5])),
                            ("train", str(a), 2, sum(len(t.train) + len(t.test_inputs) for t in tasks[0:2])),
                            ("train", str(b), 0, 0)]
    assert data.held_out == [(2 + i, j) for i, t in enumerate(tasks[2:5]) for j in range(len(t.test_inputs))]


def test_epochs_resolve_to_the_reference_step_count(two_files):
    """pretrain.py: total_steps = int(epochs x total_groups x mean_puzzle_examples / global_batch_size),
    a group being a task and its puzzles its views, each holding all of the task's trainable pairs."""
    tasks, (a, _) = two_files
    cfg = load_config("tiny-cpu", [f"data.held_out_tasks={a}", "data.train_tasks=", "views=5", "epochs=1000",
                                   "batch_size=16"])
    data = training_data(cfg)
    views = [len(v) for v in data.puzzles.views]
    pairs = [len(t.train) for t in tasks[0:3]]
    mean_puzzle_examples = sum(v * p for v, p in zip(views, pairs)) / sum(views)
    assert data.steps_for_epochs(1000, 16) == int(1000 * 3 * mean_puzzle_examples / 16)


def test_dry_run_prints_the_plan_without_training(two_files, tmp_path, capsys):
    _, (a, b) = two_files
    out = tmp_path / "never"
    assert main(["train", "--config", "arc1-reference", "--out", str(out), "--dry-run", "--json",
                 f'data.train_tasks=["{a}"]', f"data.held_out_tasks={b}", "views=3"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["params"] == 6_828_545 and plan["tasks"] == 5 and plan["buckets"] == {"30": 1.0}
    assert plan["max_steps"] == plan["epochs"] * 5 * plan["examples_per_view"] // 768 > 0
    assert not out.exists()


def grid_box(canvas: np.ndarray) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the colour cells of a canvas."""
    rows, cols = np.nonzero(canvas >= 2)
    return rows.min(), cols.min(), rows.max(), cols.max()


def test_the_reference_placement_is_fixed_reaches_the_edge_and_keeps_one_example_home():
    """As the reference's dataset build: one offset per example for the run, anywhere up to the canvas
    edge (the EOS edge then falls off), one example of each puzzle at the top-left."""
    tasks = [t for t in load_tasks("arc1-small") if len(t.train) >= 3][:6]
    puzzles = PuzzleSet.build(tasks, 4, seed=0)
    table = ExampleTable(puzzles, [t.train for t in tasks], [30], placement="reference", seed=0)
    every = np.arange(len(table))
    rng = np.random.default_rng(1)
    inputs, labels, _ = table.canvases(every, 30, rng.random((len(table), 2)))
    again, _, _ = table.canvases(every, 30, rng.random((len(table), 2)))  # other draws, the same placement
    assert np.array_equal(inputs, again)
    boxes = [grid_box(x) for x in inputs]
    assert all(b[:2] == grid_box(y)[:2] for b, y in zip(boxes, labels))  # input and label share the offset
    home: dict[tuple[int, int], int] = {}
    for i, box in zip(every, boxes):
        key = (table.task[i], table.view[i])
        home[key] = home.get(key, 0) + (box[:2] == (0, 0))
    assert all(n >= 1 for n in home.values())
    assert any(max(box[2], box[3]) == 29 for box in boxes)  # a grid on the canvas edge, no room for EOS


def test_random_placement_keeps_the_eos_edge_inside_and_inputs_aligned_with_labels():
    tasks = load_tasks("arc1-small")[:5]
    puzzles = PuzzleSet.build(tasks, 3, seed=0)
    table = ExampleTable(puzzles, [t.train for t in tasks], [10])
    every = np.arange(len(table))
    inputs, labels, _ = table.canvases(every, 10, np.random.default_rng(2).random((len(table), 2)))
    for x, y in zip(inputs, labels):
        rx, cx = np.nonzero(x >= 2)
        ry, cy = np.nonzero(y >= 2)
        assert (rx.min(), cx.min()) == (ry.min(), cy.min())
        for canvas, r, c in ((x, rx, cx), (y, ry, cy)):  # the EOS corner is inside the canvas
            assert canvas[r.max() + 1, c.max() + 1] == EOS and (canvas[:r.min()] == PAD).all()


@pytest.mark.parametrize("placement, side", [("random", 10), ("reference", 30), ("reference", 10)])
def test_placement_puts_each_example_s_own_input_and_output_at_one_offset(placement, side):
    """Whatever the placement, the input canvas holds the example's input under its view and the label
    canvas that view of the same pair's output, at the same offset, on the example's puzzle row."""
    tasks = load_tasks("arc1-small")[:5]
    puzzles = PuzzleSet.build(tasks, 3, seed=0)
    table = ExampleTable(puzzles, [t.train for t in tasks], [side], placement=placement, seed=0)
    every = np.arange(len(table))
    inputs, labels, rows = table.canvases(every, side, np.random.default_rng(3).random((len(table), 2)))
    offsets = set()
    for i, x, y, row in zip(every, inputs, labels, rows):
        view = puzzles.views[table.task[i]][table.view[i]]
        inp, out = (view.apply(g) for g in tasks[table.task[i]].train[table.pair[i]])
        top, left = grid_box(x)[:2]
        assert np.array_equal(x[top:top + inp.shape[0], left:left + inp.shape[1]], inp + 2)  # colour c is token c + 2
        assert np.array_equal(y[top:top + out.shape[0], left:left + out.shape[1]], out + 2)
        assert row == puzzles.row(table.task[i], table.view[i])
        offsets.add((top, left))
    assert len(offsets) > 1  # placed, not all at the top-left


def test_buckets_are_drawn_by_examples_times_steps_to_halt(small_files, tmp_path, accelerator):
    cfg = load_config("tiny-cpu", [f"data.held_out_tasks={small_files[1]}", *TINY, "data.buckets=[4, 5, 6, 7]"])
    trainer = Trainer(cfg, tmp_path, training_data(cfg), accelerator, quiet=True)
    buckets = trainer.buckets
    sides, n = buckets.sides, buckets.examples
    assert len(sides) >= 2 and sides == list(trainer.batches)
    np.testing.assert_allclose(buckets.weights, n / n.sum())  # before any halting: N_sup everywhere
    steps = np.arange(1.0, len(sides) + 1)  # larger grids halting later
    buckets.mean_steps = steps.copy()
    np.testing.assert_allclose(buckets.weights, n * steps / (n * steps).sum())
    buckets.by_compute = False
    np.testing.assert_allclose(buckets.weights, n / n.sum())
    # N_sup = 2 and a halt head far from halting: the batch's 8 examples leave together every 2 steps
    buckets.mean_steps[0] = 4.0
    for _ in range(6):
        trainer.train_step(side=sides[0])
    assert buckets.mean_steps[0] == pytest.approx(2 + 2 * (1 - 1 / 64) ** 24)  # running mean moved toward 2
    np.testing.assert_allclose(buckets.mean_steps[1:], steps[1:])


def test_pooled_votes_add_up_over_checkpoints(tiny_checkpoint, small_files, tmp_path, capsys):
    tasks, challenges, _ = small_files
    run = tiny_checkpoint
    steps = sorted((run / "checkpoints").glob("step-*"))
    assert main(["evaluate", "--checkpoint", str(run), "--checkpoint", str(run), "--dataset", str(challenges),
                 "--out", str(tmp_path / "pooled"), "--views", "3"]) == 0
    pooled = json.loads((tmp_path / "pooled" / "results.json").read_text())
    assert main(["evaluate", "--checkpoint", str(run), "--dataset", str(challenges), "--out",
                 str(tmp_path / "one"), "--views", "3"]) == 0
    one = json.loads((tmp_path / "one" / "results.json").read_text())
    for task in tasks:
        for mine, single in zip(pooled["tasks"][task.id], one["tasks"][task.id]):
            assert [c["votes"] for c in mine["candidates"]] == [2 * c["votes"] for c in single["candidates"]]
            assert all(c["checkpoint_votes"] == [c["votes"] // 2] * 2 for c in mine["candidates"])
    assert main(["evaluate", "--checkpoint", str(run), "--pool", "1", "--dataset", str(challenges), "--out",
                 str(tmp_path / "last"), "--views", "3"]) == 0
    assert json.loads((tmp_path / "last" / "results.json").read_text())["checkpoints"] == [str(steps[-1])]


@pytest.mark.slow
def test_prediction_runs_in_bf16_in_a_fresh_process_with_the_votes_of_fp32(small_files, tmp_path, cli):
    """What the notebook runs on Kaggle's GPUs: `predict` in a new process, in the precision asked for
    (CPU autocast here). bf16 moves the halt probabilities a little, not the answers of a model trained a
    little (40 steps: a 5-step model's logits are near ties that bf16 rounding flips)."""
    _, challenges, _ = small_files
    run = tmp_path / "run"
    assert main(["train", "--config", "tiny-cpu", "--out", str(run), f"data.held_out_tasks={challenges}", *TINY,
                 "max_steps=40"]) == 0
    results = {}
    for precision in ("no", "bf16"):
        out = tmp_path / precision
        done = cli("evaluate", "--checkpoint", run, "--dataset", challenges, "--out", out,
                   "--precision", precision, "--json")
        assert done.returncode == 0, done.stderr
        results[precision] = json.loads((out / "results.json").read_text())
        assert results[precision]["precision"] == precision
    fp32, bf16 = (results[p]["tasks"] for p in ("no", "bf16"))
    same = total = 0  # votes cast for the same grid in both precisions
    halts = []
    for task_id in fp32:
        for a, b in zip(fp32[task_id], bf16[task_id]):
            theirs = {json.dumps(c["grid"]): c for c in b["candidates"]}
            for c in a["candidates"]:
                match = theirs.get(json.dumps(c["grid"]))
                same += min(c["votes"], match["votes"]) if match else 0
                total += c["votes"]
                halts += [(c["halt_prob"], match["halt_prob"])] if match else []
    assert same >= 0.75 * total, (same, total)
    assert any(x != y for x, y in halts) and all(abs(x - y) < 0.05 for x, y in halts)
