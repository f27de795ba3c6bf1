"""`geometry:SOURCE`: synthetic training tasks of ARC's geometric rules on crops of real grids. Each rule
does what its name says, every pair shows it (no output equal to its input), outputs fit a 10x10 canvas,
the set is the same every time, and a run trains on it beside ARC tasks."""

import numpy as np
import pytest

from arc_trm.config import load_config
from arc_trm.data import training_data
from arc_trm.errors import UserError
from arc_trm.synthetic import DOWNSCALED, MAX_OUTPUT, PAIRS, RULES, geometry_tasks, load_training_tasks
from arc_trm.tasks import DATASET_NAMES, load_tasks

G = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)


@pytest.mark.parametrize("name, expected", [
    ("rot90", [[3, 6], [2, 5], [1, 4]]),
    ("flip_lr", [[3, 2, 1], [6, 5, 4]]),
    ("flip_ud", [[4, 5, 6], [1, 2, 3]]),
    ("transpose", [[1, 4], [2, 5], [3, 6]]),
    ("tile-1x2", [[1, 2, 3, 1, 2, 3], [4, 5, 6, 4, 5, 6]]),
    ("mirror-1x2", [[1, 2, 3, 3, 2, 1], [4, 5, 6, 6, 5, 4]]),
    ("mirror-2x1", [[1, 2, 3], [4, 5, 6], [4, 5, 6], [1, 2, 3]]),
    ("mirror-2x2", [[1, 2, 3, 3, 2, 1], [4, 5, 6, 6, 5, 4], [4, 5, 6, 6, 5, 4], [1, 2, 3, 3, 2, 1]]),
    ("scale-2", [[1, 1, 2, 2, 3, 3], [1, 1, 2, 2, 3, 3], [4, 4, 5, 5, 6, 6], [4, 4, 5, 5, 6, 6]]),
])
def test_each_rule_does_what_its_name_says(name, expected):
    np.testing.assert_array_equal(RULES[name][0](G), np.array(expected))


def test_the_tasks_show_their_rule_in_every_pair_and_fit_a_small_canvas():
    source = load_tasks("arc1-train:over=8:max_side=12")
    tasks = load_training_tasks("geometry:arc1-train:over=8:max_side=12")
    assert [t.id for t in tasks] == [f"geometry-{name}" for name in [*RULES, *DOWNSCALED]]
    colours = set(np.unique(np.concatenate([g.ravel() for t in source for g in t.grids(True)])).tolist())
    for task in tasks:
        assert len(task.train) == PAIRS and task.test_inputs == [] and task.test_outputs == []
        name = task.id.removeprefix("geometry-")
        for inp, out in task.train:
            assert not (inp.shape == out.shape and np.array_equal(inp, out)), task.id
            assert max(*inp.shape, *out.shape) <= MAX_OUTPUT, task.id
            assert len(np.unique(inp)) > 1 and set(np.unique(inp).tolist()) <= colours
            if name in DOWNSCALED:  # the input is the output scaled up
                np.testing.assert_array_equal(RULES[f"scale-{DOWNSCALED[name]}"][0](out), inp)
            else:
                np.testing.assert_array_equal(RULES[name][0](inp), out)
    again = load_training_tasks("geometry:arc1-train:over=8:max_side=12")
    assert all(np.array_equal(a.train[-1][0], b.train[-1][0]) for a, b in zip(tasks, again))  # seeded, fixed
    arc_ids = {t.id for name in DATASET_NAMES for t in load_tasks(name)}
    assert not arc_ids & {t.id for t in tasks}


def test_a_run_trains_on_them_beside_arc_tasks():
    cfg = load_config("tiny-cpu", ["data.train_tasks=[\"arc1-train:max_side=3\", \"geometry:arc1-train:max_side=3\"]",
                                   "data.held_out_tasks=", "views=2"])
    data = training_data(cfg)
    geometry = [i for i, t in enumerate(data.tasks) if t.id.startswith("geometry-")]
    assert len(geometry) == len(RULES) + len(DOWNSCALED)
    assert all(len(data.pairs[i]) == PAIRS for i in geometry)
    assert [row[1:3] for row in data.sources] == [("arc1-train:max_side=3", len(data.tasks) - len(geometry)),
                                                  ("geometry:arc1-train:max_side=3", len(geometry))]


def test_a_source_to_crop_is_required():
    with pytest.raises(UserError, match="name the source whose grids to crop"):
        load_training_tasks("geometry:")
    with pytest.raises(UserError, match="no grid of two colours"):
        geometry_tasks([np.zeros((3, 3), dtype=np.uint8)])
