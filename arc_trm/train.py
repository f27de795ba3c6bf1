"""Training on Accelerate: deep supervision with a rolling carry, per canvas bucket.

Each optimizer step is ONE supervision step of a batch of examples drawn from one canvas bucket. Every
bucket keeps its own rolling carry: an example stays in its slot, its (y, z) carried (detached) from
step to step, until it halts (halt logit > 0, after a random minimum number of steps for exploration)
or reaches N_sup steps; then the slot takes the bucket's next example, as the reference does. Buckets
are visited at random in proportion to their number of examples, so large grids are not starved.

Processes (accelerate launch / torchrun) split every global batch evenly. All bookkeeping that decides
which example enters which slot (streams, halting, exploration, bucket choice) is done identically on
every process from gathered halt logits, so k processes follow exactly the run of one process with
the same global batch; the dense weights are synchronised by DDP and the puzzle rows by
`sparse_sign_sgd`, which gathers the rows every process touched.

A run directory holds config.json (the resolved config), metrics.jsonl, checkpoints/step-N/ and a
`latest` pointer. Starting again in the same directory resumes from `latest` exactly: same step, same
next batch, same carry.
"""

import contextlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from arc_trm import checkpoint
from arc_trm.atomic import atomic_write_json, atomic_write_text
from arc_trm.augment import View
from arc_trm.config import Config, load_config
from arc_trm.data import ExampleStream, ExampleTable, PuzzleSet
from arc_trm.errors import UserError
from arc_trm.loss import step_loss
from arc_trm.model import TRM, sparse_sign_sgd
from arc_trm.tasks import Task, load_tasks


@dataclass
class TrainingData:
    """What a run trains on: every task's trainable pairs, its puzzles, and the held-out test inputs."""

    tasks: list[Task | None]  # aligned with puzzles.task_ids; None for a task this run does not load
    pairs: list[list[tuple[np.ndarray, np.ndarray]]]  # trainable pairs per task (may be empty)
    puzzles: PuzzleSet  # every puzzle of the model's table, saved with each checkpoint
    eval_items: list[tuple[int, int]]  # (task index, test index) scored at evaluation


def training_data(cfg: Config) -> TrainingData:
    """The reference's recipe: all pairs of the training tasks, plus the demonstrations (never the test
    outputs) of the evaluation tasks, whose test inputs are held out. A task in both sets counts as an
    evaluation task."""
    evals = load_tasks(cfg.data.eval_tasks) if cfg.data.eval_tasks else []
    eval_ids = {t.id for t in evals}
    trains = [t for t in load_tasks(cfg.data.train_tasks) if t.id not in eval_ids] if cfg.data.train_tasks else []
    if not trains and not evals:
        raise UserError("config: data.train_tasks and data.eval_tasks are both empty")
    tasks = trains + evals
    pairs = [t.train + list(zip(t.test_inputs, t.test_outputs or [])) for t in trains] + [t.train for t in evals]
    puzzles = PuzzleSet.build(tasks, cfg.data.views, cfg.run.seed, cfg.data.permute_background)
    eval_items = [(len(trains) + i, j) for i, t in enumerate(evals) if t.test_outputs
                  for j in range(len(t.test_inputs))]
    if cfg.data.max_eval_inputs:
        eval_items = eval_items[:cfg.data.max_eval_inputs]
    return TrainingData(tasks, pairs, puzzles, eval_items)


def mixed_precision(setting: str) -> str:
    if setting == "auto":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    return setting


def learning_rate_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up to 1, then cosine decay to `min_ratio` at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


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


class BucketCarry:
    """The rolling batch of one canvas bucket. Slot bookkeeping is global (identical on every process);
    canvases and the (y, z) carry are kept only for this process's slice of the slots."""

    def __init__(self, side: int, global_batch: int, local: slice, stream: ExampleStream):
        self.side, self.local, self.stream = side, local, stream
        self.example = np.full(global_batch, -1, dtype=np.int64)  # example index in each slot
        self.steps = np.zeros(global_batch, dtype=np.int64)  # supervision steps taken by each slot
        self.halted = np.ones(global_batch, dtype=bool)  # slot needs a new example
        self.placement = np.zeros((global_batch, 2))  # offset choice of each slot's example
        self.tensors: dict[str, torch.Tensor] = {}  # inputs, labels, rows, y, z of the local slots

    def refill(self, table: ExampleTable, model: TRM, rng: np.random.Generator, translate: bool, device) -> None:
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
        inputs, labels, rows = table.encode(self.example[mine], self.side, self.placement[mine])
        fresh = {"inputs": torch.from_numpy(inputs).long(), "labels": torch.from_numpy(labels).long().flatten(1),
                 "rows": torch.from_numpy(rows)}
        y, z = model.initial_carry(len(mine), self.side)
        fresh["y"], fresh["z"] = y.detach(), z.detach()
        if not self.tensors:  # first fill: every local slot is new
            self.tensors = {k: v.to(device) for k, v in fresh.items()}
            return
        at = torch.from_numpy(mine - lo).to(device)
        for k, v in fresh.items():
            self.tensors[k][at] = v.to(device, self.tensors[k].dtype)

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


