"""The on-disk checkpoint format, in one place: file names, the `latest` pointer, the atomic save, loading
for inference and for resuming, the compatibility check, and the files inference needs.

A run directory (of `arc-trm train` or `arc-trm adapt`):

    config.json                  the resolved config of the latest start
    metrics.jsonl                one JSON object per logged step
    latest                       "checkpoints/step-0000100": the newest complete checkpoint
    checkpoints/step-0000100/    a checkpoint folder:
        model.safetensors        weights, the puzzle-embedding table included
        ema.safetensors          EMA of the dense weights (what inference uses, when present)
        config.json              the config
        puzzles.json             the puzzle rows: each task's id and views
        trainer_state.json       step, RNG, data position, rolling-batch bookkeeping (marks a complete folder)
        optimizer.pt             AdamW state                       } resuming only
        carry-rank{R}.pt         each process's rolling batch      }

A checkpoint is written into a temporary folder and renamed when complete, and `latest` is replaced
atomically afterwards, so a kill at any moment leaves the previous checkpoint loadable.
"""

import json
import os
import shutil
from pathlib import Path

import torch

from arc_trm.atomic import atomic_write_text
from arc_trm.config import Config
from arc_trm.data import PuzzleSet
from arc_trm.errors import UserError
from arc_trm.model import TRM

MODEL_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"
CONFIG_FILE = "config.json"
PUZZLES_FILE = "puzzles.json"
STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.pt"
LATEST = "latest"
CHECKPOINTS = "checkpoints"
# What inference reads (load_for_inference); EMA weights are optional. The optimizer state and the
# carries only serve resuming training: `arc-trm submit` leaves them home (the optimizer state alone is
# twice the size of the weights).
INFERENCE_FILES = (CONFIG_FILE, PUZZLES_FILE, MODEL_FILE, EMA_FILE, STATE_FILE)
REQUIRED_FILES = tuple(name for name in INFERENCE_FILES if name != EMA_FILE)


def carry_file(rank: int) -> str:
    return f"carry-rank{rank}.pt"


def step_folder(out_dir: Path, step: int) -> Path:
    return Path(out_dir) / CHECKPOINTS / f"step-{step:07d}"


def latest_checkpoint(path: str | Path) -> Path | None:
    """A checkpoint folder itself, or the one a run directory's `latest` points to."""
    path = Path(path)
    if (path / STATE_FILE).exists():
        return path
    pointer = path / LATEST
    if pointer.exists():
        ckpt = path / pointer.read_text().strip()
        if (ckpt / STATE_FILE).exists():
            return ckpt
    return None


