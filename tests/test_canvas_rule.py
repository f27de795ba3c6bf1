"""The canvas a test input is predicted on must hold its unknown output with the EOS edge training shows."""

import numpy as np
import pytest

from arc_trm.augment import dihedral
from arc_trm.config import DataConfig, load_config
from arc_trm.data import estimate_output_side
from arc_trm.encoding import canvas_side
from arc_trm.tasks import MAX_SIDE, Task, load_tasks

BUCKETS = {"default": tuple(DataConfig().buckets), "tiny-cpu": tuple(load_config("tiny-cpu").data.buckets)}


def _task(*shapes) -> Task:
    """A task of blank demonstrations, one (input shape, output shape) each."""
    return Task("t", [(np.zeros(i, np.uint8), np.zeros(o, np.uint8)) for i, o in shapes], [], None)


def test_an_input_tiled_by_itself_is_a_shape_rule():
    tiled = _task(((3, 3), (9, 9)), ((4, 4), (16, 16)))  # each axis squared
    assert estimate_output_side(tiled, np.zeros((5, 5), np.uint8)) == 25
    assert estimate_output_side(tiled, np.zeros((6, 6), np.uint8)) == MAX_SIDE


def test_a_size_decided_by_the_content_gets_half_again():
    # one input shape, outputs of two shapes: the bound (the largest grid, 12) grows by half
    counted = _task(((3, 3), (6, 6)), ((3, 3), (12, 12)))
    assert estimate_output_side(counted, np.zeros((3, 3), np.uint8)) == 18
    # the same outputs from inputs of different shapes keep the plain bound
    assert estimate_output_side(_task(((3, 3), (6, 6)), ((4, 4), (12, 12))), np.zeros((3, 3), np.uint8)) == 12


@pytest.mark.parametrize("buckets", BUCKETS.values(), ids=BUCKETS.keys())
@pytest.mark.parametrize("name", ["arc1-eval", "arc2-eval", "kaggle2025-eval"])
def test_every_test_output_fits_its_canvas_with_the_eos_edge(name, buckets):
    misses = []
    for task in load_tasks(name):
        for grid, truth in zip(task.test_inputs, task.test_outputs, strict=True):
            if max(truth.shape) == MAX_SIDE:
                continue  # a 30-wide output fills the largest canvas: there is no room for EOS there
            # the estimate reads the grid's largest side only, so the views' transposes give the same canvas
            sides = {canvas_side(estimate_output_side(task, dihedral(grid, d)), buckets) for d in range(8)}
            if min(sides) < max(truth.shape) + 1:
                misses.append((task.id, grid.shape, truth.shape, sorted(sides)))
    assert not misses, misses
