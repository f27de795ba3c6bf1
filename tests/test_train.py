"""Training: EMA math, memorising a few small tasks, exact resume, kill -9 during a save, two processes
equal to one, and config errors. Runs use a few arc1-small tasks and tiny model sizes."""

import dataclasses
import json
import math
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ARC_TRM
from conftest import TINY as TINY_RUN
from safetensors.torch import load_file

import arc_trm
from arc_trm.checkpoint import INFERENCE_FILES, latest_checkpoint
from arc_trm.cli import main
from arc_trm.config import OptimConfig, load_config
from arc_trm.data import training_data
from arc_trm.encoding import canvas_side, decode, encode
from arc_trm.errors import UserError
from arc_trm.tasks import load_tasks, write_kaggle_files
from arc_trm.train import EMA, Schedule, Trainer, learning_rate_factor

REPO = Path(__file__).resolve().parents[1]
_TORCHRUN = Path(sys.executable).with_name("torchrun")
TORCHRUN = str(_TORCHRUN) if _TORCHRUN.exists() else "torchrun"

# small sizes: a step takes milliseconds; halting exploration off so runs are comparable across layouts
TINY = ["model.hidden=32", "model.heads=2", "model.puzzle_dim=32", "model.prefix_len=1", "model.n_latent=1",
        "model.n_recursion=2", "model.n_supervision=2", "views=4", "batch_size=8", "warmup_steps=5",
        "lr_min_ratio=1.0", "halt_exploration=0", "log_every=1", "eval_every=0", "keep_checkpoints=10"]


def tiny_overrides(challenges: Path) -> list[str]:
    return [f"data.held_out_tasks={challenges}", "data.train_tasks=", *TINY]


# one thread per process: the CPU is shared, and oversubscribed OpenMP threads slow runs down many times
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


def train(out: Path, *overrides: str, script: list[str] = (ARC_TRM, "train")) -> subprocess.CompletedProcess:
    result = subprocess.run([*script, "--config", "tiny-cpu", "--out", str(out), *overrides],
                            capture_output=True, text=True, timeout=300, cwd=REPO, env=ONE_THREAD)
    assert result.returncode == 0, result.stderr
    return result


def loss_lines(run: Path) -> list[dict]:
    """metrics.jsonl's training lines, without the wall-clock throughput."""
    lines = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in m.items() if k != "examples_per_s"} for m in lines if "loss" in m]


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / (run / "latest").read_text().strip() / "model.safetensors")


def assert_same_weights(a: dict, b: dict, atol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=atol, msg=lambda m, k=k: f"{k}: {m}")


# ---- EMA -------------------------------------------------------------------------------------------------

