"""Training on Accelerate: deep supervision with a rolling batch per canvas bucket.

Each optimizer step is ONE supervision step of a batch drawn from one canvas bucket. Every bucket keeps
its own rolling batch (data.RollingBatch): an example stays in its slot, its (y, z) carried (detached)
from step to step, until it halts (halt logit > 0, after a random minimum number of steps for
exploration) or reaches N_sup steps; then the slot takes the bucket's next example. The reference keeps
one rolling batch over all grid sizes, so a size gets compute in proportion to its examples x their
steps until halting; to spend compute the same way, a bucket is drawn in proportion to its examples x
the running mean of its steps to halt (`data.bucket_sampling=compute`; `examples` draws by examples
only).

Processes (accelerate launch / torchrun) split every global batch evenly. All bookkeeping that decides
which example enters which slot (streams, halting, exploration, bucket choice) is done identically on
every process from gathered halt logits, so k processes follow exactly the run of one process with the
same global batch; the dense weights are synchronised by DDP and the puzzle rows by
`model.sparse_sign_sgd`, which gathers the rows every process touched.

A run directory holds config.json, metrics.jsonl and checkpoints (see checkpoint.py). Starting again in
the same directory resumes from `latest` exactly: same step, same next batch, same carry.
"""

import contextlib
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list
from tqdm.auto import tqdm

from arc_trm.atomic import atomic_write_text
from arc_trm.checkpoint import load_for_resume, save_checkpoint
from arc_trm.config import Config, OptimConfig
from arc_trm.data import ExampleStream, ExampleTable, RollingBatch, TrainingData
from arc_trm.errors import UserError
from arc_trm.loss import step_loss
from arc_trm.model import TRM, sparse_sign_sgd


def make_accelerator(precision: str = "auto", project_dir: str | Path | None = None, log_with: list[str] = (),
                     device: str | None = None) -> Accelerator:
    """The one Accelerator of a command. `precision`: "auto" (bf16 where a CUDA device supports it, else
    fp32), "bf16" (on a CPU: CPU autocast) or "no"; `device` "cpu" or "cuda" (default: cuda if there is
    one). Accelerate's state is one per process, so a command makes this once, at its entry point, and
    passes it down."""
    cpu = device == "cpu" if device else not torch.cuda.is_available()
    if precision == "auto":
        precision = "bf16" if not cpu and torch.cuda.is_bf16_supported() else "no"
    # cpu=True without CUDA: otherwise torchrun on a CPU gives k unconnected processes
    return Accelerator(cpu=cpu, mixed_precision=precision, log_with=list(log_with) or None,
                       project_dir=str(project_dir) if project_dir else None)


