"""Configs: one dataclass per concern, named configs as JSON files in arc_trm/configs, `key=value`
overrides from the command line, and the resolved config saved with every run and checkpoint.

A named config file holds only what differs from the defaults, as {"model": {...}, "data": {...}, ...}.
Overrides name a field either plainly (`max_steps=50`, when the name is unique) or with its section
(`model.hidden=128`). Values are parsed as JSON where they parse (numbers, true/false, lists), else taken
as strings.
"""

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path

from arc_trm.errors import UserError

CONFIG_DIR = Path(__file__).parent / "configs"


@dataclass
class ModelConfig:
    hidden: int = 512  # width D of every token
    heads: int = 8  # attention heads (hidden must divide by it)
    layers: int = 2  # blocks in the one network used for both updates (2 beat 4 in the paper)
    expansion: float = 4.0  # SwiGLU inner width ~ 2/3 * expansion * hidden (the parameters of a 4x MLP) ...
    mlp_multiple: int = 64  # ... rounded up to a multiple of this (the reference: 256, so 1536 at hidden 512)
    mixer: str = "attention"  # token mixer: "attention", or "mlp" (an MLP over the 30x30 positions)
    n_latent: int = 4  # n in paper: latent updates z = net(x + y + z) per recursion
    n_recursion: int = 3  # T in paper: recursions per supervision step, T-1 of them without gradient
    n_supervision: int = 16  # N_sup in paper: supervision steps per example
    puzzle_dim: int = 512  # width of a puzzle-embedding row (0: no puzzle conditioning)
    prefix_len: int = 16  # prefix tokens the puzzle row is padded and reshaped into
    positions: str = "2d"  # rotary positions: "2d" by row and column; "1d" by token index over prefix + 30x30
    rope_theta: float = 10000.0  # base of the rotary position frequencies
    grid_coords: bool = False  # add to each cell embeddings of its row and column counted from the input
    # grid's near and far edges (absolute, grid-relative positions; not in the paper, see model.GridCoordinates)
    norm_eps: float = 1e-5
    init: str = "torch"  # truncated normals: "torch" (nn.init's, true std 0.88 of the asked one); "reference"


@dataclass
class DataConfig:
    # task sources: dataset names (`arc-trm datasets`) or Kaggle challenges JSON paths, with optional filters
    train_tasks: list[str] = field(default_factory=lambda: ["arc1-train"])  # every pair of these is trained on;
    # also `geometry:SOURCE`, synthetic tasks of ARC's geometric rules on crops of SOURCE's grids (synthetic.py)
    held_out_tasks: list[str] = field(default_factory=lambda: ["arc1-eval"])  # their demonstrations are
    # trained on, their test inputs held out (scored at evaluation), as the reference does with its eval set
    views: int = 1000  # distinct augmented views (puzzles) per task, identity first
    permute_background: bool = False  # let colour 0 move too in colour permutations
    translate: bool = True  # place training examples at random offsets on their canvas (see placement)
    placement: str = "random"  # "random": a fresh offset at every visit, the EOS edge inside the canvas;
    # "reference": one offset per example for the whole run, up to the canvas edge, one example per puzzle
    # at the top-left (the reference's dataset build)
    buckets: list[int] = field(default_factory=lambda: [10, 15, 20, 25, 30])  # canvas sides; [30] = fixed
    bucket_sampling: str = "compute"  # a step's bucket drawn in proportion to its examples x their running
    # mean steps to halt ("compute", as the reference's one rolling batch spends it) or to examples only
    max_eval_inputs: int = 400  # held-out test inputs scored at each periodic evaluation (0: all)


@dataclass
class OptimConfig:
    batch_size: int = 768  # global batch, split evenly over processes
    max_steps: int = 100000  # optimizer steps (one supervision step each) ...
    epochs: float = 0  # ... or, when > 0, the length in the reference's epochs (one view of every task per
    # epoch: epochs x tasks x mean examples per view / batch_size steps), resolved when the run starts
    lr: float = 1e-4  # AdamW learning rate of the network weights
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    weight_decay: float = 0.1
    puzzle_lr: float = 1e-2  # sign-SGD learning rate of the puzzle-embedding rows
    puzzle_weight_decay: float = 0.1  # decoupled weight decay on the rows a step touches
    warmup_steps: int = 2000  # linear warm-up, then cosine decay to lr * lr_min_ratio
    lr_min_ratio: float = 1.0  # 1.0 keeps the rate constant after warm-up, as the reference does
    grad_clip: float = 1.0  # clip the global gradient norm (0: off)
    ema_decay: float = 0.999  # EMA of the weights, used for evaluation and saved (0: off)
    loss: str = "stablemax"  # output loss: "stablemax" (reference) or "softmax" cross-entropy
    halt_loss_weight: float = 0.5  # weight of the halt BCE
    halt_exploration: float = 0.1  # probability an example gets a random minimum number of steps


