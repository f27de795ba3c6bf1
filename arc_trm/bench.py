"""Throughput and memory figures (`arc-trm bench`): fixed 30x30 canvases against canvas buckets.

Training: one `Trainer.train_step` (one supervision step of `batch` examples, forward + backward +
optimizer) on the arc1-train mix (the config's data replaced by every arc1-train task under a few
views), once with `data.buckets=[30]` (the reference layout) and once with the config's buckets.
Training visits buckets at random in proportion to their example counts; the bench instead runs steps of
every bucket in turn (at least one each per window) and weighs each bucket's time per example by its
share of the examples, so a window measures the whole mix without the noise of a random draw of a few
large-canvas steps; figures are examples/s per window, median over windows.

Inference: `Predictor.vote_items` (encode, `TRM.predict`, decode, vote) on the test inputs of the
arc2-eval mix under a few views, with a freshly built model whose puzzle rows cover them. A window
runs one full batch of every canvas bucket; its views/s weighs each bucket's time per view by that
bucket's share of all (test input, view) items, so it is the throughput over the whole mix. `solve`
runs N_sup uniform supervision steps (no early halting), so the bench times `infer_steps` of them and
scales the time to N_sup (the cost of a step does not depend on which step it is).

Fairness on a shared machine: warm-up steps are excluded, and fixed and bucketed windows alternate,
so load from other processes hits both alike; the load averages are reported with the figures.

Peak memory, over the warm-up steps (one per bucket; per example, the buckets weighted by their shares):
on CUDA, torch.cuda.max_memory_allocated during a step above what was allocated at its start. On CPU,
the steps run under torch.profiler(profile_memory=True) and the peak is the largest running sum of the
bytes every op allocated and freed (time order), i.e. the peak of tensor memory the step added; process
RSS is not used (the allocator keeps freed pages, so it would mix the two layouts).
"""

import copy
import os
import statistics
import tempfile
import time

import torch

from arc_trm.config import load_config
from arc_trm.data import PuzzleSet, training_data
from arc_trm.errors import UserError
from arc_trm.infer import Ballot, Predictor, plan_rounds
from arc_trm.model import TRM
from arc_trm.tasks import load_tasks
from arc_trm.train import Trainer, make_accelerator

FIXED = [30]  # the reference layout: every grid on a 30x30 canvas


def step_peak_bytes(fn, device: torch.device) -> tuple[object, int]:
    """Run fn(); return its result and the peak tensor memory it added (see the module docstring)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        out = fn()
        torch.cuda.synchronize(device)
        return out, torch.cuda.max_memory_allocated(device) - start
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = fn()
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return out, peak


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_window(trainer: Trainer, share: dict[int, float], device, seconds: float) -> float:
    """Examples/s over the mix: steps of every bucket in turn (at least one each, `seconds` in all),
    each bucket's mean time per example weighted by its share of the training examples."""
    times: dict[int, list[float]] = {side: [] for side in share}
    start, rounds = time.perf_counter(), 0
    while rounds == 0 or time.perf_counter() - start < seconds:
        rounds += 1
        for side in times:
            _sync(device)
            t = time.perf_counter()
            trainer.train_step(side)
            _sync(device)
            times[side].append(time.perf_counter() - t)
    B = trainer.cfg.optim.batch_size
    return 1.0 / sum(w * statistics.mean(times[side]) / B for side, w in share.items())


def _train_setup(cfg, buckets: list[int], views: int, accelerator, out_dir: str) -> Trainer:
    cfg = copy.deepcopy(cfg)
    cfg.data.train_tasks, cfg.data.held_out_tasks, cfg.data.views, cfg.data.buckets = ["arc1-train"], [], views, buckets
    return Trainer(cfg, out_dir, training_data(cfg), accelerator, quiet=True)