class EMA:
    """Exponential moving average of the dense weights (the puzzle table is shared, not averaged)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = {n: p.detach().clone().float() for n, p in model.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))  # short runs are not dominated by the init
        for n, p in model.named_parameters():
            if n in self.shadow:
                self.shadow[n].lerp_(p.detach().float(), 1 - decay)

    @contextlib.contextmanager
    def applied(self, model: torch.nn.Module):
        """Temporarily load the averaged weights into `model`."""
        params = dict(model.named_parameters())
        saved = {n: params[n].detach().clone() for n in self.shadow}
        with torch.no_grad():
            for n, w in self.shadow.items():
                params[n].copy_(w)
        try:
            yield model
        finally:
            with torch.no_grad():
                for n, w in saved.items():
                    params[n].copy_(w)


def learning_rate_factor(step: int, warmup: int, total: int | None, min_ratio: float) -> float:
    """Linear warm-up to 1, then cosine decay to `min_ratio` at `total` (None: not known yet, stay at 1)."""
    if step < warmup:
        return (step + 1) / warmup
    if total is None:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class Schedule:
    """When training stops and the learning-rate factor of each step: warm-up, then cosine to `total`.

    With a time budget the run stops once the budget is spent, and `total` is fitted to it: estimated
    from the measured speed after a tenth of the budget (20 s at most) and re-estimated at a quarter,
    half and three quarters of it, never beyond `max_steps` (None: the budget alone decides).
    """

    def __init__(self, optim: OptimConfig, max_steps: int | None, time_budget: float | None = None,
                 start_step: int = 0):
        self.warmup, self.min_ratio = optim.warmup_steps, optim.lr_min_ratio
        self.max_steps, self.budget, self.start_step = max_steps, time_budget, start_step
        self.total = max_steps
        self.replans = [] if time_budget is None else [min(20.0, time_budget / 10)] + [
            f * time_budget for f in (0.25, 0.5, 0.75)]
        assert max_steps is not None or time_budget is not None, "a schedule needs max_steps or a time budget"

    def factor(self, step: int) -> float:
        return learning_rate_factor(step, self.warmup, self.total, self.min_ratio)

    def finished(self, step: int, elapsed: float) -> bool:
        """Whether to stop before `step` (re-planning `total` when a re-planning point has passed)."""
        if self.budget is not None:
            if elapsed > self.budget:
                return True
            if self.replans and elapsed > self.replans[0] and step > self.start_step:
                self.replans = [t for t in self.replans if t > elapsed]
                fit = step + int((step - self.start_step) / elapsed * (self.budget - elapsed))
                self.total = max(fit if self.max_steps is None else min(self.max_steps, fit), step + 1)
        return self.total is not None and step >= self.total


class RunLog:
    """What a run reports: metrics.jsonl (main process), Accelerate's trackers, and the progress bar."""

    def __init__(self, out_dir: Path, cfg: Config, accelerator: Accelerator, step: int, quiet: bool):
        self.path, self.acc, self.trackers = out_dir / "metrics.jsonl", accelerator, bool(cfg.run.log_with)
        if accelerator.is_main_process:
            out_dir.mkdir(parents=True, exist_ok=True)
            truncate_metrics(self.path, step)
        if self.trackers:
            accelerator.init_trackers(out_dir.name, config=flatten(cfg.to_dict()))
        self.bar = tqdm(total=None, initial=step, desc="train", unit="step", dynamic_ncols=True,
                        disable=not accelerator.is_main_process or quiet, file=sys.stderr)

    def write(self, metrics: dict) -> None:
        if self.trackers:
            self.acc.log({k: v for k, v in metrics.items() if k != "step"}, step=metrics["step"])
        if self.acc.is_main_process:
            with open(self.path, "a") as f:
                f.write(json.dumps(metrics) + "\n")

    def close(self) -> None:
        self.bar.close()
        if self.trackers:
            self.acc.end_training()


class BucketSampler:
    """Which canvas bucket the next step trains: one drawn in proportion to its examples, times the running
    mean of their steps to halt (`by_compute`), which is how one rolling batch over every size would spend
    compute (see the module docstring)."""

    def __init__(self, examples: dict[int, int], n_supervision: int, by_compute: bool):
        self.sides, self.by_compute = list(examples), by_compute
        self.examples = np.array(list(examples.values()), dtype=np.float64)
        self.mean_steps = np.full(len(self.sides), float(n_supervision))  # before any halting: all N_sup steps

    @property
    def weights(self) -> np.ndarray:
        w = self.examples * (self.mean_steps if self.by_compute else 1.0)
        return w / w.sum()

    def draw(self, rng: np.random.Generator) -> int:
        return self.sides[int(rng.choice(len(self.sides), p=self.weights))]

    def record(self, side: int, steps: np.ndarray) -> None:
        """The steps taken by the examples that just left `side`'s batch, into its running mean (over about
        the last 64 departures)."""
        k = self.sides.index(side)
        self.mean_steps[k] += (1 - (1 - 1 / 64) ** len(steps)) * (steps.mean() - self.mean_steps[k])