RANK_RULES = ("votes", "probability", "consensus")  # see infer.Ballot


@dataclass
class InferConfig:
    rank: str = "consensus"  # how candidates rank: "probability" (the sum over views of each candidate's
    # log-probability, then votes), "consensus" (the same, with each shape's best grid by that sum entered
    # even if no view voted for it) or "votes" (count, then mean halt probability: the reference)
    score_views: int = 32  # rank=probability or consensus: views whose output distributions score candidates


@dataclass
class RunConfig:
    seed: int = 0
    log_every: int = 10  # steps between metrics.jsonl lines
    eval_every: int = 5000  # steps between held-out evaluations (0: only at the end)
    save_every: int = 1000  # steps between checkpoints (and one at the end)
    keep_checkpoints: int = 2  # newest checkpoints kept on disk
    mixed_precision: str = "auto"  # "auto" (bf16 where the device supports it), "bf16" or "no"
    compile: bool = False  # torch.compile the network
    log_with: list[str] = field(default_factory=list)  # Accelerate trackers, e.g. ["tensorboard"]


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    infer: InferConfig = field(default_factory=InferConfig)
    run: RunConfig = field(default_factory=RunConfig)
    name: str = "custom"  # the named config this was built from

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, where: str = "config") -> "Config":
        cfg = cls()
        _update(cfg, d, where)
        return cfg


SECTIONS = ["model", "data", "optim", "infer", "run"]


