"""Kaggle submission JSON: build, write (atomically), load, validate and score with the official metric.

The format is `{task_id: [{"attempt_1": grid, "attempt_2": grid}, ...]}`: one dict per test input, in
the task's order, every task of the challenges present, both attempts always given, each grid a list of
rows of integers 0-9 (1x1 to 30x30). A test output counts as solved if either attempt equals it exactly;
the Kaggle score is solved outputs / all outputs. On an evaluation set of a few hundred outputs, or a
held-out split of a few dozen, one output moves the score by whole points, so scores come with a
binomial confidence interval (`binomial_interval`).
"""

from pathlib import Path

import numpy as np

from arc_trm.atomic import atomic_write_json
from arc_trm.errors import UserError
from arc_trm.tasks import Task, parse_grid, read_json

ATTEMPTS = ("attempt_1", "attempt_2")
CONFIDENCE = 0.95  # of the intervals reported with every score
FALLBACK_ATTEMPT_2 = [[0]]  # a second guess that differs from the input copy in almost every task


def _fallback_entries(task: Task) -> list[dict]:
    return [{"attempt_1": g.tolist(), "attempt_2": FALLBACK_ATTEMPT_2} for g in task.test_inputs]


def fallback_submission(tasks: list[Task]) -> dict:
    """A valid submission without a model: attempt_1 copies the test input (right for the few tasks whose
    output equals the input, and always the right kind of grid), attempt_2 is [[0]]."""
    return {task.id: _fallback_entries(task) for task in tasks}


def make_submission(tasks: list[Task], attempts: dict[str, list[tuple[np.ndarray, np.ndarray]]],
                    base: dict | None = None) -> dict:
    """A valid submission for `tasks` from predicted attempts, one (attempt_1, attempt_2) per test input.

    Tasks without predictions keep their entry in `base` (e.g. a submission written earlier in a
    time-limited run) or, failing that, the fallback. The result is validated before it is returned,
    so it can be written as is.
    """
    ids = {task.id for task in tasks}
    unknown = sorted(attempts.keys() - ids)
    if unknown:
        raise ValueError(f"predictions for task {unknown[0]}, which is not among the tasks")
    submission = {}
    for task in tasks:
        if task.id in attempts:
            pairs = attempts[task.id]
            if len(pairs) != len(task.test_inputs):
                raise ValueError(f"task {task.id}: {len(pairs)} predictions for "
                                 f"{len(task.test_inputs)} test inputs")
            submission[task.id] = [dict(zip(ATTEMPTS, (np.asarray(a).tolist() for a in pair), strict=True))
                                   for pair in pairs]
        elif base is not None and task.id in base:
            submission[task.id] = base[task.id]
        else:
            submission[task.id] = _fallback_entries(task)
    validate_submission(submission, tasks)
    return submission


def write_submission(path: str | Path, submission: dict) -> None:
    """Write atomically: a crash mid-write leaves the previous file (or none), never half of one."""
    atomic_write_json(path, submission)


def load_submission(path: str | Path) -> dict:
    return read_json(Path(path))


def validate_submission(submission, tasks: list[Task], file: str = "submission") -> None:
    """Raise UserError with one line naming `file`, the task id and the test index of the first problem."""
    if not isinstance(submission, dict):
        raise UserError(f"{file}: expected an object of task id -> list of {{attempt_1, attempt_2}}")
    ids = {task.id for task in tasks}
    extra = sorted(submission.keys() - ids)
    if extra:
        raise UserError(f"{file}: task {extra[0]}: not a task of the challenges")
    for task in tasks:
        if task.id not in submission:
            raise UserError(f"{file}: task {task.id}: missing (every task needs an entry)")
        entries = submission[task.id]
        if not isinstance(entries, list) or len(entries) != task.n_tests:
            n = len(entries) if isinstance(entries, list) else "no list of"
            raise UserError(f"{file}: task {task.id}: {n} entries for {task.n_tests} test inputs")
        for i, entry in enumerate(entries):
            where = f"{file}: task {task.id}: test {i}"
            if not isinstance(entry, dict):
                raise UserError(f"{where}: not an object with 'attempt_1' and 'attempt_2'")
            for key in ATTEMPTS:
                if key not in entry:
                    raise UserError(f"{where}: missing '{key}'")
                parse_grid(entry[key], f"{where}: {key}")


def binomial_interval(k: int, n: int) -> tuple[float, float]:
    """The CONFIDENCE interval of a success rate seen as `k` successes in `n` trials (e.g. solved test
    outputs of all test outputs): the exact Clopper-Pearson interval of scipy.stats.binomtest. Exact
    rather than Wilson because it never covers less than it promises, which matters at the small n of
    held-out splits (Wilson's is a little narrower and may cover less)."""
    from scipy.stats import binomtest  # imported here: scipy.stats takes a second to load

    ci = binomtest(k, n).proportion_ci(confidence_level=CONFIDENCE, method="exact")
    return float(ci.low), float(ci.high)


def format_interval(low: float, high: float) -> str:
    return f"{low:.2f}-{high:.2f}"


def score_submission(submission: dict, tasks: list[Task], *, file: str = "submission",
                     source: str = "solutions") -> dict:
    """The competition's score of a submission against tasks with known test outputs.

    Validates first (errors name `file`); tasks without test outputs raise UserError naming `source`.
    Returns score (solved outputs / all outputs, the Kaggle score), interval (the score's CONFIDENCE
    interval, [low, high]), task_score (mean over tasks of each task's solved fraction), tasks, outputs,
    correct_outputs and per_task ({task_id: fraction}).
    """
    assert tasks, "no tasks to score against"
    missing = next((task.id for task in tasks if task.test_outputs is None), None)
    if missing is not None:
        raise UserError(f"{source}: task {missing}: no test outputs to score against (no solutions file)")
    validate_submission(submission, tasks, file)
    per_task, outputs, correct = {}, 0, 0
    for task in tasks:
        # validated grids are lists of lists of ints, so list equality is exact equality (shape included)
        solved = sum(any(entry[key] == truth.tolist() for key in ATTEMPTS)
                     for entry, truth in zip(submission[task.id], task.test_outputs, strict=True))
        per_task[task.id] = solved / len(task.test_outputs)
        outputs += len(task.test_outputs)
        correct += solved
    return {
        "score": correct / outputs,
        "interval": list(binomial_interval(correct, outputs)),
        "task_score": sum(per_task.values()) / len(per_task),
        "tasks": len(tasks),
        "outputs": outputs,
        "correct_outputs": correct,
        "per_task": per_task,
    }