class InferMix:
    """The arc2-eval (test input, view) items of one canvas layout, with one full batch per bucket."""

    def __init__(self, predictor: Predictor, tasks, items, views_of, batch: int):
        self.predictor, self.tasks, self.views_of = predictor, tasks, views_of
        groups = {side: [it for it, _ in group]
                  for side, group in predictor.by_canvas(tasks, items, views_of).items()}
        self.share = {side: len(g) / len(items) for side, g in sorted(groups.items())}
        self.batches = {side: g[:batch] for side, g in sorted(groups.items())}

    def run_batch(self, side: int) -> None:
        votes = {t.id: [Ballot() for _ in t.test_inputs] for t in self.tasks}
        self.predictor.vote_items(self.tasks, self.batches[side], self.views_of, votes, None)

    def window(self, device, scale: float) -> float:
        """views/s over the mix: one batch per bucket, time per view weighted by the bucket's share."""
        seconds_per_view = 0.0
        for side, batch in self.batches.items():
            _sync(device)
            start = time.perf_counter()
            self.run_batch(side)
            _sync(device)
            seconds_per_view += self.share[side] * (time.perf_counter() - start) * scale / len(batch)
        return 1.0 / seconds_per_view


def bench(config: str = "tiny-cpu", device: str | None = None, batch_size: int | None = None,
          seconds: float = 60.0, windows: int = 3, warmup: int = 1, views: int = 8,
          infer_steps: int = 2, log=lambda line: None) -> dict:
    """Measure training examples/s and inference views/s, fixed 30x30 vs bucketed; see the module doc."""
    cfg = load_config(config)
    if batch_size is not None:
        if batch_size < 1:
            raise UserError(f"--batch-size must be at least 1, got {batch_size}")
        cfg.optim.batch_size = batch_size
    if windows < 1 or warmup < 0 or seconds <= 0:
        raise UserError("--seconds must be > 0, windows >= 1 and warm-up >= 0")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available")
    acc = make_accelerator(cfg.run.mixed_precision, device=device)
    dev = acc.device
    B = cfg.optim.batch_size
    layouts = {"fixed": FIXED, "bucketed": sorted(cfg.data.buckets)}
    result = {"config": cfg.name, "device": str(dev), "batch_size": B, "mixed_precision": acc.mixed_precision,
              "threads": torch.get_num_threads(), "load_avg_start": list(os.getloadavg())}
    window_s = seconds / (4 * windows)  # the timed budget, split over 2 layouts x (train, infer) x windows

    # ---- training -----------------------------------------------------------------------------------
    with tempfile.TemporaryDirectory() as tmp:
        log(f"training: arc1-train x {views} views, batch {B}, config {cfg.name} on {dev}")
        trainers = {name: _train_setup(cfg, b, views, acc, os.path.join(tmp, name)) for name, b in layouts.items()}
        shares = {name: dict(zip(t.buckets.sides, t.buckets.examples / t.buckets.examples.sum()))
                  for name, t in trainers.items()}
        for name, trainer in trainers.items():  # warm-up: `warmup` steps of every bucket, with their memory
            peaks: dict[int, list[int]] = {side: [] for side in shares[name]}
            for _ in range(warmup):
                for side in peaks:
                    peaks[side].append(step_peak_bytes(lambda side=side, t=trainer: t.train_step(side), dev)[1])
            if warmup:
                result[f"train_{name}_peak_mb"] = max(max(p) for p in peaks.values()) / 2 ** 20
                result[f"train_{name}_mean_step_peak_mb_per_example"] = sum(
                    shares[name][side] * statistics.mean(p) for side, p in peaks.items()) / B / 2 ** 20
        rates: dict[str, list[float]] = {name: [] for name in trainers}
        for _ in range(windows):
            for name, trainer in trainers.items():  # alternate, so load from elsewhere hits both alike
                rates[name].append(train_window(trainer, shares[name], dev, window_s))
        for name in trainers:
            result[f"train_{name}_examples_per_s"] = statistics.median(rates[name])
            result[f"train_{name}_windows"] = rates[name]
        result["train_bucketed_share"] = {str(side): round(float(w), 4) for side, w in shares["bucketed"].items()}
        del trainers

    # ---- inference ----------------------------------------------------------------------------------
    tasks = load_tasks("arc2-eval")
    puzzles = PuzzleSet.build(tasks, views, cfg.run.seed)
    n_sup = cfg.model.n_supervision
    timed = min(infer_steps, n_sup) if infer_steps > 0 else n_sup
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.n_supervision = timed
    torch.manual_seed(cfg.run.seed)
    model = TRM(model_cfg, puzzles.num_rows)
    rounds, views_of = plan_rounds(tasks, puzzles, views, cfg.run.seed)
    items = [it for r in rounds for it in r]
    log(f"inference: arc2-eval, {len(items)} (test input, view) items, batch {B}, "
        f"{timed} of {n_sup} supervision steps timed")
    mixes = {}
    for name, b in layouts.items():
        layout_cfg = copy.deepcopy(cfg)
        layout_cfg.data.buckets = b
        mixes[name] = InferMix(Predictor(model, layout_cfg, puzzles, acc, batch_size=B),
                               tasks, items, views_of, B)
    for name, mix in mixes.items():
        result[f"infer_{name}_share"] = {str(s): round(v, 4) for s, v in mix.share.items()}
        peaks = {}
        for side in mix.batches:  # warm-up, one batch of each canvas, with its memory
            _, peaks[side] = step_peak_bytes(lambda side=side, mix=mix: mix.run_batch(side), dev)
        result[f"infer_{name}_peak_mb"] = max(peaks.values()) / 2 ** 20
    infer_rates: dict[str, list[float]] = {name: [] for name in mixes}
    for _ in range(windows):
        for name, mix in mixes.items():  # alternate, as for training
            infer_rates[name].append(mix.window(dev, n_sup / timed))
    for name in mixes:
        result[f"infer_{name}_views_per_s"] = statistics.median(infer_rates[name])
        result[f"infer_{name}_windows"] = infer_rates[name]

    result["train_ratio"] = result["train_bucketed_examples_per_s"] / result["train_fixed_examples_per_s"]
    result["infer_ratio"] = result["infer_bucketed_views_per_s"] / result["infer_fixed_views_per_s"]
    result["infer_supervision_steps_timed"] = timed
    result["load_avg_end"] = list(os.getloadavg())
    return result


