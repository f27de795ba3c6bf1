"""The TRM model, its losses and the sparse puzzle-row update: shapes, 2-D positions, the gradient path
(only the last of T recursions), the detached carry, halt-head init, the halt target, stable-max, and
sign-SGD on the touched rows (also split over two "processes")."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from arc_trm.config import ModelConfig, load_config
from arc_trm.encoding import PAD, VOCAB_SIZE, encode
from arc_trm.loss import log_stablemax, step_loss, token_losses
from arc_trm.model import TRM, PuzzleEmbedding, rope_angles, sparse_sign_sgd


def small_model(mixer: str = "attention", **overrides) -> TRM:
    torch.manual_seed(0)
    sizes = dict(hidden=32, heads=2, puzzle_dim=48, prefix_len=2, n_latent=2, n_recursion=3, n_supervision=2)
    return TRM(ModelConfig(mixer=mixer, **{**sizes, **overrides}), num_puzzles=5)


def random_inputs(model: TRM, B: int, side: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, VOCAB_SIZE, (B, side, side), generator=g)
    ids = torch.randint(0, model.puzzles.weight.shape[0], (B,), generator=g)
    y, z = model.initial_carry(B, side)
    return tokens, ids, y, z


@pytest.mark.parametrize("mixer", ["attention", "mlp"])
@pytest.mark.parametrize("side", [1, 4, 11, 30])
def test_forward_shapes(mixer, side):
    model = small_model(mixer, n_latent=1, n_recursion=1)
    B, P, D = 2, model.cfg.prefix_len, model.cfg.hidden
    tokens, ids, y, z = random_inputs(model, B, side)
    assert y.shape == z.shape == (B, P + side * side, D)
    y2, z2, logits, halt = model(tokens, ids, y, z)
    assert y2.shape == z2.shape == (B, P + side * side, D)
    assert logits.shape == (B, side * side, VOCAB_SIZE)
    assert halt.shape == (B,)
    prediction, halt_prob, log_probs = model.predict(tokens, ids)
    assert prediction.shape == (B, side, side) and halt_prob.shape == (B,)
    assert log_probs.shape == (B, side, side, VOCAB_SIZE)
    assert torch.equal(log_probs.argmax(-1), prediction)
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(B, side, side))


def test_carry_must_fit_the_canvas():
    model = small_model()
    tokens, ids, _, _ = random_inputs(model, 2, 5)
    y, z = model.initial_carry(2, 6)
    with pytest.raises(AssertionError, match="does not fit"):
        model(tokens, ids, y, z)


@pytest.mark.parametrize("positions", ["2d", "1d"])
def test_rope_gives_a_cell_the_same_rotation_on_any_canvas(positions):
    head_dim, P = 16, 3
    small, large = (rope_angles(head_dim, side, P, 10000.0, positions, "cpu") for side in (5, 17))
    for r in range(5):
        for c in range(5):
            torch.testing.assert_close(small[P + r * 5 + c], large[P + r * 17 + c])
    torch.testing.assert_close(small[:P], large[:P])  # prefix tokens too
    # rows and columns are distinguished: the transposed cell gets a different rotation
    assert not torch.allclose(small[P + 1 * 5 + 2], small[P + 2 * 5 + 1])


def test_grid_coordinates_follow_the_input_grid_and_tell_its_far_edge():
    """grid_coords: a cell's embedding depends on where it sits in the input grid, not on the canvas or the
    grid's offset; a cell and its mirror image get different ones (the far edge is what tells them apart,
    which relative rotary positions cannot); a paper config has no such table."""
    model = small_model(grid_coords=True)
    grid = (np.arange(12).reshape(3, 4) % 9 + 1).astype(np.uint8)
    placements = [(5, (0, 0)), (9, (2, 3)), (9, (5, 4))]  # (canvas side, offset)
    coords = [model.coords(torch.from_numpy(encode(grid, side, offset))[None].long())[0].view(side, side, -1)
              for side, offset in placements]
    for (_, (r0, c0)), emb in zip(placements, coords):
        torch.testing.assert_close(emb[r0:r0 + 4, c0:c0 + 5], coords[0][:4, :5])  # the grid, its EOS edge
    first, mirror = coords[0][0, 0], coords[0][0, 3]  # columns 0 and 3 of a 4-wide row
    assert not torch.allclose(first, mirror)
    wider = encode(np.ones((3, 6), dtype=np.uint8), 7)  # column 0 of a wider grid: same near, other far edge
    assert not torch.allclose(model.coords(torch.from_numpy(wider)[None].long())[0, 0], first)
    assert small_model().coords is None
    assert not any("coords" in name for name in TRM(load_config("arc1-paper").model, 2).state_dict())


def test_1d_positions_are_the_reference_token_index():
    """The reference numbers the 16 prefix tokens 0-15 and the 30x30 cells 16-915 row by row, and turns
    pair i of a head's dims by index * 10000^(-2i / head_dim)."""
    head_dim, P = 64, 16
    angles = rope_angles(head_dim, 30, P, 10000.0, "1d", "cpu")  # the reference layout
    inv_freq = 10000.0 ** (-torch.arange(0, head_dim, 2).float() / head_dim)
    torch.testing.assert_close(angles, torch.arange(P + 900).float()[:, None] * inv_freq)
    on_10 = rope_angles(head_dim, 10, P, 10000.0, "1d", "cpu")  # a cell keeps its index on a smaller canvas
    torch.testing.assert_close(on_10[P + 3 * 10 + 7], angles[P + 3 * 30 + 7])