class Trainer:
    """One training (or adaptation) run: model, optimizer, EMA, carries, logging and checkpoints."""

    def __init__(self, cfg: Config, out_dir: str | Path, data: TrainingData, model: TRM | None = None,
                 train_weights: bool = True, accelerator=None, quiet: bool = False):
        from accelerate import Accelerator

        self.cfg, self.out_dir, self.data, self.quiet = cfg, Path(out_dir), data, quiet
        self.train_weights = train_weights
        self.accelerator = accelerator or Accelerator(
            cpu=not torch.cuda.is_available(),  # without it, torchrun on CPU gives k unconnected processes
            mixed_precision=mixed_precision(cfg.run.mixed_precision),
            log_with=cfg.run.log_with or None, project_dir=str(self.out_dir))
        acc = self.accelerator
        if cfg.optim.batch_size % acc.num_processes:
            raise UserError(f"config: optim.batch_size {cfg.optim.batch_size} must divide by the "
                            f"{acc.num_processes} processes")
        torch.manual_seed(cfg.run.seed)
        if model is None:
            model = TRM(cfg.model, data.puzzles.num_rows)
        assert model.puzzles.weight.shape[0] == data.puzzles.num_rows, \
            f"model has {model.puzzles.weight.shape[0]} puzzle rows, the data needs {data.puzzles.num_rows}"
        self.table = ExampleTable(data.puzzles, data.pairs, cfg.data.buckets)
        if len(self.table) == 0:
            raise UserError("config: no training examples")
        for p in model.parameters():
            if p is not model.puzzles.weight:
                p.requires_grad_(train_weights)
        if cfg.run.compile:
            model.net.compile()  # in place: state_dict keys stay free of `_orig_mod.`
        dense = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = None
        if train_weights:
            self.optimizer = torch.optim.AdamW(dense, lr=cfg.optim.lr, betas=tuple(cfg.optim.betas),
                                               weight_decay=cfg.optim.weight_decay)
            self.model, self.optimizer = acc.prepare(model, self.optimizer)
        else:  # rows only: nothing dense to synchronise, so no DDP wrapper
            self.model = model.to(acc.device)
        self.ema = EMA(self.unwrapped, cfg.optim.ema_decay) if cfg.optim.ema_decay and train_weights else None
        self.rng = np.random.default_rng([cfg.run.seed, 1])
        B = cfg.optim.batch_size
        per = B // acc.num_processes
        local = slice(acc.process_index * per, (acc.process_index + 1) * per)
        self.carries = {side: BucketCarry(side, B, local, ExampleStream(idx, cfg.run.seed, side))
                        for side, idx in self.table.by_bucket.items()}
        sizes = np.array([len(self.table.by_bucket[s]) for s in self.carries], dtype=np.float64)
        self.bucket_weights = sizes / sizes.sum()
        self.step = 0
        self.last_metrics: dict = {}

    @property
    def unwrapped(self) -> TRM:
        return self.accelerator.unwrap_model(self.model)

    # ---- one supervision step ------------------------------------------------------------------------
    def train_step(self, side: int | None = None) -> dict:
        """One supervision step on one canvas bucket: `side`, or one drawn in proportion to the buckets'
        example counts (what training does; `arc-trm bench` times each bucket in turn)."""
        cfg, acc = self.cfg, self.accelerator
        if side is None:
            side = list(self.carries)[int(self.rng.choice(len(self.carries), p=self.bucket_weights))]
        carry = self.carries[side]
        carry.refill(self.table, self.unwrapped, self.rng, cfg.data.translate, acc.device)
        t = carry.tensors
        factor = learning_rate_factor(self.step, cfg.optim.warmup_steps, cfg.optim.max_steps, cfg.optim.lr_min_ratio)
        self.model.train()
        with acc.autocast():
            y, z, logits, halt_logits = self.model(t["inputs"], t["rows"], t["y"], t["z"])
            loss, per_example = step_loss(logits, t["labels"], halt_logits, cfg.optim.loss,
                                          cfg.optim.halt_loss_weight)
        acc.backward(loss)
        if self.optimizer is not None:
            if cfg.optim.grad_clip:
                acc.clip_grad_norm_(self.optimizer.param_groups[0]["params"], cfg.optim.grad_clip)
            for group in self.optimizer.param_groups:
                group["lr"] = cfg.optim.lr * factor
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        sparse_sign_sgd(self.unwrapped.puzzles, cfg.optim.puzzle_lr * factor, cfg.optim.puzzle_weight_decay,
                        acc.gather)
        if self.ema is not None:
            self.ema.update(self.unwrapped, self.step)
        t["y"], t["z"] = y, z

        # halting, decided identically on every process from the gathered halt logits
        halt_global = acc.gather(halt_logits.detach().float()).cpu().numpy()
        carry.steps += 1
        n_sup = cfg.model.n_supervision
        explore = self.rng.random(len(carry.steps)) < cfg.optim.halt_exploration
        min_steps = np.where(explore, self.rng.integers(min(2, n_sup), n_sup + 1, len(carry.steps)), 0)
        carry.halted = (carry.steps >= n_sup) | ((halt_global > 0) & (carry.steps >= min_steps))
        self.step += 1

        stats = {k: acc.gather(v.float()).cpu().numpy() for k, v in per_example.items()}
        done = carry.halted
        metrics = {
            "step": self.step, "loss": float(acc.reduce(loss.detach(), "mean")), "lr": cfg.optim.lr * factor,
            "output_loss": float(stats["output_loss"].mean()), "token_accuracy": float(stats["token_accuracy"].mean()),
            "canvas": side,
        }
        if done.any():  # accuracy at halting, over the examples that left the batch this step
            metrics.update(exact_accuracy=float(stats["exact"][done].mean()),
                           halt_accuracy=float(stats["halt_correct"][done].mean()),
                           mean_steps=float(carry.steps[done].mean()))
        return metrics

    # ---- evaluation ----------------------------------------------------------------------------------
    def evaluate(self) -> float:
        """Exact accuracy on the held-out test inputs (identity view, all N_sup steps, EMA weights),
        through the same batching and decoding as prediction (infer.Predictor)."""
        from arc_trm.infer import Ballot, Item, Predictor

        items = self.data.eval_items
        if not items:
            return float("nan")
        tasks, model = self.data.tasks, self.unwrapped
        votes = {tasks[t].id: [Ballot() for _ in tasks[t].test_inputs] for t, _ in items}
        predictor = Predictor(model, self.cfg, self.data.puzzles, accelerator=self.accelerator,
                              batch_size=self.cfg.optim.batch_size)
        ctx = self.ema.applied(model) if self.ema is not None else contextlib.nullcontext()
        with ctx:
            predictor.solve_items(tasks, [Item(t, j, 0, self.data.puzzles.row(t, 0)) for t, j in items],
                                  {tasks[t].id: [View()] for t, _ in items}, votes, deadline=None)
        correct = 0
        for t, j in items:
            guess, truth = votes[tasks[t].id][j].ranked()[0].grid, tasks[t].test_outputs[j]
            correct += np.array_equal(guess, truth)
        return correct / len(items)

    # ---- checkpoints ---------------------------------------------------------------------------------
    def save(self) -> Path:
        """Write checkpoints/step-N (atomically; see checkpoint.save)."""
        carry = {str(s): {k: v.cpu() for k, v in c.tensors.items()} for s, c in self.carries.items()}
        state = {"step": self.step, "num_processes": self.accelerator.num_processes,
                 "rng": self.rng.bit_generator.state, "carries": {str(s): c.state() for s, c in self.carries.items()},
                 "train_weights": self.train_weights}
        return checkpoint.save(self.out_dir, self.step, self.accelerator, model=self.unwrapped,
                               ema=self.ema.shadow if self.ema is not None else None, cfg=self.cfg,
                               puzzles=self.data.puzzles, state=state, optimizer=self.optimizer, carry=carry,
                               keep=self.cfg.run.keep_checkpoints)

    def resume(self, ckpt: Path) -> None:
        """Restore everything `save` wrote: weights, EMA, optimizer, step, RNG, streams and carries."""
        saved = checkpoint.load_for_resume(ckpt, self.accelerator)
        self.unwrapped.load_state_dict(saved["model"])
        if self.ema is not None and saved["ema"] is not None:
            self.ema.shadow = {k: v.to(self.accelerator.device) for k, v in saved["ema"].items()}
        if self.optimizer is not None and saved["optimizer"] is not None:
            self.optimizer.load_state_dict(saved["optimizer"])
        state = saved["state"]
        self.step = state["step"]
        self.rng.bit_generator.state = state["rng"]
        tensors = saved["carry"] or {}
        for side, carry in self.carries.items():
            restored = tensors.get(str(side))
            carry.load_state(state["carries"][str(side)], restored if restored else None)

    # ---- the loop ------------------------------------------------------------------------------------
    def fit(self, max_steps: int | None = None, time_budget: float | None = None) -> dict:
        """Train until `max_steps` (default: the config's) or `time_budget` seconds, whichever comes first."""
        from accelerate.utils import broadcast_object_list
        from tqdm.auto import tqdm

        cfg, acc = self.cfg, self.accelerator
        max_steps = cfg.optim.max_steps if max_steps is None else max_steps
        started, first_step = time.monotonic(), self.step
        metrics_path = self.out_dir / "metrics.jsonl"
        if acc.is_main_process:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            truncate_metrics(metrics_path, self.step)
        if cfg.run.log_with:
            acc.init_trackers(self.out_dir.name, config=flatten(cfg.to_dict()))
        bar = tqdm(total=max_steps, initial=self.step, desc="train", unit="step", dynamic_ncols=True,
                   disable=not acc.is_main_process or self.quiet, file=sys.stderr)
        window_start, window_examples = time.monotonic(), 0
        # With a time budget, the schedule is fitted to it: the cosine ends at the step the budget
        # allows, re-estimated at a few points of the run as the measured speed settles. Every process
        # acts on the main process's clock, so all of them re-plan and stop at the same step.
        cap, replans = max_steps, []
        if time_budget is not None:
            replans = [min(20.0, time_budget / 10)] + [f * time_budget for f in (0.25, 0.5, 0.75)]
        try:
            while self.step < max_steps:
                if time_budget is not None:
                    elapsed = broadcast_object_list([time.monotonic() - started])[0]
                    if elapsed > time_budget:
                        break
                    if replans and elapsed > replans[0] and self.step > first_step:
                        replans = [t for t in replans if t > elapsed]
                        rate = (self.step - first_step) / elapsed
                        max_steps = max(min(cap, self.step + int(rate * (time_budget - elapsed))), self.step + 1)
                        cfg.optim.max_steps = max_steps
                        bar.total = max_steps
                m = self.train_step()
                window_examples += cfg.optim.batch_size
                self.last_metrics.update(m)
                bar.update(1)
                if self.step % cfg.run.log_every == 0 or self.step == max_steps:
                    elapsed = time.monotonic() - window_start
                    m["examples_per_s"] = window_examples / max(elapsed, 1e-9)
                    window_start, window_examples = time.monotonic(), 0
                    bar.set_postfix(loss=f"{m['loss']:.3f}", exact=f"{self.last_metrics.get('exact_accuracy', 0):.3f}",
                                    ex_s=f"{m['examples_per_s']:.0f}")
                    self.log(metrics_path, m)
                if cfg.run.eval_every and self.step % cfg.run.eval_every == 0 and self.step < max_steps:
                    self.log(metrics_path, {"step": self.step, "eval_exact_accuracy": self.evaluate()})
                if cfg.run.save_every and self.step % cfg.run.save_every == 0 and self.step < max_steps:
                    self.save()
        except KeyboardInterrupt:
            bar.close()
            self.save()
            raise
        bar.close()
        final = {"step": self.step, "eval_exact_accuracy": self.evaluate()}
        self.log(metrics_path, final)
        self.save()
        if cfg.run.log_with:
            acc.end_training()
        return {**self.last_metrics, **final}

    def log(self, path: Path, metrics: dict) -> None:
        if self.cfg.run.log_with:
            self.accelerator.log({k: v for k, v in metrics.items() if k != "step"}, step=metrics["step"])
        if self.accelerator.is_main_process:
            with open(path, "a") as f:
                f.write(json.dumps(metrics) + "\n")


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


def run_training(cfg: Config, out_dir: str | Path, quiet: bool = False, time_budget: float | None = None) -> dict:
    """Train `cfg` in `out_dir`, resuming from its latest checkpoint if there is one."""
    out_dir = Path(out_dir)
    ckpt = checkpoint.latest_checkpoint(out_dir)
    if ckpt is not None:
        checkpoint.check_resumable(cfg, ckpt)
    trainer = Trainer(cfg, out_dir, training_data(cfg), quiet=quiet)
    if trainer.accelerator.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out_dir / "config.json", cfg.to_dict(), indent=2)
    if ckpt is not None:
        trainer.resume(ckpt)
        if trainer.accelerator.is_main_process and not quiet:
            print(f"resuming from {ckpt} at step {trainer.step}", file=sys.stderr)
    return trainer.fit(time_budget=time_budget)


def train_command(args) -> dict:
    cfg = load_config(args.config, args.overrides)
    out = args.out or f"runs/{cfg.name}"
    result = run_training(cfg, out, time_budget=args.time_budget)
    if result and os.environ.get("RANK", "0") == "0":
        print(json.dumps({k: result[k] for k in ("step", "loss", "exact_accuracy", "eval_exact_accuracy")
                          if k in result}))
    return result