def format_table(r: dict) -> str:
    """The figures as a small text table."""
    lines = [f"arc-trm bench: config {r['config']}, {r['device']}, batch {r['batch_size']}, "
             f"precision {r['mixed_precision']}, {r['threads']} threads",
             f"{'':<28}{'fixed 30x30':>14}{'bucketed':>14}{'ratio':>8}",
             f"{'train examples/s (arc1)':<28}{r['train_fixed_examples_per_s']:>14.2f}"
             f"{r['train_bucketed_examples_per_s']:>14.2f}{r['train_ratio']:>8.2f}",
             f"{'infer views/s (arc2-eval)':<28}{r['infer_fixed_views_per_s']:>14.2f}"
             f"{r['infer_bucketed_views_per_s']:>14.2f}{r['infer_ratio']:>8.2f}"]
    if "train_fixed_peak_mb" in r:
        lines.append(f"{'train peak MB / example':<28}{r['train_fixed_mean_step_peak_mb_per_example']:>14.2f}"
                     f"{r['train_bucketed_mean_step_peak_mb_per_example']:>14.2f}")
        lines.append(f"{'train peak MB (step max)':<28}{r['train_fixed_peak_mb']:>14.1f}"
                     f"{r['train_bucketed_peak_mb']:>14.1f}")
    lines.append(f"{'infer peak MB (batch max)':<28}{r['infer_fixed_peak_mb']:>14.1f}"
                 f"{r['infer_bucketed_peak_mb']:>14.1f}")
    lines.append("load average (1, 5, 15 min): start " + " ".join(f"{x:.2f}" for x in r["load_avg_start"])
                 + ", end " + " ".join(f"{x:.2f}" for x in r["load_avg_end"]))
    return "\n".join(lines)