def test_the_reference_layout_has_the_reference_parameter_count_and_init():
    """arc1-reference: SwiGLU 1536 wide at hidden 512 and the reference's 6,829,058 dense parameters less
    its unused q_continue output (513); its truncated normals have the asked standard deviation."""
    cfg = load_config("arc1-reference")
    model = TRM(cfg.model, num_puzzles=3)
    assert model.net.blocks[0].mlp.down.in_features == 1536
    dense = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("puzzles."))
    assert dense == 6_828_545
    qkv = model.net.blocks[0].mixer.qkv.weight
    assert qkv.std().item() == pytest.approx(1 / 512 ** 0.5, rel=0.02)
    torch_init = TRM(load_config("arc1-paper").model, num_puzzles=3).net.blocks[0].mixer.qkv.weight
    assert torch_init.std().item() == pytest.approx(0.88 / 512 ** 0.5, rel=0.02)


def test_mlp_mixer_positions_are_absolute_canvas_positions():
    model = small_model("mlp")
    P = model.cfg.prefix_len
    small, large = model.positions(4, "cpu")["index"], model.positions(9, "cpu")["index"]
    for r in range(4):
        for c in range(4):
            assert small[P + r * 4 + c] == large[P + r * 9 + c]
    assert len(set(large.tolist())) == len(large)


def test_halt_head_init_and_zero_puzzle_rows():
    model = small_model()
    assert torch.equal(model.halt_head.weight, torch.zeros_like(model.halt_head.weight))
    assert torch.equal(model.halt_head.bias, torch.tensor([-5.0]))
    assert not model.puzzles.weight.any()
    tokens, ids, y, z = random_inputs(model, 4, 6)
    _, _, _, halt = model(tokens, ids, y, z)
    torch.testing.assert_close(halt, torch.full((4,), -5.0))  # no example halts at the start


@pytest.mark.parametrize("mixer", ["attention", "mlp"])
def test_only_the_last_recursion_has_gradient(mixer):
    model = small_model(mixer)
    n, T = model.cfg.n_latent, model.cfg.n_recursion
    grad_enabled = []
    model.net.register_forward_hook(lambda *_: grad_enabled.append(torch.is_grad_enabled()))
    tokens, ids, y, z = random_inputs(model, 2, 4)
    y_in, z_in = y.clone().requires_grad_(True), z.clone().requires_grad_(True)
    y_out, z_out, logits, halt = model(tokens, ids, y_in, z_in)
    # T recursions of n latent updates and one answer update; only the last recursion records a graph
    assert grad_enabled == [False] * ((T - 1) * (n + 1)) + [True] * (n + 1)
    # the carry handed to the next supervision step is detached
    assert not y_out.requires_grad and not z_out.requires_grad
    assert y_out.grad_fn is None and z_out.grad_fn is None
    (logits.sum() + halt.sum()).backward()
    # the incoming carry only feeds the no-grad recursions, so no gradient reaches it
    assert y_in.grad is None and z_in.grad is None


