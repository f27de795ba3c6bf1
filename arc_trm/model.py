"""The Tiny Recursive Model (TRM) for ARC grids.

Architecture choices (paper: "Less is More: Recursive Reasoning with Tiny Networks"):
- three states: x, the embedded question (puzzle prefix + canvas tokens); y, the embedded answer;
  z, the latent reasoning state. y and z start from fixed random vectors.
- ONE small network `net` (2 post-norm blocks) does both updates; whether x is in its input tells it
  which: n times z = net(x + y + z), then y = net(y + z) (`latent_recursion`).
- `deep_recursion` runs T such recursions, T-1 of them without gradient, and returns the carry (y, z)
  detached, so each supervision step back-propagates through exactly one full recursion.
- blocks: non-causal attention through scaled_dot_product_attention (or an MLP over token positions),
  SwiGLU MLP, RMSNorm after each residual add (post-norm), no biases.
- positions: 2-D rotary embeddings, half of each head's dims rotated by the row and half by the column,
  so a cell means the same on any canvas size (`positions="1d"`: the reference's rotary over the token
  index of the prefix + 30x30 canvas, a cell at row r, column c being token P + 30 r + c on any canvas).
- task conditioning: one learned row per puzzle (task x view), zero-initialised, padded and reshaped
  into `prefix_len` prefix tokens. The table is sized by the number of puzzles and is updated sparsely
  by sign-SGD (see `sparse_sign_sgd`), never by the dense optimizer.
- grid coordinates (`grid_coords`, off in the paper's configs): each cell's row and column counted from
  the input grid's edges, as embeddings added to its token's (see `GridCoordinates`).
- heads: output head over the 12 tokens; halt head on the first prefix position, one logit per example,
  weight zero and bias -5 at init so early steps never halt.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from arc_trm.config import ModelConfig
from arc_trm.encoding import COLOUR0, VOCAB_SIZE
from arc_trm.tasks import MAX_SIDE


def rope_angles(head_dim: int, side: int, prefix_len: int, theta: float, positions: str, device) -> torch.Tensor:
    """The rotation angle of each rotated pair of dims, (prefix_len + side*side, head_dim/2), for the
    tokens of a side x side canvas (row-major after the prefix).

    "2d": the first half of the pairs turn with the row, the second half with the column; prefix token p
    sits at row = column = -(p + 1), away from every cell. "1d" (the reference): every pair turns with the
    token's index on the reference layout, p for prefix token p and P + 30 r + c for the cell (r, c).
    """
    cells = torch.arange(side, device=device, dtype=torch.float32)
    rows, cols = cells.repeat_interleave(side), cells.repeat(side)  # (S*S,) each
    prefix = torch.arange(prefix_len, device=device, dtype=torch.float32)
    if positions == "1d":
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
        index = torch.cat([prefix, prefix_len + MAX_SIDE * rows + cols])  # (L,)
        return index[:, None] * inv_freq
    quarter = head_dim // 4
    inv_freq = 1.0 / (theta ** (torch.arange(quarter, device=device, dtype=torch.float32) / quarter))
    rows, cols = torch.cat([-(prefix + 1), rows]), torch.cat([-(prefix + 1), cols])  # (L,) each
    return torch.cat([rows[:, None] * inv_freq, cols[:, None] * inv_freq], dim=-1)


def rope_complex(head_dim: int, side: int, prefix_len: int, theta: float, positions: str, device) -> torch.Tensor:
    """The rotations of `rope_angles` as unit complex numbers (L, 1, head_dim/2): pair i turns by angle i."""
    angles = rope_angles(head_dim, side, prefix_len, theta, positions, device)
    return torch.complex(angles.cos(), angles.sin()).unsqueeze(1)


TRUNCATED_STD = 0.8796  # the standard deviation of a standard normal truncated to [-2, 2]


def trunc_normal_(w: torch.Tensor, std: float, exact: bool = False) -> torch.Tensor:
    """A normal truncated to two standard deviations. nn.init's `std` is that of the normal before the
    cut, so the values' true std is 0.88 std; `exact` (the reference's init) scales it to be std."""
    if exact:
        std = std / TRUNCATED_STD
    return nn.init.trunc_normal_(w, std=std, a=-2 * std, b=2 * std)


class GridCoordinates(nn.Module):
    """Each cell's row and column counted from the input grid's edges, as learned embeddings (added to the
    cell's token embedding when `grid_coords` is on; not in the paper).

    Rotary positions are relative: attention scores see only the offset between two cells, so a mirror
    (cell c of a row of width w reads cell w - 1 - c), a rotation or a tiling, whose offset depends on
    where the cell sits in the grid, must first be worked out from the edges. Here every cell is told:
    its distance from the input grid's first row and column ("near", PAD cells before the grid share one
    index) and from its last row and column ("far", negative past them, where a larger output extends).
    The input grid is found on the canvas as the bounding box of its colour tokens, so the embeddings
    follow the grid wherever training places it.
    """

    def __init__(self, hidden: int):
        super().__init__()
        self.near = nn.Embedding(2 * (MAX_SIDE + 1), hidden)  # rows, then columns: index 0 = before the grid
        self.far = nn.Embedding(2 * 2 * MAX_SIDE, hidden)  # rows, then columns: distance to the last one

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, S*S, D) for input canvases (B, S, S)."""
        B, S, _ = tokens.shape
        colour = tokens >= COLOUR0  # (B, S, S)
        cells = torch.arange(S, device=tokens.device)
        parts = []
        for axis, occupied in enumerate((colour.any(2), colour.any(1))):  # (B, S) rows, then columns
            first = occupied.int().argmax(1, keepdim=True)  # (B, 1)
            last = S - 1 - occupied.flip(1).int().argmax(1, keepdim=True)  # (B, 1)
            near = (cells - first).clamp(-1, MAX_SIDE - 1) + 1 + axis * (MAX_SIDE + 1)  # (B, S)
            far = (last - cells).clamp(-MAX_SIDE, MAX_SIDE - 1) + MAX_SIDE + axis * 2 * MAX_SIDE  # (B, S)
            parts.append(self.near(near) + self.far(far))  # (B, S, D)
        rows, cols = parts
        return (rows[:, :, None] + cols[:, None, :]).view(B, S * S, -1)


