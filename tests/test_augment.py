"""Augmentations: every view inverts exactly, dihedral ids agree with numpy, strings round-trip, and
view sampling is seeded, distinct by content and starts with the identity."""

import numpy as np
import pytest

from arc_trm.augment import (
    DIHEDRAL_INVERSE,
    DIHEDRAL_NAMES,
    TaskImages,
    View,
    dihedral,
    random_view,
    sample_views,
)
from arc_trm.tasks import MAX_SIDE, Task

SHAPES = [(h, w) for h in range(1, MAX_SIDE + 1) for w in range(1, MAX_SIDE + 1)]


def _anti_transpose(g: np.ndarray) -> np.ndarray:
    """out[i, j] = g[H-1-j, W-1-i], written out by index so it does not lean on numpy's flips."""
    h, w = g.shape
    return np.array([[g[h - 1 - j, w - 1 - i] for j in range(h)] for i in range(w)], dtype=g.dtype)


NUMPY_DIHEDRAL = [
    lambda g: g,
    lambda g: np.rot90(g, 1),
    lambda g: np.rot90(g, 2),
    lambda g: np.rot90(g, 3),
    np.fliplr,
    np.flipud,
    lambda g: g.T,
    _anti_transpose,
]


@pytest.mark.parametrize("d", range(8), ids=DIHEDRAL_NAMES)
def test_dihedral_agrees_with_numpy(d):
    rng = np.random.default_rng(d)
    for h, w in [(1, 1), (1, 5), (4, 1), (3, 7), (6, 6), (30, 29)]:
        g = rng.integers(0, 10, (h, w), dtype=np.uint8)
        assert np.array_equal(dihedral(g, d), NUMPY_DIHEDRAL[d](g)), (d, h, w)


def test_dihedral_rejects_bad_id():
    with pytest.raises(ValueError):
        dihedral(np.zeros((2, 2), np.uint8), 8)


def test_inverse_table_undoes_each_transform():
    g = np.random.default_rng(0).integers(0, 10, (4, 7), dtype=np.uint8)
    for d in range(8):
        assert np.array_equal(dihedral(dihedral(g, d), DIHEDRAL_INVERSE[d]), g), d


@pytest.mark.parametrize("permute_background", [False, True])
def test_invert_apply_round_trip_every_shape(permute_background):
    rng = np.random.default_rng(1 + permute_background)
    for h, w in SHAPES:
        g = rng.integers(0, 10, (h, w), dtype=np.uint8)
        colours = random_view(rng, permute_background).colours
        for d in range(8):
            view = View(d, colours)
            out = view.apply(g)
            assert out.dtype == np.uint8
            assert out.shape == ((w, h) if d in (1, 3, 6, 7) else (h, w))
            assert np.array_equal(view.invert(out), g), (str(view), h, w)


def test_colour_permutation_keeps_background_unless_asked():
    rng = np.random.default_rng(3)
    assert all(random_view(rng).colours[0] == 0 for _ in range(50))
    assert any(random_view(rng, permute_background=True).colours[0] != 0 for _ in range(50))


def test_apply_maps_colours_after_the_dihedral():
    g = np.array([[0, 1, 2]], dtype=np.uint8)
    view = View(1, (0, 2, 1, 3, 4, 5, 6, 7, 8, 9))  # rot90, swap colours 1 and 2
    assert view.apply(g).tolist() == [[1], [2], [0]]


def test_view_string_round_trip():
    rng = np.random.default_rng(5)
    for _ in range(100):
        v = random_view(rng, permute_background=bool(rng.integers(2)))
        assert View.parse(str(v)) == v
    assert str(View()) == "d0-c0123456789"
    assert View.parse("d3-c0213456789-t0.0") == View(3, (0, 2, 1, 3, 4, 5, 6, 7, 8, 9))  # earlier checkpoints


@pytest.mark.parametrize("text", ["", "d8-c0123456789", "d1-c012345678", "d1-c0123456789-t1.2",
                                  "d1-c0123456789 ", "d1-c0123456788"])
def test_view_parse_rejects_bad_strings(text):
    with pytest.raises(ValueError):
        View.parse(text)


def _task(grids: list[np.ndarray]) -> Task:
    return Task("t", [(grids[0], grids[1])], [grids[2]])


def test_sample_views_seeded_distinct_identity_first():
    rng = np.random.default_rng(6)
    task = _task([rng.integers(0, 10, (3, 4), dtype=np.uint8) for _ in range(3)])
    views = sample_views(task, 40, np.random.default_rng(7))
    assert len(views) == 40
    assert views[0] == View()
    assert views == sample_views(task, 40, np.random.default_rng(7))
    assert views != sample_views(task, 40, np.random.default_rng(8))
    contents = {b"".join(v.apply(g).tobytes() + bytes(v.apply(g).shape) for g in task.grids()) for v in views}
    images = TaskImages(task)
    assert len(contents) == 40 and len({images.content(v.dihedral, np.array(v.colours, np.uint8)) for v in views}) == 40


def test_symmetric_task_gets_fewer_views():
    # all background: no colour permutation (0 fixed) or dihedral changes the content
    blank = np.zeros((3, 3), dtype=np.uint8)
    assert sample_views(_task([blank] * 3), 10, np.random.default_rng(0)) == [View()]
    # one colour-1 cell in the centre: dihedrals do nothing, only the 9 choices of its colour differ
    dot = blank.copy()
    dot[1, 1] = 1
    views = sample_views(_task([dot] * 3), 20, np.random.default_rng(0))
    assert len(views) == 9
    images = TaskImages(_task([dot] * 3))
    assert len({images.content(v.dihedral, np.array(v.colours, np.uint8)) for v in views}) == 9


def test_views_of_a_task_with_few_colours_are_counted_and_all_found():
    # two colours on an L shape (no symmetry): 8 dihedral ids x 9 x 8 colour maps, all distinct
    grid = np.zeros((3, 3), dtype=np.uint8)
    grid[:, 0], grid[2, :] = 1, 2
    task = _task([grid] * 3)
    images = TaskImages(task)
    assert images.count_distinct(permute_background=False, limit=10_000) == 8 * 9 * 8
    assert images.count_distinct(permute_background=True, limit=10_000) == 8 * 10 * 9 * 8
    assert images.count_distinct(permute_background=False, limit=100) is None  # 576 maps to try: too many
    views = sample_views(task, 1000, np.random.default_rng(0))  # 20,000 tries allowed; stops at all 576
    assert len(views) == 576
    assert len({images.content(v.dihedral, np.array(v.colours, np.uint8)) for v in views}) == 576