def test_weight_gradient_equals_one_recursion_from_the_no_grad_state():
    """The gradient of T recursions is exactly that of ONE recursion started from where the T-1
    no-grad recursions left (y, z): nothing flows back through the earlier ones."""
    model = small_model()
    tokens, ids, y, z = random_inputs(model, 2, 5)
    labels = torch.randint(2, VOCAB_SIZE, (2, 25))

    def weight_grads(m, y0, z0):
        m.zero_grad(set_to_none=True)
        _, _, logits, halt = m(tokens, ids, y0, z0)
        loss, _ = step_loss(logits, labels, halt)
        loss.backward()
        return {k: p.grad.clone() for k, p in m.named_parameters() if p.grad is not None}

    full = weight_grads(model, y, z)
    with torch.no_grad():
        x = model.embed_input(tokens, ids)
        pos = model.positions(5, "cpu")
        y1, z1 = y, z
        for _ in range(model.cfg.n_recursion - 1):
            y1, z1 = model.latent_recursion(x, y1, z1, pos)
    model.cfg.n_recursion = 1
    last_only = weight_grads(model, y1, z1)
    assert full.keys() == last_only.keys() and "net.blocks.0.mlp.down.weight" in full
    for k in full:
        torch.testing.assert_close(full[k], last_only[k], rtol=1e-5, atol=1e-7)
    # and with T=1 the incoming carry is on the gradient path, so the check above is not vacuous
    y_in = y.clone().requires_grad_(True)
    _, _, logits, _ = model(tokens, ids, y_in, z)
    logits.sum().backward()
    assert y_in.grad is not None and y_in.grad.abs().sum() > 0


def scripted_halting(model: TRM, halts: torch.Tensor) -> list[int]:
    """Make `model`'s supervision step k (0-based) answer token 2 + k in every cell, with the halt logits
    `halts[:, k]`; returns the list of steps run, filled as they run."""
    steps = []

    def forward(tokens, puzzle_ids, y, z):
        k = len(steps)
        steps.append(k)
        B, S, _ = tokens.shape
        logits = F.one_hot(torch.full((B, S * S), 2 + k), VOCAB_SIZE).float() * 5.0
        return y, z, logits, halts[:, k]

    model.forward = forward
    return steps


def test_stop_on_halt_keeps_every_example_at_its_first_halting_step():
    model = small_model(n_supervision=4)
    tokens, ids, _, _ = random_inputs(model, 4, 3)
    halts = torch.tensor([[-1.0, 2.0, -3.0, 1.0],  # halts at step 1 (and would not at 2: the first one counts)
                          [-1.0, -1.0, 0.5, -1.0],  # step 2
                          [3.0, 3.0, 3.0, 3.0],  # step 0
                          [-1.0, -1.0, 0.0, 0.0]])  # never (0 is not > 0): the last step's answer
    steps = scripted_halting(model, halts)
    prediction, halt_prob, log_probs = model.predict(tokens, ids, stop_on_halt=True)
    kept = [1, 2, 0, 3]
    assert [int(p.unique()) for p in prediction] == [2 + k for k in kept]
    torch.testing.assert_close(halt_prob, torch.sigmoid(halts[torch.arange(4), kept]))
    assert torch.equal(log_probs.argmax(-1), prediction)
    assert steps == [0, 1, 2, 3]  # example 3 never halted: every step ran

    steps = scripted_halting(model, halts[:3])  # all three have halted by step 2: step 3 is not run
    prediction, _, _ = model.predict(tokens[:3], ids[:3], stop_on_halt=True)
    assert steps == [0, 1, 2] and [int(p.unique()) for p in prediction] == [3, 4, 2]

    steps = scripted_halting(model, halts)  # without stop_on_halt: every step, the last one's answer
    prediction, halt_prob, _ = model.predict(tokens, ids)
    assert steps == [0, 1, 2, 3] and (prediction == 5).all()
    torch.testing.assert_close(halt_prob, torch.sigmoid(halts[:, 3]))