class Attention(nn.Module):
    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden, bias=False)
        self.out = nn.Linear(hidden, hidden, bias=False)
        # The projection reads q's and k's rows in pair order (i, i + hd/2 adjacent), so each rotated
        # pair is one complex number and the rotation is one complex multiply, not the cat/neg/mul/add
        # of rotate_half (those were most of the CPU time at small widths). The same reordering of
        # q's and k's dims leaves q.k, hence attention, unchanged; the weights keep their layout.
        hd = hidden // heads
        pair = torch.stack([torch.arange(hd // 2), torch.arange(hd // 2) + hd // 2], dim=-1).flatten()  # (hd,)
        qk_rows = (torch.arange(2 * heads)[:, None] * hd + pair).flatten()  # (2D,)
        self.register_buffer("order", torch.cat([qk_rows, torch.arange(2 * hidden, 3 * hidden)]), persistent=False)

    def forward(self, h: torch.Tensor, pos: dict) -> torch.Tensor:
        B, L, D = h.shape
        nh, hd = self.heads, D // self.heads
        qk, v = F.linear(h, self.qkv.weight[self.order]).split([2 * D, D], dim=-1)  # (B, L, 2D), (B, L, D)
        qk = torch.view_as_complex(qk.float().reshape(B, L, 2 * nh, hd // 2, 2)) * pos["rope"]  # (B, L, 2nh, hd/2)
        q, k = torch.view_as_real(qk).to(v.dtype).view(B, L, 2, nh, hd).permute(2, 0, 3, 1, 4)  # (B, nh, L, hd)
        o = F.scaled_dot_product_attention(q, k, v.view(B, L, nh, hd).transpose(1, 2))  # (B, nh, L, hd)
        return self.out(o.transpose(1, 2).reshape(B, L, D))


class TokenMLP(nn.Module):
    """The MLP token mixer: a SwiGLU across token positions instead of attention.

    Its weights are indexed by absolute position in the largest canvas (prefix + 30x30), and a batch
    uses the rows of the positions its canvas has, so the mixer too works on any canvas size.
    """

    def __init__(self, prefix_len: int):
        super().__init__()
        self.max_len = prefix_len + MAX_SIDE * MAX_SIDE
        self.up = nn.Parameter(torch.empty(self.max_len, 2 * self.max_len))  # (positions, 2 * width)
        self.down = nn.Parameter(torch.empty(self.max_len, self.max_len))  # (width, positions)

    def forward(self, h: torch.Tensor, pos: dict) -> torch.Tensor:
        index = pos["index"]  # (L,) absolute positions of this canvas's tokens
        gate, up = torch.einsum("bld,lw->bwd", h, self.up[index]).chunk(2, dim=1)  # (B, width, D) each
        return torch.einsum("bwd,wl->bld", F.silu(gate) * up, self.down[:, index])


class SwiGLU(nn.Module):
    def __init__(self, hidden: int, expansion: float, multiple: int):
        super().__init__()
        inner = multiple * math.ceil(round(expansion * hidden * 2 / 3) / multiple)  # 2/3: a 4x MLP's parameters
        self.gate_up = nn.Linear(hidden, 2 * inner, bias=False)
        self.down = nn.Linear(inner, hidden, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(h).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.mixer = Attention(cfg.hidden, cfg.heads) if cfg.mixer == "attention" else TokenMLP(cfg.prefix_len)
        self.mlp = SwiGLU(cfg.hidden, cfg.expansion, cfg.mlp_multiple)
        self.eps = cfg.norm_eps

    def forward(self, h: torch.Tensor, pos: dict) -> torch.Tensor:
        h = F.rms_norm(h + self.mixer(h, pos), h.shape[-1:], eps=self.eps)  # post-norm, as the reference
        return F.rms_norm(h + self.mlp(h), h.shape[-1:], eps=self.eps)


class Net(nn.Module):
    """The one network used for both the latent update and the answer update."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))

    def forward(self, h: torch.Tensor, injection: torch.Tensor, pos: dict) -> torch.Tensor:
        h = h + injection
        for block in self.blocks:
            h = block(h, pos)
        return h


class PuzzleEmbedding(nn.Module):
    """One learned row per puzzle (task x view); row 0 is the blank puzzle.

    The table is a parameter without gradient: a forward pass copies the batch's rows into a leaf
    tensor that does get a gradient, and `sparse_sign_sgd` then updates only those rows.
    """

    def __init__(self, num_puzzles: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(num_puzzles, dim), requires_grad=False)
        self.batch: tuple[torch.Tensor, torch.Tensor] | None = None  # (ids, rows) of the last grad-enabled forward

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = self.weight[ids]  # (B, dim), a copy
        if self.training and torch.is_grad_enabled():
            rows.requires_grad_(True)
            self.batch = (ids, rows)
        return rows


@torch.no_grad()
def sparse_sign_sgd(emb: PuzzleEmbedding, lr: float, weight_decay: float, gather=lambda t: t) -> None:
    """Sign-SGD with decoupled weight decay on the rows the last batch touched (as the reference).

    `gather` concatenates a tensor across processes (accelerator.gather); every process then applies
    the same update to its copy of the table, which therefore stays identical everywhere, and a run on
    k processes updates exactly like one process with the same global batch.
    """
    if emb.batch is None:
        return
    ids, rows = emb.batch
    emb.batch = None
    grad = rows.grad if rows.grad is not None else torch.zeros_like(rows)
    ids, grad = gather(ids), gather(grad.float())
    unique, inverse = ids.unique(return_inverse=True)
    summed = torch.zeros(len(unique), grad.shape[1], device=grad.device).index_add_(0, inverse, grad)
    w = emb.weight[unique]
    emb.weight[unique] = w * (1 - lr * weight_decay) - lr * summed.sign()


class TRM(nn.Module):
    def __init__(self, cfg: ModelConfig, num_puzzles: int):
        super().__init__()
        self.cfg = cfg
        D = cfg.hidden
        self.embed_scale = math.sqrt(D)
        self.embed = nn.Embedding(VOCAB_SIZE, D)
        self.coords = GridCoordinates(D) if cfg.grid_coords else None
        self.puzzles = PuzzleEmbedding(num_puzzles, cfg.puzzle_dim)
        self.net = Net(cfg)
        self.output_head = nn.Linear(D, VOCAB_SIZE, bias=False)
        self.halt_head = nn.Linear(D, 1, bias=True)
        self.register_buffer("y_init", torch.empty(D))
        self.register_buffer("z_init", torch.empty(D))
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """Every initialisation in one place: truncated LeCun normals, as the reference."""
        D, exact = self.cfg.hidden, self.cfg.init == "reference"
        trunc_normal_(self.embed.weight, 1 / math.sqrt(D), exact)
        if self.coords is not None:  # four terms add up per cell: each a quarter of a token's variance
            trunc_normal_(self.coords.near.weight, 0.5 / math.sqrt(D), exact)
            trunc_normal_(self.coords.far.weight, 0.5 / math.sqrt(D), exact)
        for module in self.net.modules():
            if isinstance(module, nn.Linear):
                trunc_normal_(module.weight, 1 / math.sqrt(module.in_features), exact)
            elif isinstance(module, TokenMLP):  # both contract over their first dimension
                trunc_normal_(module.up, 1 / math.sqrt(module.up.shape[0]), exact)
                trunc_normal_(module.down, 1 / math.sqrt(module.down.shape[0]), exact)
        trunc_normal_(self.output_head.weight, 1 / math.sqrt(D), exact)
        self.halt_head.weight.zero_()
        self.halt_head.bias.fill_(-5.0)  # start far from halting
        trunc_normal_(self.y_init, 1.0, exact)
        trunc_normal_(self.z_init, 1.0, exact)
        self.puzzles.weight.zero_()

    def positions(self, side: int, device) -> dict:
        cfg = self.cfg
        pos = {}
        if cfg.mixer == "attention":
            pos["rope"] = rope_complex(cfg.hidden // cfg.heads, side, cfg.prefix_len, cfg.rope_theta, cfg.positions,
                                       device)
        else:
            cells = torch.arange(side, device=device)
            grid_index = (cells[:, None] * MAX_SIDE + cells[None, :]).flatten() + cfg.prefix_len
            pos["index"] = torch.cat([torch.arange(cfg.prefix_len, device=device), grid_index])
        return pos

    def embed_input(self, tokens: torch.Tensor, puzzle_ids: torch.Tensor) -> torch.Tensor:
        """x: (B, P + S*S, D) from canvas tokens (B, S, S) and puzzle ids (B,)."""
        B = tokens.shape[0]
        P, D = self.cfg.prefix_len, self.cfg.hidden
        cells = self.embed(tokens.flatten(1).long())  # (B, S*S, D)
        if self.coords is not None:
            cells = cells + self.coords(tokens)
        rows = self.puzzles(puzzle_ids)  # (B, puzzle_dim)
        prefix = F.pad(rows, (0, P * D - rows.shape[1])).view(B, P, D).to(cells.dtype)
        return self.embed_scale * torch.cat([prefix, cells], dim=1)

    def initial_carry(self, batch_size: int, side: int) -> tuple[torch.Tensor, torch.Tensor]:
        L = self.cfg.prefix_len + side * side
        y = self.y_init.expand(batch_size, L, -1).clone()  # (B, L, D)
        z = self.z_init.expand(batch_size, L, -1).clone()  # (B, L, D)
        return y, z

    def latent_recursion(self, x, y, z, pos):
        xy = x + y  # fixed during the n latent updates
        for _ in range(self.cfg.n_latent):  # n in paper
            z = self.net(z, xy, pos)  # with x: refine the latent reasoning
        y = self.net(y, z, pos)  # without x: update the answer from the latent
        return y, z

    def deep_recursion(self, x, y, z, pos):
        # T-1 recursions without gradient improve (y, z) cheaply; the last one carries the gradient
        # (full back-propagation through one recursion, no fixed-point approximation).
        with torch.no_grad():
            for _ in range(self.cfg.n_recursion - 1):  # T in paper
                y, z = self.latent_recursion(x, y, z, pos)
        return self.latent_recursion(x, y, z, pos)

    def forward(self, tokens: torch.Tensor, puzzle_ids: torch.Tensor, y: torch.Tensor, z: torch.Tensor):
        """One supervision step. tokens (B, S, S), puzzle_ids (B,), carry y, z (B, P + S*S, D).

        Returns the carry detached (deep supervision: no gradient flows between steps), the output
        logits (B, S*S, 12) and the halt logits (B,).
        """
        B, S, _ = tokens.shape
        P = self.cfg.prefix_len
        assert y.shape == z.shape == (B, P + S * S, self.cfg.hidden), \
            f"carry {tuple(y.shape)} does not fit tokens {tuple(tokens.shape)} with prefix {P}"
        pos = self.positions(S, tokens.device)
        x = self.embed_input(tokens, puzzle_ids)
        y, z = self.deep_recursion(x, y.to(x.dtype), z.to(x.dtype), pos)
        logits = self.output_head(y[:, P:])  # (B, S*S, 12)
        halt_logits = self.halt_head(y[:, 0]).squeeze(-1)  # (B,)
        return y.detach(), z.detach(), logits, halt_logits

    @torch.no_grad()
    def predict(self, tokens: torch.Tensor, puzzle_ids: torch.Tensor, stop_on_halt: bool = False):
        """Run all N_sup supervision steps (evaluation keeps batches uniform) from a fresh carry.

        Returns the predicted canvas (B, S, S), the halt probability (B,) and the output log-probabilities
        (B, S, S, 12) of the last step; with `stop_on_halt`, each example keeps those of the first step
        whose halt logit was > 0 (and the loop ends once every example has halted).
        """
        B, S, _ = tokens.shape
        y, z = self.initial_carry(B, S)
        y, z = y.to(tokens.device), z.to(tokens.device)
        log_probs = torch.zeros(B, S * S, VOCAB_SIZE, device=tokens.device)
        halt_prob = torch.zeros(B, device=tokens.device)
        done = torch.zeros(B, dtype=torch.bool, device=tokens.device)
        for _ in range(self.cfg.n_supervision):  # N_sup in paper
            y, z, logits, halt_logits = self(tokens, puzzle_ids, y, z)
            keep = ~done
            log_probs[keep] = torch.log_softmax(logits.float(), dim=-1)[keep]
            halt_prob[keep] = torch.sigmoid(halt_logits.float())[keep]
            if stop_on_halt:
                done |= halt_logits > 0
                if done.all():
                    break
        return log_probs.argmax(-1).view(B, S, S), halt_prob, log_probs.view(B, S, S, VOCAB_SIZE)