def _coerce(value, current, key: str, where: str, kind=None):
    """Check `value` against the type of the field's current value (and a list's elements against the
    element type of the field's annotation `kind`, e.g. list[int])."""
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise UserError(f"{where}: {key} must be true or false, got {value!r}")
    elif isinstance(current, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{where}: {key} must be an integer, got {value!r}")
    elif isinstance(current, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"{where}: {key} must be a number, got {value!r}")
        value = float(value)
    elif isinstance(current, str):
        if not isinstance(value, str):
            raise UserError(f"{where}: {key} must be a string, got {value!r}")
    elif isinstance(current, list):
        if key.endswith("_tasks") and isinstance(value, str):  # one source, or "" for none
            value = [value] if value else []
        if not isinstance(value, list):
            raise UserError(f"{where}: {key} must be a list, got {value!r}")
        element = typing.get_args(kind)[0] if typing.get_args(kind) else None
        if element in (bool, int, float, str):
            value = [_coerce(v, element(), f"{key}[{i}]", where) for i, v in enumerate(value)]
    return value


RENAMED = {("data", "eval_tasks"): "held_out_tasks"}  # (section, old name) -> name; config files of earlier versions


def _update(cfg: Config, d: dict, where: str) -> None:
    if not isinstance(d, dict):
        raise UserError(f"{where}: expected an object of sections")
    for section, values in d.items():
        if section == "name":
            cfg.name = str(values)
            continue
        if section not in SECTIONS:
            raise UserError(f"{where}: unknown config section {section!r} (sections: {', '.join(SECTIONS)})")
        sub = getattr(cfg, section)
        if not isinstance(values, dict):
            raise UserError(f"{where}: section {section!r} must be an object")
        for key, value in values.items():
            key = RENAMED.get((section, key), key)
            if not hasattr(sub, key):
                raise UserError(f"{where}: unknown config key {section}.{key}")
            kind = next(f.type for f in dataclasses.fields(sub) if f.name == key)
            setattr(sub, key, _coerce(value, getattr(sub, key), f"{section}.{key}", where, kind))


def named_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def load_config(name_or_path: str, overrides: list[str] = ()) -> Config:
    """A named config (a file in arc_trm/configs) or a JSON file, then `key=value` overrides."""
    path = Path(name_or_path)
    if not path.suffix and (CONFIG_DIR / f"{name_or_path}.json").exists():
        path = CONFIG_DIR / f"{name_or_path}.json"
    if not path.exists():
        raise UserError(f"unknown config {name_or_path!r}: use one of {', '.join(named_configs())} "
                        "or a path to a config JSON")
    try:
        d = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None
    cfg = Config.from_dict(d, str(path))
    if cfg.name == "custom":
        cfg.name = path.stem
    apply_overrides(cfg, overrides)
    check_config(cfg)
    return cfg


def check_config(cfg: Config) -> None:
    """Refuse values that would fail later, deep inside a run."""
    m, o, d = cfg.model, cfg.optim, cfg.data
    problems = [
        (m.hidden % m.heads == 0, f"model.hidden ({m.hidden}) must be divisible by model.heads ({m.heads})"),
        ((m.hidden // m.heads) % 4 == 0, "model.hidden / model.heads must be a multiple of 4 (2-D rotary)"),
        (m.mixer in ("attention", "mlp"), f"model.mixer must be attention or mlp, got {m.mixer!r}"),
        (m.positions in ("2d", "1d"), f"model.positions must be 2d or 1d, got {m.positions!r}"),
        (m.init in ("torch", "reference"), f"model.init must be torch or reference, got {m.init!r}"),
        (d.placement in ("random", "reference"), f"data.placement must be random or reference, got {d.placement!r}"),
        (d.bucket_sampling in ("compute", "examples"), "data.bucket_sampling must be compute or examples"),
        (o.epochs >= 0, "optim.epochs must be >= 0"),
        (o.loss in ("stablemax", "softmax"), f"optim.loss must be stablemax or softmax, got {o.loss!r}"),
        (min(m.n_latent, m.n_recursion, m.n_supervision, m.layers) >= 1, "n_latent, n_recursion, "
         "n_supervision and layers must be at least 1"),
        (m.puzzle_dim <= m.prefix_len * m.hidden, "model.puzzle_dim must fit in prefix_len * hidden"),
        (o.batch_size >= 1 and o.max_steps >= 0, "optim.batch_size must be >= 1 and max_steps >= 0"),
        (d.views >= 1, "data.views must be at least 1"),
        (bool(d.buckets) and all(1 <= b <= 30 for b in d.buckets), "data.buckets must be sides in 1-30"),
        (cfg.infer.rank in RANK_RULES, f"infer.rank must be one of {', '.join(RANK_RULES)}, got {cfg.infer.rank!r}"),
        (cfg.infer.score_views >= 1, "infer.score_views must be at least 1"),
        (cfg.run.mixed_precision in ("auto", "bf16", "no"), "run.mixed_precision must be auto, bf16 or no"),
    ]
    for ok, message in problems:
        if not ok:
            raise UserError(f"config {cfg.name}: {message}")


def sets_field(overrides: list[str], name: str) -> bool:
    """Whether `key=value` overrides set the field `name` (plainly or with its section)."""
    return any(item.partition("=")[0].rpartition(".")[2] == name for item in overrides)


def apply_overrides(cfg: Config, overrides: list[str]) -> None:
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise UserError(f"override {item!r}: expected key=value")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        if "." in key:
            section, _, name = key.partition(".")
        else:
            owners = [s for s in SECTIONS if hasattr(getattr(cfg, s), key)]
            if not owners:
                raise UserError(f"override {item!r}: unknown config key {key!r}")
            section, name = owners[0], key
        _update(cfg, {section: {name: value}}, f"override {item!r}")


def add_train_arguments(parser) -> None:
    parser.add_argument("--config", default="tiny-cpu",
                        help=f"a named config ({', '.join(named_configs())}) or a config JSON file")
    parser.add_argument("--out", default=None, help="run directory (default: runs/CONFIG); an existing one resumes")
    parser.add_argument("--time-budget", type=float, default=None, metavar="S",
                        help="stop after S seconds of training, the learning-rate schedule fitted to the steps "
                             "that fit; the budget decides the step count unless max_steps is set here too")
    parser.add_argument("--dry-run", action="store_true",
                        help="load the data, build the puzzle table and the model, print the plan (tasks, "
                             "examples, parameters, steps, canvas buckets) and stop")
    parser.add_argument("--json", action="store_true", help="with --dry-run: print the plan as one JSON object")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. max_steps=50 model.hidden=128")