def test_puzzle_row_conditions_the_prediction():
    model = small_model()
    tokens, _, y, z = random_inputs(model, 1, 4)
    ids = torch.tensor([1])
    _, _, before, _ = model(tokens, ids, y, z)
    with torch.no_grad():
        model.puzzles.weight[1] = torch.randn(model.cfg.puzzle_dim)
    _, _, after, _ = model(tokens, ids, y, z)
    _, _, other, _ = model(tokens, torch.tensor([2]), y, z)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(before, other)


# ---- loss ----------------------------------------------------------------------------------------------

def crafted_logits(labels: torch.Tensor, wrong: list[tuple[int, int]] = ()) -> torch.Tensor:
    """Logits whose argmax is `labels`, except at the (example, position) pairs in `wrong`."""
    logits = F.one_hot(labels, VOCAB_SIZE).float() * 4.0
    for b, i in wrong:
        logits[b, i] = 0.0
        logits[b, i, (labels[b, i] + 1) % VOCAB_SIZE] = 4.0
    return logits


def test_halt_target_is_the_whole_grid_exactly_right():
    labels = torch.tensor([[2, 3, 1, PAD], [2, 3, 1, PAD], [2, 3, 1, PAD]])
    # example 0: all right; example 1: one cell wrong; example 2: only a PAD cell "wrong" (ignored)
    logits = crafted_logits(labels, wrong=[(1, 1), (2, 3)])
    halt_logits = torch.tensor([0.7, 0.7, -1.3])
    loss, per = step_loss(logits, labels, halt_logits, "softmax", halt_weight=0.5)
    assert per["exact"].tolist() == [True, False, True]
    expected_halt = F.binary_cross_entropy_with_logits(halt_logits, torch.tensor([1.0, 0.0, 1.0]), reduction="none")
    torch.testing.assert_close(per["halt_loss"], expected_halt)
    assert per["halt_correct"].tolist() == [True, False, False]
    torch.testing.assert_close(per["token_accuracy"], torch.tensor([1.0, 2 / 3, 1.0]))
    # the output loss averages over non-PAD cells only, and the total is output + weight * halt
    ce = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none")
    output = (ce * (labels != PAD)).sum(-1) / 3
    torch.testing.assert_close(per["output_loss"], output)
    torch.testing.assert_close(loss, (output + 0.5 * expected_halt).mean())


def test_stablemax_against_its_formula_and_softmax():
    logits = torch.tensor([[[0.0, 1.0, -1.0, 3.0]]])
    s = torch.tensor([1.0, 2.0, 0.5, 4.0])  # x + 1 for x >= 0, 1 / (1 - x) below
    torch.testing.assert_close(log_stablemax(logits)[0, 0], torch.log(s / s.sum()))
    labels = torch.tensor([[3]])
    torch.testing.assert_close(token_losses(logits, labels, "stablemax"), -torch.log(s[3:] / s.sum()).view(1, 1))
    torch.testing.assert_close(token_losses(logits, labels, "softmax"),
                               -F.log_softmax(logits, -1)[..., 3])
    assert not torch.allclose(token_losses(logits, labels, "stablemax"), token_losses(logits, labels, "softmax"))


def margin_loss(kind: str, margin: float, label: int) -> tuple[float, float]:
    """(loss, d loss / d margin) of logits [margin, 0] (float32) for `label`."""
    m = torch.tensor(margin, requires_grad=True)
    loss = token_losses(torch.stack([m, torch.tensor(0.0)]).view(1, 1, 2), torch.tensor([[label]]), kind)[0, 0]
    loss.backward()
    return loss.item(), m.grad.item()