def test_ema_update_and_warm_up():
    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema = EMA(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(3.0)
    ema.update(model, step=0)  # warm-up: decay min(0.9, 1/10) = 0.1
    torch.testing.assert_close(ema.shadow["weight"], torch.full((1, 2), 0.1 * 1 + 0.9 * 3))
    ema.update(model, step=1000)  # warmed up: decay 0.9
    torch.testing.assert_close(ema.shadow["weight"], torch.full((1, 2), 0.9 * 2.8 + 0.1 * 3))
    with ema.applied(model):
        torch.testing.assert_close(model.weight.data, torch.full((1, 2), 2.82))
    torch.testing.assert_close(model.weight.data, torch.full((1, 2), 3.0))  # restored afterwards


def test_a_single_supervision_step_with_exploration_trains(small_files, tmp_path, accelerator):
    """N_sup = 1 leaves exploration nothing to stretch (its random minimum used to start at 2 and crash)."""
    cfg = load_config("tiny-cpu", [*tiny_overrides(small_files[1]), "model.n_supervision=1", "halt_exploration=1.0"])
    trainer = Trainer(cfg, tmp_path, training_data(cfg), accelerator, quiet=True)
    metrics = [trainer.train_step(with_metrics=True) for _ in range(2)]
    assert [m["mean_steps"] for m in metrics] == [1.0, 1.0]  # every example leaves after its one step


# ---- learning-rate schedule -------------------------------------------------------------------------------

@pytest.mark.parametrize("step, warmup, total, min_ratio, factor", [
    (0, 4, 100, 0.1, 0.25),  # warm-up: linear from 1/warmup ...
    (3, 4, 100, 0.1, 1.0),  # ... to 1 at its last step
    (4, 4, 100, 0.1, 1.0),  # the cosine starts at 1
    (52, 4, 100, 0.1, 0.55),  # half way through the cosine: half way to the floor
    (100, 4, 100, 0.1, 0.1),  # its end: the floor ...
    (500, 4, 100, 0.1, 0.1),  # ... and past it
    (76, 4, 100, 0.0, 0.5 * (1 + math.cos(math.pi * 0.75))),  # three quarters, no floor
    (0, 0, 10, 0.5, 1.0),  # no warm-up
    (50, 4, None, 0.1, 1.0),  # total not known yet: constant after the warm-up
    (2, 4, None, 0.1, 0.75),
    (50, 4, 100, 1.0, 1.0),  # min_ratio 1: constant, as the reference
])
def test_learning_rate_factor(step, warmup, total, min_ratio, factor):
    assert learning_rate_factor(step, warmup, total, min_ratio) == pytest.approx(factor)


def optim(**fields) -> OptimConfig:
    return dataclasses.replace(OptimConfig(), warmup_steps=0, lr_min_ratio=0.0, **fields)


def test_a_schedule_without_a_budget_stops_at_max_steps():
    schedule = Schedule(optim(), max_steps=20)
    assert schedule.replans == [] and schedule.total == 20
    assert not schedule.finished(19, elapsed=1e9)  # no budget: time does not count
    assert schedule.finished(20, elapsed=0.0)
    assert schedule.factor(20) == pytest.approx(0.0) and schedule.factor(10) == pytest.approx(0.5)


def test_a_time_budget_replans_at_a_tenth_a_quarter_a_half_and_three_quarters():
    """Budget 100 s, no max_steps: the total is unknown (lr constant after warm-up) until the first point
    (10 s) passes, then fitted to the measured speed at each point as it passes, and only then."""
    schedule = Schedule(optim(), max_steps=None, time_budget=100)
    assert schedule.replans == [10, 25, 50, 75] and schedule.total is None
    assert not schedule.finished(40, elapsed=9.9) and schedule.total is None and schedule.factor(40) == 1.0
    assert not schedule.finished(50, elapsed=10.5)  # 50 steps in 10.5 s: 423 more fit in the 89.5 s left
    assert schedule.total == 50 + int(50 / 10.5 * 89.5) == 476 and schedule.replans == [25, 50, 75]
    assert not schedule.finished(100, elapsed=20.0) and schedule.total == 476  # between points: kept
    assert not schedule.finished(100, elapsed=30.0)  # slower than it seemed: 100 steps in 30 s
    assert schedule.total == 100 + int(100 / 30 * 70) == 333 and schedule.replans == [50, 75]
    assert not schedule.finished(300, elapsed=80.0)  # passed 50 and 75 at once: one re-plan, none left
    assert schedule.total == 300 + int(300 / 80 * 20) == 375 and schedule.replans == []
    assert schedule.finished(375, elapsed=90.0)  # the fitted total reached
    assert schedule.finished(360, elapsed=100.5)  # the budget spent


def test_a_replan_is_capped_by_max_steps_counts_from_the_resumed_step_and_keeps_one_step_to_go():
    capped = Schedule(optim(), max_steps=200, time_budget=100)
    assert capped.total == 200 and not capped.finished(50, elapsed=11.0)
    assert capped.total == 200  # the fit (454) exceeds max_steps
    resumed = Schedule(optim(), max_steps=None, time_budget=100, start_step=1000)
    assert not resumed.finished(1000, elapsed=11.0) and resumed.total is None  # no step yet: no speed
    assert not resumed.finished(1050, elapsed=12.0)  # this run's 50 steps in 12 s, not 1050
    assert resumed.total == 1050 + int(50 / 12 * 88)
    lowered = Schedule(optim(), max_steps=100, time_budget=100, start_step=150)  # max_steps below the step
    assert not lowered.finished(160, elapsed=11.0) and lowered.total == 161
    assert Schedule(optim(), max_steps=None, time_budget=1000).replans[0] == 20  # the first point: 20 s at most


def test_a_spent_budget_stops_training_before_its_first_step(small_files, tmp_path, accelerator):
    """A budget of 0 s (what `predict --time-budget` leaves adaptation when prediction needs it all) is a
    budget, not the absence of one: fit stops at once, where max_steps would allow 1000 steps."""
    cfg = load_config("tiny-cpu", tiny_overrides(small_files[1]))
    trainer = Trainer(cfg, tmp_path, training_data(cfg), accelerator, quiet=True)
    trainer.fit(Schedule(cfg.optim, max_steps=1000, time_budget=0.0))
    assert trainer.step == 0 and latest_checkpoint(tmp_path) is not None


# ---- memorisation ----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_tiny_model_memorises_a_few_tasks(tmp_path, accelerator):
    chosen = [t for t in load_tasks("arc1-small") if t.id in ("0d3d703e", "25ff71a9", "6150a2bd", "3c9b0459")]
    write_kaggle_files(chosen, tmp_path / "mem_challenges.json")
    cfg = load_config("tiny-cpu", [
        f"data.held_out_tasks={tmp_path / 'mem_challenges.json'}", "data.train_tasks=", "data.views=1",
        "data.translate=false", "data.buckets=[4]", "model.hidden=64", "model.heads=2", "model.puzzle_dim=64",
        "model.n_latent=1", "model.n_recursion=1", "model.n_supervision=2", "batch_size=16", "max_steps=300",
        "warmup_steps=10", "lr=3e-3", "lr_min_ratio=0.0", "ema_decay=0", "halt_exploration=0.5"])
    data = training_data(cfg)
    trainer = Trainer(cfg, tmp_path / "run", data, accelerator, quiet=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see ONE_THREAD
    try:
        trainer.fit(Schedule(cfg.optim, cfg.optim.max_steps))
    finally:
        torch.set_num_threads(threads)
    model = trainer.unwrapped.eval()
    solved = []
    for t, task in enumerate(data.tasks):
        for inp, out in task.train:
            side = canvas_side(max(*inp.shape, *out.shape), tuple(cfg.data.buckets))
            pred = model.predict(torch.from_numpy(encode(inp, side)[None]).long(),
                               torch.tensor([data.puzzles.row(t, 0)]))[0]  # all N_sup steps, identity view
            guess = decode(pred[0].numpy())
            solved.append(guess.shape == out.shape and bool((guess == out).all()))
    assert len(solved) == 14 and all(solved), solved


# ---- resume ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def uninterrupted(small_files, tmp_path_factory):
    """A 20-step run with checkpoints every 5 steps: (run dir, overrides)."""
    run = tmp_path_factory.mktemp("resume") / "full"
    overrides = [*tiny_overrides(small_files[1]), "save_every=5"]
    train(run, *overrides, "max_steps=20")
    return run, overrides


@pytest.mark.slow
def test_stop_at_max_steps_then_raise_it_resumes_exactly(uninterrupted, tmp_path):
    full, overrides = uninterrupted
    run = tmp_path / "staged"
    train(run, *overrides, "max_steps=10")
    assert (run / "latest").read_text().strip() == "checkpoints/step-0000010"
    ckpt = run / "checkpoints" / "step-0000010"
    for name in ("model.safetensors", "ema.safetensors", "config.json", "puzzles.json", "trainer_state.json",
                 "optimizer.pt", "carry-rank0.pt"):
        assert (ckpt / name).is_file(), name
    assert json.loads((run / "config.json").read_text())["optim"]["max_steps"] == 10
    result = train(run, *overrides, "max_steps=20")
    assert "resuming from" in result.stderr and "at step 10" in result.stderr
    steps = [m["step"] for m in loss_lines(run)]
    assert steps == list(range(1, 21))
    assert loss_lines(run) == loss_lines(full)
    assert_same_weights(final_weights(run), final_weights(full))
    assert_same_weights(load_file(run / "checkpoints/step-0000020/ema.safetensors"),
                        load_file(full / "checkpoints/step-0000020/ema.safetensors"))


@pytest.mark.slow
def test_compiled_network_saves_plain_keys_and_resumes(uninterrupted, tmp_path):
    full, overrides = uninterrupted
    run = tmp_path / "compiled"
    train(run, *overrides, "run.compile=true", "max_steps=10")
    saved = load_file(run / "checkpoints/step-0000010/model.safetensors")
    assert saved.keys() == final_weights(full).keys()  # no `_orig_mod.` prefixes
    result = train(run, *overrides, "run.compile=true", "max_steps=20")
    assert "at step 10" in result.stderr
    compiled, eager = loss_lines(run), loss_lines(full)
    assert [m["step"] for m in compiled] == list(range(1, 21))
    for a, b in zip(compiled, eager):  # fused kernels round differently, the training is the same
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-3, abs=1e-4), a["step"]
    assert_same_weights(final_weights(run), final_weights(full), atol=1e-3)


@pytest.mark.slow
def test_killed_after_a_checkpoint_resumes_exactly(uninterrupted, tmp_path):
    """The state a kill after step 10's save leaves: later checkpoints gone, `latest` at step 10, metrics
    logged past step 10, and a half-written temporary folder. Resuming redoes steps 11-20 identically."""
    full, overrides = uninterrupted
    run = tmp_path / "killed"
    shutil.copytree(full, run)
    for ckpt in ("step-0000015", "step-0000020"):
        shutil.rmtree(run / "checkpoints" / ckpt)
    (run / "latest").write_text("checkpoints/step-0000010")
    stale = run / "checkpoints" / ".tmp-step-0000015"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half a file")
    train(run, *overrides, "max_steps=20")
    assert loss_lines(run) == loss_lines(full)  # steps 11-20 logged once, and equal
    assert_same_weights(final_weights(run), final_weights(full))


def test_resume_with_another_model_config_exits_2(tiny_checkpoint, small_files, tmp_path, cli_error):
    run = shutil.copytree(tiny_checkpoint, tmp_path / "run")
    cli_error(["train", "--config", "tiny-cpu", "--out", run, f"data.held_out_tasks={small_files[1]}", *TINY_RUN,
               "model.hidden=64"], "different model settings", str(run))


# ---- kill -9 during a save ---------------------------------------------------------------------------------

SAVER = """
import os, sys, time
from arc_trm.config import OptimConfig, load_config
from arc_trm.checkpoint import INFERENCE_FILES, latest_checkpoint
from arc_trm.data import training_data
from arc_trm.train import Trainer, make_accelerator
cfg = load_config("tiny-cpu", sys.argv[3:])
trainer = Trainer(cfg, sys.argv[1], training_data(cfg), make_accelerator("no"), quiet=True)
ckpt = latest_checkpoint(sys.argv[1])
if ckpt is not None:
    trainer.resume(ckpt)
trainer.train_step()
trainer.save()
pause_at, fsyncs, fsync = int(sys.argv[2]), [0], os.fsync


def pausing_fsync(fd):  # a save fsyncs each file it wrote, then `latest`: stop at the chosen one (0: never)
    fsync(fd)
    fsyncs[0] += 1
    if fsyncs[0] == pause_at:
        print("paused", flush=True)
        time.sleep(600)


os.fsync = pausing_fsync
print("ready", flush=True)
while True:  # checkpoints of a few tens of MB, back to back
    trainer.train_step()
    trainer.save()
"""


def _next_line(child: subprocess.Popen, timeout: float = 120) -> str:
    """The child's next line of stdout, or a failure (with its stderr) after `timeout` seconds."""
    lines = queue.Queue()
    threading.Thread(target=lambda: lines.put(child.stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout).strip()
    except queue.Empty:
        child.kill()
        pytest.fail(f"no line from the child in {timeout} s: {child.stderr.read()}")


def _save_unfinished(run: Path) -> bool:
    """Whether a save was under way: a temporary folder, or a step folder newer than `latest`."""
    newest = max(p.name for p in (run / "checkpoints").glob("step-*"))
    return bool(list((run / "checkpoints").glob(".tmp-step-*"))) or newest != latest_checkpoint(run).name


@pytest.mark.slow
def test_kill_9_during_saves_leaves_a_loadable_checkpoint(small_files, tmp_path, accelerator):
    """Three processes that resume the run, save once, then train and save back to back, each killed by
    SIGKILL inside a save: two paused at a randomly chosen file of a save (after writing it, before the
    rename or before `latest` moves), one at a random moment. Each time the last complete checkpoint loads
    whole, and the next process resumes from it."""
    run = tmp_path / "run"
    # the MLP token mixer makes the weights (and EMA and AdamW state) big enough that saves take a while
    overrides = [*tiny_overrides(small_files[1]), "model.mixer=mlp", "keep_checkpoints=2"]
    cfg = load_config("tiny-cpu", overrides)
    probe = Trainer(cfg, tmp_path / "probe", training_data(cfg), accelerator, quiet=True)
    rng = np.random.default_rng(0)
    steps_seen = []
    # the fsyncs of one save: every file of the checkpoint folder, then the new `latest`
    per_save = len(INFERENCE_FILES) + 2 + 1  # + optimizer.pt and carry-rank0.pt
    for pause_at in (int(rng.integers(1, per_save + 1)), int(rng.integers(1, per_save + 1)), 0):
        child = subprocess.Popen([sys.executable, "-c", SAVER, str(run), str(pause_at), *overrides],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=ONE_THREAD)
        assert _next_line(child) == "ready", child.stderr.read()  # its first save is complete
        if pause_at:
            assert _next_line(child) == "paused", child.stderr.read()
        else:  # a random moment of a save: wait for the next one to begin
            deadline = time.monotonic() + 60
            while not list((run / "checkpoints").glob(".tmp-step-*")):
                assert time.monotonic() < deadline and child.poll() is None, child.stderr.read()
                time.sleep(0.005)
            time.sleep(0.05 * rng.random())
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        if pause_at:
            assert _save_unfinished(run), f"the kill at fsync {pause_at} did not land inside a save"
        ckpt = latest_checkpoint(run)
        assert ckpt is not None and ckpt.name.startswith("step-")
        state = json.loads((ckpt / "trainer_state.json").read_text())
        steps_seen.append(state["step"])
        probe.resume(ckpt)  # every file of it loads
        assert probe.step == state["step"]
        assert_same_weights(probe.unwrapped.state_dict(), load_file(ckpt / "model.safetensors"))
    # each restart resumed from the last complete checkpoint and saved at least once more
    assert steps_seen == sorted(steps_seen) and steps_seen[0] >= 1 and len(set(steps_seen)) == 3, steps_seen


# ---- processes ---------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_two_processes_equal_one_with_the_same_global_batch(small_files, tmp_path):
    overrides = [*tiny_overrides(small_files[1]), "max_steps=6", "save_every=0"]
    train(tmp_path / "one", *overrides, script=[sys.executable, "scripts/train.py"])
    train(tmp_path / "two", *overrides,
          script=[TORCHRUN, "--standalone", "--nproc_per_node", "2", "scripts/train.py"])
    one, two = loss_lines(tmp_path / "one"), loss_lines(tmp_path / "two")
    assert [m["step"] for m in two] == list(range(1, 7))
    for a, b in zip(one, two):
        assert a.keys() == b.keys()
        for k in a:
            assert a[k] == pytest.approx(b[k], rel=1e-5, abs=1e-6), (a["step"], k)
    w1, w2 = final_weights(tmp_path / "one"), final_weights(tmp_path / "two")
    assert w1["puzzles.weight"].abs().sum() > 0  # the rows were trained, and equally so
    assert_same_weights(w1, w2, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
def test_a_time_budget_ends_training_with_the_schedule_fitted_to_it(small_files, tmp_path, processes):
    overrides = [*tiny_overrides(small_files[1]), "max_steps=1000000", "lr_min_ratio=0.1", "save_every=0",
                 "--time-budget", "8"]
    script = [sys.executable, "scripts/train.py"]
    if processes == 2:  # every process must re-plan and stop at the same step, or a collective hangs
        script = [TORCHRUN, "--standalone", "--nproc_per_node", "2", "scripts/train.py"]
    train(tmp_path / "run", *overrides, script=script)
    lines = loss_lines(tmp_path / "run")
    steps = [m["step"] for m in lines]
    assert steps == list(range(1, len(steps) + 1)) and 10 < len(steps) < 1000000
    lr = load_config("tiny-cpu").optim.lr
    assert lines[-1]["lr"] < 0.5 * lr  # the cosine was fitted to the budget: it ended near its floor
    assert (tmp_path / "run" / "latest").exists()


def test_a_time_budget_decides_the_length_unless_max_steps_is_given(small_files, tmp_path):
    """`train --time-budget S`: the config's max_steps (3 here, in a config file) does not cap the run; the
    same max_steps on the command line does."""
    short = json.loads((Path(arc_trm.__file__).parent / "configs" / "tiny-cpu.json").read_text())
    short["optim"]["max_steps"] = 3
    config = tmp_path / "short.json"
    config.write_text(json.dumps(short))
    overrides = [o for o in tiny_overrides(small_files[1]) if not o.startswith("max_steps")]
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "budget"), "--time-budget", "4",
                 "save_every=0", *overrides]) == 0
    assert len(loss_lines(tmp_path / "budget")) > 3
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "steps"), "--time-budget", "4",
                 "save_every=0", *overrides, "max_steps=3"]) == 0
    assert len(loss_lines(tmp_path / "steps")) == 3