def find_checkpoint(path: str | Path) -> Path:
    """`latest_checkpoint`, or UserError naming `path` when there is none."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"checkpoint {path}: no such directory")
    ckpt = latest_checkpoint(path)
    if ckpt is None:
        raise UserError(f"checkpoint {path}: no {STATE_FILE} here and no `{LATEST}` pointing at one")
    return ckpt


def pooled_checkpoints(run_dir: str | Path, k: int) -> list[Path]:
    """The last `k` complete checkpoints of a run directory, oldest first (for pooling their votes)."""
    folders = sorted(p for p in (Path(run_dir) / CHECKPOINTS).glob("step-*") if (p / STATE_FILE).exists())
    if k < 1 or not folders:
        raise UserError(f"--pool {k}: {run_dir} has {len(folders)} complete checkpoints; need k >= 1 of them")
    return folders[-k:]


def read_config(ckpt: Path) -> Config:
    try:
        return Config.from_dict(json.loads((ckpt / CONFIG_FILE).read_text()), str(ckpt / CONFIG_FILE))
    except (OSError, ValueError) as e:
        raise UserError(f"checkpoint {ckpt}: cannot read {CONFIG_FILE} ({e})") from None


def check_resumable(cfg: Config, ckpt: Path) -> None:
    """Optimisation and run settings may change between starts of a run; model and data settings may not."""
    saved = read_config(ckpt)
    for section in ("model", "data"):
        if getattr(saved, section) != getattr(cfg, section):
            raise UserError(f"{ckpt}: the checkpoint was trained with different {section} settings; "
                            "use a new --out directory or the same config")


def save_checkpoint(out_dir: Path, step: int, accelerator, *, model: TRM, ema: dict | None, cfg: Config,
                    puzzles: PuzzleSet, state: dict, optimizer: torch.optim.Optimizer | None, carry: dict,
                    keep: int) -> Path:
    """Write checkpoints/step-N atomically (every process calls this; each writes its own carry, the main
    process the rest), point `latest` at it, and keep the newest `keep` checkpoints."""
    from safetensors.torch import save_file

    acc = accelerator
    final = step_folder(out_dir, step)
    tmp = final.with_name(f".tmp-{final.name}")
    if (final / STATE_FILE).exists():  # this step is saved already (a resume at its end)
        if acc.is_main_process:
            atomic_write_text(out_dir / LATEST, final.relative_to(out_dir).as_posix())
        acc.wait_for_everyone()
        return final
    if acc.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    acc.wait_for_everyone()
    torch.save(carry, tmp / carry_file(acc.process_index))
    if acc.is_main_process:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp / MODEL_FILE)
        if ema is not None:
            save_file(ema, tmp / EMA_FILE)
        (tmp / CONFIG_FILE).write_text(json.dumps(cfg.to_dict(), indent=2))
        (tmp / PUZZLES_FILE).write_text(puzzles.to_json())
        (tmp / STATE_FILE).write_text(json.dumps(state))
        if optimizer is not None:
            torch.save(optimizer.state_dict(), tmp / OPTIMIZER_FILE)
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        atomic_write_text(out_dir / LATEST, final.relative_to(out_dir).as_posix())
        for old in sorted(final.parent.glob("step-*"))[:-max(1, keep)]:
            shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()
    return final


def load_for_resume(ckpt: Path, accelerator) -> dict:
    """Everything `save_checkpoint` wrote, for this process: `model` and `ema` state dicts (ema None if absent),
    `optimizer` (None if absent), `state` (the trainer_state.json object) and `carry` (this process's
    rolling batch, or None when it was saved by another number of processes)."""
    from safetensors.torch import load_file

    acc = accelerator
    state = json.loads((ckpt / STATE_FILE).read_text())
    carry = ckpt / carry_file(acc.process_index)
    same_layout = state["num_processes"] == acc.num_processes and carry.exists()
    return {
        "state": state,
        "model": load_file(ckpt / MODEL_FILE, device="cpu"),
        "ema": load_file(ckpt / EMA_FILE) if (ckpt / EMA_FILE).exists() else None,
        "optimizer": torch.load(ckpt / OPTIMIZER_FILE, map_location=acc.device)
        if (ckpt / OPTIMIZER_FILE).exists() else None,
        "carry": torch.load(carry, map_location=acc.device) if same_layout else None,
    }


def read_puzzles(ckpt: Path) -> PuzzleSet:
    """The puzzle layout (task ids and their rows) of a checkpoint folder, without the weights: enough to
    tell which tasks it was trained on."""
    try:
        return PuzzleSet.from_json((ckpt / PUZZLES_FILE).read_text())
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"checkpoint {ckpt}: {PUZZLES_FILE} is missing or corrupt ({e})") from None


def load_for_inference(path: str | Path, use_ema: bool = True) -> tuple[Config, PuzzleSet, TRM]:
    """The config, puzzle layout and model of a checkpoint folder or run directory (EMA weights laid
    over the weights when saved). Missing or corrupt files raise UserError naming them."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    ckpt = find_checkpoint(path)
    cfg = read_config(ckpt)
    puzzles = read_puzzles(ckpt)
    model = TRM(cfg.model, puzzles.num_rows)
    try:
        weights = load_file(ckpt / MODEL_FILE)
        ema = load_file(ckpt / EMA_FILE) if use_ema and (ckpt / EMA_FILE).exists() else {}
    except (OSError, SafetensorError) as e:
        raise UserError(f"checkpoint {ckpt}: {MODEL_FILE} or {EMA_FILE} is missing or corrupt ({e})") from None
    try:
        model.load_state_dict({**weights, **ema})
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1].strip()
        raise UserError(f"checkpoint {ckpt}: weights do not match its {CONFIG_FILE} ({first})") from None
    return cfg, puzzles, model
