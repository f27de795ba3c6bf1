"""Test-time adaptation (arc_trm.adapt) on a real tiny checkpoint: rows-only mode changes only the new
puzzle rows, which start from the mean of the trained rows; full mode also changes the weights; test
outputs are never needed; an adapted checkpoint resumes and is loadable for prediction."""

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file

from arc_trm.adapt import adapt
from arc_trm.checkpoint import latest_checkpoint, load_for_inference
from arc_trm.errors import UserError
from arc_trm.tasks import load_tasks, write_kaggle_files
from arc_trm.train import make_accelerator

TABLE = "puzzles.weight"


@pytest.fixture(scope="module")
def unseen(small_files):
    """Two arc1-small tasks the tiny checkpoint was not trained on, their test outputs hidden."""
    known = {t.id for t in small_files[0]}
    return [dataclasses.replace(t, test_outputs=None) for t in load_tasks("arc1-small") if t.id not in known][:2]


def effective_weights(ckpt) -> dict[str, torch.Tensor]:
    """What inference runs with: model.safetensors with the EMA weights laid over it."""
    ema = ckpt / "ema.safetensors"
    return {**load_file(ckpt / "model.safetensors"), **(load_file(ema) if ema.exists() else {})}


def adapted(tiny_checkpoint, tasks, out, mode, steps=2):
    run = adapt(tiny_checkpoint, tasks, out, make_accelerator("no"), mode=mode, steps=steps, quiet=True)
    assert run == out
    return latest_checkpoint(tiny_checkpoint), latest_checkpoint(out)


def test_rows_mode_changes_only_the_new_rows_from_their_mean_start(tiny_checkpoint, unseen, small_files, tmp_path):
    before_ckpt, after_ckpt = adapted(tiny_checkpoint, unseen, tmp_path / "rows", "rows", steps=1)
    before, after = effective_weights(before_ckpt), effective_weights(after_ckpt)
    assert before.keys() == after.keys()
    for name in before.keys() - {TABLE}:
        assert torch.equal(before[name], after[name]), f"rows mode changed dense weight {name}"

    old, new = before[TABLE], after[TABLE]
    n_old = len(old)
    puzzles = json.loads((after_ckpt / "puzzles.json").read_text())
    assert puzzles["task_ids"] == [t.id for t in small_files[0]] + [t.id for t in unseen]
    assert puzzles["first_row"][3] == n_old
    n_new = sum(len(v) for v in puzzles["views"][3:])
    assert new.shape == (n_old + n_new, old.shape[1]) and n_new == 2 * 4  # 4 views per task, from the config
    assert torch.equal(new[:n_old], old), "rows mode changed a trained puzzle row"

    # one sign-SGD step (lr factor 1 at step 0 of a 1-step run) from the mean of the trained rows
    # (row 0, the blank, excluded): new = start * (1 - lr * wd) - lr * sign(grad), or start if untouched
    cfg, _, _ = load_for_inference(after_ckpt)
    lr, wd = cfg.optim.puzzle_lr, cfg.optim.puzzle_weight_decay
    start = old[1:].mean(0)
    assert start.abs().max() > 0.1 * lr, "the trained rows should have moved from zero"
    sign = (new[n_old:] - start * (1 - lr * wd)) / lr
    assert (sign - sign.round()).abs().max() < 1e-2 and sign.abs().max() <= 1 + 1e-2, sign
    touched = (new[n_old:] != start).any(dim=1)
    assert touched.any(), "no new row was trained"
    assert torch.equal(new[n_old:][~touched], start.expand(int((~touched).sum()), -1))


def test_full_mode_also_changes_the_weights(tiny_checkpoint, unseen, tmp_path):
    before_ckpt, after_ckpt = adapted(tiny_checkpoint, unseen, tmp_path / "full", "full")
    before, after = load_file(before_ckpt / "model.safetensors"), load_file(after_ckpt / "model.safetensors")
    start = effective_weights(before_ckpt)  # adaptation starts from the EMA weights
    changed = [n for n in before if n != TABLE and not torch.equal(start[n], after[n])]
    assert len(changed) >= len(before) // 2, f"only {changed} changed"
    assert torch.equal(after[TABLE][:len(before[TABLE])], before[TABLE]), "full mode changed a trained puzzle row"
    assert json.loads((after_ckpt / "trainer_state.json").read_text())["train_weights"] is True


def test_adaptation_resumes_and_knows_every_task(tiny_checkpoint, unseen, small_files, tmp_path):
    out = tmp_path / "rows"
    adapted(tiny_checkpoint, unseen, out, "rows", steps=1)
    adapted(tiny_checkpoint, unseen, out, "rows", steps=2)  # the same --out continues at step 1
    assert json.loads((latest_checkpoint(out) / "trainer_state.json").read_text())["step"] == 2
    _, puzzles, _ = load_for_inference(out)
    assert all(puzzles.index(t.id) is not None for t in small_files[0] + unseen)


def test_known_tasks_need_no_adaptation_and_bad_modes_are_refused(tiny_checkpoint, small_files, tmp_path):
    out = tmp_path / "none"
    assert adapt(tiny_checkpoint, small_files[0], out, make_accelerator("no"), steps=2, quiet=True) == tiny_checkpoint
    assert not out.exists()
    with pytest.raises(UserError, match="adapt mode must be one of full, rows"):
        adapt(tiny_checkpoint, small_files[0], out, make_accelerator("no"), mode="weights")


@pytest.mark.slow
def test_adapt_command_on_a_challenges_file_without_solutions(tiny_checkpoint, unseen, tmp_path, cli):
    challenges = tmp_path / "hidden_challenges.json"
    write_kaggle_files(unseen, challenges)
    out = tmp_path / "adapted"
    result = cli("adapt", "--checkpoint", tiny_checkpoint, "--tasks", challenges, "--out", out, "--steps", 1,
                 "--views", 2)
    assert result.returncode == 0, result.stderr
    assert str(out) in result.stdout
    _, puzzles, _ = load_for_inference(out)
    assert [len(puzzles.views[puzzles.index(t.id)]) for t in unseen] == [2, 2]