# ---- config errors -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, fragments", [
    (["bogus=1"], ["unknown config key 'bogus'"]),
    (["model.hidden=abc"], ["model.hidden must be an integer", "'abc'"]),
    (['buckets=["a"]'], ["data.buckets[0] must be an integer", "'a'"]),
])
def test_bad_override_exits_2(cli_error, overrides, fragments):
    cli_error(["train", "--out", "/nonexistent/never-written", *overrides], *fragments)


def test_unknown_config_and_unknown_section_exit_2(cli_error, tmp_path):
    cli_error(["train", "--config", "no-such-config"], "unknown config 'no-such-config'", "tiny-cpu")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": {"hidden": 64}, "optimiser": {"lr": 1}}))
    cli_error(["train", "--config", str(bad)], str(bad), "unknown config section 'optimiser'")


@pytest.mark.parametrize("overrides, fragment", [
    (["model.nope=1"], "unknown config key model.nope"),
    (["nosection.hidden=1"], "unknown config section 'nosection'"),
    (["max_steps=1.5"], "optim.max_steps must be an integer"),
    (["translate=maybe"], "data.translate must be true or false"),
    (["buckets=7"], "data.buckets must be a list"),
    (['buckets=["a"]'], "data.buckets[0] must be an integer, got 'a'"),
    (["buckets=[7, true]"], "data.buckets[1] must be an integer, got True"),
    (['betas=[0.9, "x"]'], "optim.betas[1] must be a number"),
    (["data.train_tasks=[3]"], "data.train_tasks[0] must be a string"),
    (["log_with=[1]"], "run.log_with[0] must be a string"),
    (["model.hidden=30"], "must be divisible by model.heads"),
    (["just-a-word"], "expected key=value"),
])
def test_bad_overrides_name_the_field(overrides, fragment):
    with pytest.raises(UserError, match=re.escape(fragment)):
        load_config("tiny-cpu", overrides)


def test_list_elements_of_the_right_type_are_kept():
    cfg = load_config("tiny-cpu", ["buckets=[7, 30]", "betas=[1, 0.9]", 'log_with=["tensorboard"]'])
    assert cfg.data.buckets == [7, 30] and cfg.optim.betas == [1.0, 0.9] and cfg.run.log_with == ["tensorboard"]
    assert isinstance(cfg.optim.betas[0], float)  # an integer where a number goes, as for a plain float field