@pytest.mark.parametrize("margin", [10.0, 1e2, 1e4])
def test_a_confident_wrong_answer_costs_the_log_of_its_margin_under_stablemax(margin):
    """Logits [m, 0] with the truth second: s = [m + 1, 1], so stable-max's loss is log(m + 2) and its
    gradient 1 / (m + 2), where softmax's loss grows like m and its gradient stays near 1."""
    loss, grad = margin_loss("stablemax", margin, label=1)
    assert loss == pytest.approx(math.log(margin + 2), rel=1e-6) and grad == pytest.approx(1 / (margin + 2), rel=1e-5)
    loss, grad = margin_loss("softmax", margin, label=1)
    assert loss == pytest.approx(margin, rel=1e-3) and grad == pytest.approx(1.0, rel=1e-3)


def test_stablemax_keeps_a_gradient_where_softmax_collapses():
    """A right answer with margin 40 in float32: softmax's probability rounds to exactly 1, so its loss and
    gradient vanish ("softmax collapse", the reason the reference uses stable-max); stable-max's
    probability (m + 1) / (m + 2) keeps pushing the margin up."""
    loss, grad = margin_loss("softmax", 40.0, label=0)
    assert loss == 0.0 and grad == 0.0
    loss, grad = margin_loss("stablemax", 40.0, label=0)
    assert loss == pytest.approx(math.log(42 / 41), rel=1e-5) and grad == pytest.approx(-1 / (41 * 42), rel=1e-4)


# ---- sparse sign-SGD on puzzle rows --------------------------------------------------------------------

def touched_table(ids: list[int], coeffs: torch.Tensor, table: torch.Tensor) -> PuzzleEmbedding:
    """An embedding holding `table` after one grad-enabled forward on `ids`, loss = sum(rows * coeffs)."""
    emb = PuzzleEmbedding(*table.shape)
    with torch.no_grad():
        emb.weight.copy_(table)
    emb.train()
    (emb(torch.tensor(ids)) * coeffs).sum().backward()
    return emb


def test_sparse_sign_sgd_updates_only_touched_rows_with_decoupled_decay():
    torch.manual_seed(0)
    table = torch.randn(6, 4)
    ids = [1, 3, 3, 4]
    coeffs = torch.tensor([[1.0, -2.0, 0.5, 0.0],
                           [1.0, 1.0, 1.0, 1.0],
                           [-3.0, 1.0, 1.0, -2.0],  # row 3 again: gradients add BEFORE the sign
                           [0.0, 0.0, 0.0, 0.0]])  # row 4 touched with zero gradient: decay only
    emb = touched_table(ids, coeffs, table)
    lr, wd = 0.01, 0.1
    sparse_sign_sgd(emb, lr, wd)
    expected = table.clone()
    expected[1] = table[1] * (1 - lr * wd) - lr * torch.tensor([1.0, -1.0, 1.0, 0.0])
    expected[3] = table[3] * (1 - lr * wd) - lr * torch.tensor([-1.0, 1.0, 1.0, -1.0])
    expected[4] = table[4] * (1 - lr * wd)
    torch.testing.assert_close(emb.weight.data, expected)
    assert torch.equal(emb.weight[[0, 2, 5]], table[[0, 2, 5]])  # untouched rows: not even decayed
    assert emb.batch is None  # consumed: a second call changes nothing
    sparse_sign_sgd(emb, lr, wd)
    torch.testing.assert_close(emb.weight.data, expected)


def test_sparse_sign_sgd_over_two_processes_equals_one_batch():
    torch.manual_seed(1)
    table = torch.randn(7, 5)
    ids = [2, 5, 2, 6, 1, 5]
    coeffs = torch.randn(6, 5)
    one = touched_table(ids, coeffs, table)
    sparse_sign_sgd(one, 0.05, 0.1)
    halves = [touched_table(ids[:3], coeffs[:3], table), touched_table(ids[3:], coeffs[3:], table)]
    # what each half would contribute to accelerator.gather: its ids, then its row gradients
    contributions = [[h.batch[0], h.batch[1].grad] for h in halves]
    for rank, half in enumerate(halves):
        other = list(contributions[1 - rank])

        def gather(t, rank=rank, other=other):
            return torch.cat([t, other.pop(0)] if rank == 0 else [other.pop(0), t])

        sparse_sign_sgd(half, 0.05, 0.1, gather)
        torch.testing.assert_close(half.weight.data, one.weight.data)
