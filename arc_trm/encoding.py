"""Grids <-> canvas tokens.

Tokens: PAD 0, EOS 1, colour c -> c + 2 (12 in all). A grid of shape (h, w) sits on a square canvas of
side S (h, w <= S <= 30) at a (row, column) offset; EOS marks the column right of the grid and the row
below it (corner included), where those fall inside the canvas. The canvas side is chosen per batch, so
small grids are not padded to 30x30. Decoding crops the largest rectangle of colour tokens anchored at
the offset (as the reference does) and never raises: whatever tokens a model emits, it returns a valid
grid (1x1 to 30x30, values 0-9).
"""

import numpy as np

from arc_trm.tasks import MAX_SIDE

PAD, EOS, COLOUR0 = 0, 1, 2
VOCAB_SIZE = 12


def encode(grid: np.ndarray, side: int, offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """(h, w) grid -> (side, side) uint8 canvas with EOS on the right and bottom edges."""
    h, w = grid.shape
    r0, c0 = offset
    assert r0 + h <= side and c0 + w <= side, f"grid {h}x{w} at offset {offset} does not fit a {side} canvas"
    canvas = np.full((side, side), PAD, dtype=np.uint8)
    canvas[r0:r0 + h, c0:c0 + w] = grid + COLOUR0
    if r0 + h < side:
        canvas[r0 + h, c0:c0 + w + 1] = EOS
    if c0 + w < side:
        canvas[r0:r0 + h + 1, c0 + w] = EOS
    return canvas


def decode(canvas: np.ndarray, offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """(S, S) tokens -> grid: the largest all-colour rectangle whose top-left is at `offset`.

    Row r of the rectangle can be as wide as the run of colour tokens starting at the left edge in
    every row up to r (a running minimum); the rectangle with the largest area wins. A canvas with no
    colour token at the offset decodes to [[0]].
    """
    r0, c0 = offset
    tokens = np.asarray(canvas)[r0:r0 + MAX_SIDE, c0:c0 + MAX_SIDE]
    if tokens.size == 0:
        return np.zeros((1, 1), dtype=np.uint8)
    is_colour = (tokens >= COLOUR0) & (tokens < COLOUR0 + 10)
    # width of the leading run of colour tokens in each row
    widths = np.where(is_colour.all(axis=1), is_colour.shape[1], np.argmin(is_colour, axis=1))
    widths = np.minimum.accumulate(widths)
    areas = widths * np.arange(1, len(widths) + 1)
    rows = int(np.argmax(areas)) + 1
    cols = int(widths[rows - 1])
    if cols == 0:
        return np.zeros((1, 1), dtype=np.uint8)
    return (tokens[:rows, :cols] - COLOUR0).astype(np.uint8)


def canvas_side(max_grid_side: int, buckets: tuple[int, ...] | None = None) -> int:
    """The canvas side for grids up to `max_grid_side`: one more for the EOS edge, capped at 30, then
    rounded up to the next bucket if buckets are given (e.g. (10, 15, 20, 25, 30))."""
    side = min(max_grid_side + 1, MAX_SIDE)
    if buckets:
        side = next((b for b in sorted(buckets) if b >= side), MAX_SIDE)
    return side
