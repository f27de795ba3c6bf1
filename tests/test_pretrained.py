"""`arc-trm demo --start CKPT`: the demo adapts a pretrained checkpoint instead of training from scratch,
and refuses one that was trained on any of the tasks it scores (its score would not be of unseen tasks)."""

import json

import pytest

from arc_trm import pipeline
from arc_trm.checkpoint import latest_checkpoint, load_for_inference
from arc_trm.cli import main
from arc_trm.tasks import load_tasks


def test_demo_refuses_a_start_trained_on_its_tasks(small_files, tiny_checkpoint, tmp_path, cli_error):
    tasks, challenges, _ = small_files
    cli_error(["demo", "--tasks", str(challenges), "--start", str(tiny_checkpoint), "--out", str(tmp_path / "d")],
              "--start", "was trained on task", "3 of its tasks")
    assert not (tmp_path / "d" / "run").exists()


def test_the_shipped_start_saw_no_task_the_demo_or_an_evaluation_set_scores():
    """The checkpoint shipped for `arc-trm demo` (built by scripts/pretrain_demo.py) was pretrained only on
    ARC-AGI-1 training tasks with a grid over 8x8: none of those up to 8x8 (arc1-small and the split the
    settings were chosen on) and none of any evaluation set. It loads, and stays a few MB."""
    start = pipeline.SHIPPED_START
    assert latest_checkpoint(start) is not None
    cfg, puzzles, _ = load_for_inference(start)
    assert cfg.data.train_tasks == ["arc1-train:over=8:max_side=12"] and len(puzzles.task_ids) == 150
    for source in ("arc1-train:max_side=8", "arc1-eval", "arc2-eval", "kaggle2025-eval"):
        assert pipeline.seen_in_training(start, load_tasks(source)) == [], source
    assert sum(f.stat().st_size for f in start.iterdir()) < 4_000_000


@pytest.mark.slow
def test_demo_adapts_an_unrelated_start_and_scores(small_files, other_checkpoint, tmp_path, capsys):
    tasks, challenges, _ = small_files
    out = tmp_path / "demo"
    assert main(["demo", "--tasks", str(challenges), "--start", str(other_checkpoint), "--out", str(out),
                 "--minutes", "0.2", "--json", "max_steps=3"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["scores"]["outputs"] == sum(len(t.test_inputs) for t in tasks)
    _, puzzles, _ = load_for_inference(out / "run")
    known = set(load_for_inference(other_checkpoint)[1].task_ids)
    assert set(puzzles.task_ids) == known | {t.id for t in tasks}  # the start's tasks, then the demo's
    state = json.loads((latest_checkpoint(out / "run") / "trainer_state.json").read_text())
    assert state["step"] == 3 and state["train_weights"]  # every weight trained, for the steps asked


@pytest.mark.slow
@pytest.mark.parametrize("shipped", ["tiny_checkpoint", "other_checkpoint"])
def test_demo_by_default_adapts_the_shipped_start_unless_it_saw_the_tasks(shipped, small_files, tmp_path, capsys,
                                                                           monkeypatch, request):
    """With no --start the demo adapts the package's checkpoint; one pretrained on a scored task is set
    aside (a note on stderr) and the demo trains from scratch, with the overrides given."""
    start = request.getfixturevalue(shipped)
    monkeypatch.setattr(pipeline, "SHIPPED_START", start)
    tasks, challenges, _ = small_files
    out = tmp_path / "demo"
    assert main(["demo", "--tasks", str(challenges), "--out", str(out), "--minutes", "0.2", "--json",
                 "max_steps=2", "model.hidden=32", "model.heads=2", "model.puzzle_dim=32", "views=4"]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    trained_on = set(load_for_inference(out / "run")[1].task_ids)
    if shipped == "tiny_checkpoint":  # trained on these very tasks
        assert "pretrained on some of these tasks: training from scratch" in captured.err
        assert printed["start"] is None and trained_on == {t.id for t in tasks}
    else:
        assert printed["start"] == str(start)
        assert trained_on == set(load_for_inference(start)[1].task_ids) | {t.id for t in tasks}