class Trainer:
    """One training (or adaptation) run: model, optimizer, EMA, rolling batches, and checkpoints."""

    def __init__(self, cfg: Config, out_dir: str | Path, data: TrainingData, accelerator: Accelerator,
                 model: TRM | None = None, train_weights: bool = True, quiet: bool = False):
        self.cfg, self.out_dir, self.data, self.quiet = cfg, Path(out_dir), data, quiet
        self.train_weights, self.accelerator = train_weights, accelerator
        acc, B = accelerator, cfg.optim.batch_size
        if B % acc.num_processes:
            raise UserError(f"config: optim.batch_size {B} must divide by the {acc.num_processes} processes")
        torch.manual_seed(cfg.run.seed)
        model = model or TRM(cfg.model, data.puzzles.num_rows)
        assert model.puzzles.weight.shape[0] == data.puzzles.num_rows, \
            f"model has {model.puzzles.weight.shape[0]} puzzle rows, the data needs {data.puzzles.num_rows}"
        self.table = ExampleTable(data.puzzles, data.pairs, cfg.data.buckets, cfg.data.placement, cfg.run.seed)
        if len(self.table) == 0:
            raise UserError("config: no training examples")
        for p in model.parameters():  # the puzzle table is updated by sparse_sign_sgd, never by autograd
            if p is not model.puzzles.weight:
                p.requires_grad_(train_weights)
        if cfg.run.compile:
            model.net.compile()  # in place: state_dict keys stay free of `_orig_mod.`
        self.optimizer = None
        if train_weights:
            self.optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.optim.lr,
                                               betas=tuple(cfg.optim.betas), weight_decay=cfg.optim.weight_decay)
            self.model, self.optimizer = acc.prepare(model, self.optimizer)
        else:  # rows only: nothing dense to synchronise, so no DDP wrapper
            self.model = model.to(acc.device)
        self.ema = EMA(self.unwrapped, cfg.optim.ema_decay) if cfg.optim.ema_decay and train_weights else None
        self.rng = np.random.default_rng([cfg.run.seed, 1])
        per = B // acc.num_processes
        local = slice(acc.process_index * per, (acc.process_index + 1) * per)
        self.batches = {side: RollingBatch(side, B, local, ExampleStream(idx, cfg.run.seed, side))
                        for side, idx in self.table.by_bucket.items()}
        self.buckets = BucketSampler({side: len(idx) for side, idx in self.table.by_bucket.items()},
                                     cfg.model.n_supervision, cfg.data.bucket_sampling == "compute")
        self.step = 0

    @property
    def unwrapped(self) -> TRM:
        return self.accelerator.unwrap_model(self.model)

    def train_step(self, side: int | None = None, lr_factor: float = 1.0, with_metrics: bool = False) -> dict:
        """One supervision step of one bucket's rolling batch (`side`, or one the BucketSampler draws;
        `arc-trm bench` times each bucket in turn). Returns the step's metrics when asked."""
        cfg, acc = self.cfg, self.accelerator
        batch = self.batches[side or self.buckets.draw(self.rng)]
        batch.refill(self.table, self.unwrapped.initial_carry, self.rng, cfg.data.translate, acc.device)
        t = batch.tensors
        self.model.train()
        with acc.autocast():
            y, z, logits, halt_logits = self.model(t["inputs"], t["rows"], t["y"], t["z"])
            loss, per_example = step_loss(logits, t["labels"], halt_logits, cfg.optim.loss, cfg.optim.halt_loss_weight)
        acc.backward(loss)
        if self.optimizer is not None:
            if cfg.optim.grad_clip:
                acc.clip_grad_norm_(self.optimizer.param_groups[0]["params"], cfg.optim.grad_clip)
            for group in self.optimizer.param_groups:
                group["lr"] = cfg.optim.lr * lr_factor
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        sparse_sign_sgd(self.unwrapped.puzzles, cfg.optim.puzzle_lr * lr_factor, cfg.optim.puzzle_weight_decay,
                        acc.gather)
        if self.ema is not None:
            self.ema.update(self.unwrapped, self.step)

        # One gather of every slot's halt logit and results; .cpu() waits for the step to finish on the
        # device (the one host sync of a step). Halting is then decided identically on every process.
        columns = ["halt_logit", *per_example]
        local = torch.stack([halt_logits.detach().float(), *(v.float() for v in per_example.values())], dim=1)
        stats = dict(zip(columns, acc.gather(local).cpu().numpy().T))
        left = batch.advance(y, z, stats["halt_logit"], cfg.model.n_supervision, cfg.optim.halt_exploration, self.rng)
        if left.any():
            self.buckets.record(batch.side, batch.steps[left])
        self.step += 1
        if not with_metrics:
            return {}
        return {"step": self.step, "lr": cfg.optim.lr * lr_factor, "canvas": batch.side,
                **step_metrics(stats, left, batch.steps, cfg.optim.halt_loss_weight)}

    def fit(self, schedule: Schedule, evaluate: Callable[[TRM], float] | None = None) -> dict:
        """Train until the schedule says stop; `evaluate(model) -> exact accuracy` on held-out inputs runs
        every run.eval_every steps and at the end. Ctrl-C saves a checkpoint before stopping."""
        cfg, acc = self.cfg, self.accelerator
        log = RunLog(self.out_dir, cfg, acc, self.step, self.quiet)
        started, window_start, window_steps, last = time.monotonic(), time.monotonic(), 0, {}

        def held_out() -> float:  # with the EMA weights, when kept
            with self.ema.applied(self.unwrapped) if self.ema is not None else contextlib.nullcontext():
                return evaluate(self.unwrapped)

        try:
            while True:
                # every process acts on the main process's clock, so all of them re-plan and stop at one step
                elapsed = broadcast_object_list([time.monotonic() - started])[0] if schedule.budget is not None else 0.0
                if schedule.finished(self.step, elapsed):
                    break
                log.bar.total = schedule.total
                logging = (self.step + 1) % cfg.run.log_every == 0 or self.step + 1 == schedule.total
                m = self.train_step(lr_factor=schedule.factor(self.step), with_metrics=logging)
                window_steps += 1
                log.bar.update(1)
                if logging:
                    m["examples_per_s"] = window_steps * cfg.optim.batch_size / (time.monotonic() - window_start)
                    window_start, window_steps, last = time.monotonic(), 0, m
                    log.bar.set_postfix(loss=f"{m['loss']:.3f}", ex_s=f"{m['examples_per_s']:.0f}")
                    log.write(m)
                if evaluate and cfg.run.eval_every and self.step % cfg.run.eval_every == 0:
                    log.write({"step": self.step, "eval_exact_accuracy": held_out()})
                if cfg.run.save_every and self.step % cfg.run.save_every == 0:
                    self.save()
        except KeyboardInterrupt:
            log.close()
            self.save()
            raise
        final = {"step": self.step}
        if evaluate:
            final["eval_exact_accuracy"] = held_out()
            log.write(final)
        log.close()
        self.save()
        return {**last, **final}

    # ---- checkpoints (the format lives in checkpoint.py) ---------------------------------------------
    def save(self) -> Path:
        carry = {str(s): {k: v.cpu() for k, v in b.tensors.items()} for s, b in self.batches.items()}
        state = {"step": self.step, "num_processes": self.accelerator.num_processes,
                 "rng": self.rng.bit_generator.state, "carries": {str(s): b.state() for s, b in self.batches.items()},
                 "mean_steps": self.buckets.mean_steps.tolist(), "train_weights": self.train_weights}
        return save_checkpoint(self.out_dir, self.step, self.accelerator, model=self.unwrapped,
                               ema=self.ema.shadow if self.ema is not None else None, cfg=self.cfg,
                               puzzles=self.data.puzzles, state=state, optimizer=self.optimizer, carry=carry,
                               keep=self.cfg.run.keep_checkpoints)

    def resume(self, ckpt: Path) -> None:
        """Restore everything `save` wrote: weights, EMA, optimizer, step, RNG, streams and carries."""
        saved = load_for_resume(ckpt, self.accelerator)
        self.unwrapped.load_state_dict(saved["model"])
        if self.ema is not None and saved["ema"] is not None:
            self.ema.shadow = {k: v.to(self.accelerator.device) for k, v in saved["ema"].items()}
        if self.optimizer is not None and saved["optimizer"] is not None:
            self.optimizer.load_state_dict(saved["optimizer"])
        state = saved["state"]
        self.step = state["step"]
        self.rng.bit_generator.state = state["rng"]
        self.buckets.mean_steps = np.array(state.get("mean_steps", self.buckets.mean_steps))
        tensors = saved["carry"] or {}
        for side, batch in self.batches.items():
            batch.load_state(state["carries"][str(side)], tensors.get(str(side)) or None)


def step_metrics(stats: dict[str, np.ndarray], left: np.ndarray, steps: np.ndarray, halt_weight: float) -> dict:
    """A step's metrics from every slot's gathered results (`stats`, see loss.step_loss): losses and token
    accuracy over the batch; exact and halt accuracy and steps taken over the examples that `left` it."""
    metrics = {"loss": float((stats["output_loss"] + halt_weight * stats["halt_loss"]).mean()),
               "output_loss": float(stats["output_loss"].mean()),
               "token_accuracy": float(stats["token_accuracy"].mean())}
    if left.any():
        metrics.update(exact_accuracy=float(stats["exact"][left].mean()),
                       halt_accuracy=float(stats["halt_correct"][left].mean()), mean_steps=float(steps[left].mean()))
    return metrics


def truncate_metrics(path: Path, step: int) -> None:
    """Drop metrics logged after `step` (a resumed run logs those steps again)."""
    if not path.exists():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= step]
    atomic_write_text(path, "".join(ln + "\n" for ln in lines))


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return out
