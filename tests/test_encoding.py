"""Canvas encoding: exact round trips on every canvas side and offset, EOS on the right and bottom edges,
and a decode that returns a valid grid whatever tokens it is given."""

import numpy as np
import pytest

from arc_trm.encoding import COLOUR0, EOS, PAD, VOCAB_SIZE, canvas_side, decode, encode
from arc_trm.tasks import MAX_SIDE

GRID_SHAPES = [(1, 1), (1, 30), (30, 1), (2, 3), (5, 5), (7, 12), (17, 9), (29, 30), (30, 30)]


@pytest.mark.parametrize("h, w", GRID_SHAPES)
def test_round_trip_every_side_and_offset(h, w):
    rng = np.random.default_rng(h * 31 + w)
    grid = rng.integers(0, 10, (h, w), dtype=np.uint8)
    for side in range(max(h, w), MAX_SIDE + 1):
        # the corners of the room the grid has, plus one random offset in between
        offsets = {(0, 0), (side - h, side - w), (0, side - w), (side - h, 0),
                   (int(rng.integers(side - h + 1)), int(rng.integers(side - w + 1)))}
        for offset in offsets:
            canvas = encode(grid, side, offset)
            assert canvas.shape == (side, side) and canvas.dtype == np.uint8
            assert np.array_equal(decode(canvas, offset), grid), (side, offset)


def test_eos_on_right_and_bottom_edges():
    grid = np.array([[0, 1, 2], [3, 4, 5]], dtype=np.uint8)
    C = COLOUR0
    expected = np.array([
        [PAD, PAD, PAD, PAD, PAD, PAD],
        [PAD, C + 0, C + 1, C + 2, EOS, PAD],
        [PAD, C + 3, C + 4, C + 5, EOS, PAD],
        [PAD, EOS, EOS, EOS, EOS, PAD],
        [PAD, PAD, PAD, PAD, PAD, PAD],
        [PAD, PAD, PAD, PAD, PAD, PAD],
    ], dtype=np.uint8)
    assert np.array_equal(encode(grid, 6, (1, 1)), expected)


def test_no_eos_beyond_the_canvas():
    grid = np.ones((2, 3), dtype=np.uint8)
    # grid touches the right edge: only the bottom EOS row, which stops at the canvas edge
    canvas = encode(grid, 4, (0, 1))
    assert canvas[2].tolist() == [PAD, EOS, EOS, EOS]
    assert (canvas[:2, 0] == PAD).all() and (canvas[3] == PAD).all()
    # grid fills the canvas: no EOS at all
    assert (encode(np.ones((3, 3), np.uint8), 3) == COLOUR0 + 1).all()


def test_encode_refuses_a_grid_that_does_not_fit():
    with pytest.raises(AssertionError):
        encode(np.zeros((3, 3), np.uint8), 4, (2, 0))


def test_decode_never_raises_on_random_canvases():
    rng = np.random.default_rng(0)
    for side in range(1, MAX_SIDE + 1):
        for trial in range(40):
            if trial % 2:  # mostly colour tokens, so large rectangles come out too
                canvas = rng.choice(VOCAB_SIZE, (side, side), p=[0.02, 0.02] + [0.096] * 10)
            else:
                canvas = rng.integers(0, VOCAB_SIZE, (side, side))
            offset = (int(rng.integers(side + 1)), int(rng.integers(side + 1)))  # may fall off the canvas
            grid = decode(canvas.astype(np.uint8), offset)
            assert grid.dtype == np.uint8 and grid.ndim == 2
            assert 1 <= grid.shape[0] <= min(side, MAX_SIDE) and 1 <= grid.shape[1] <= min(side, MAX_SIDE)
            assert grid.max() <= 9


def test_decode_takes_the_largest_colour_rectangle():
    canvas = np.full((5, 5), PAD, dtype=np.uint8)
    canvas[:4, :2] = COLOUR0 + 3  # 4x2 = 8 cells
    canvas[0, :5] = COLOUR0 + 7  # a lone long first row: 1x5 = 5 cells
    grid = decode(canvas)
    assert grid.shape == (4, 2)
    assert decode(np.full((4, 4), EOS, np.uint8)).tolist() == [[0]]


def test_canvas_side():
    assert canvas_side(5) == 6
    assert canvas_side(30) == 30
    assert canvas_side(5, buckets=(10, 20, 30)) == 10
    assert canvas_side(20, buckets=(10, 20)) == 30
