"""Losses and metrics for one supervision step.

The output loss is cross-entropy over the canvas tokens of the target (PAD cells are ignored), either
with the reference's stable-max (s(x) = x + 1 for x >= 0, 1 / (1 - x) below, normalised like softmax;
computed in float64) or an ordinary softmax. The halt head learns, by binary cross-entropy, whether
the whole predicted grid is already exactly right. There is no "continue" loss (the paper drops it).
"""

import torch
import torch.nn.functional as F

from arc_trm.encoding import PAD


def log_stablemax(logits: torch.Tensor) -> torch.Tensor:
    s = torch.where(logits >= 0, logits + 1, 1 / (1 - logits))
    return torch.log(s / s.sum(dim=-1, keepdim=True))


def token_losses(logits: torch.Tensor, labels: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-token loss (B, L) for logits (B, L, V) and labels (B, L)."""
    if kind == "stablemax":
        logprobs = log_stablemax(logits.double())
        return -logprobs.gather(-1, labels.unsqueeze(-1)).squeeze(-1).float()
    return F.cross_entropy(logits.float().transpose(1, 2), labels, reduction="none")


def step_loss(logits: torch.Tensor, labels: torch.Tensor, halt_logits: torch.Tensor, kind: str = "stablemax",
              halt_weight: float = 0.5) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Loss of one supervision step, mean over the batch, and per-example results.

    logits (B, L, 12), labels (B, L) canvas tokens, halt_logits (B,). Each example's output loss is the
    mean over its non-PAD cells, so large and small grids weigh the same.
    """
    mask = labels != PAD  # (B, L)
    counts = mask.sum(-1).clamp(min=1)  # (B,)
    per_token = token_losses(logits, labels, kind) * mask
    output_loss = per_token.sum(-1) / counts  # (B,)
    correct_tokens = (logits.argmax(-1) == labels) & mask  # (B, L)
    exact = correct_tokens.sum(-1) == mask.sum(-1)  # (B,) the whole grid right
    halt_loss = F.binary_cross_entropy_with_logits(halt_logits.float(), exact.float(), reduction="none")
    loss = (output_loss + halt_weight * halt_loss).mean()
    per_example = {
        "output_loss": output_loss.detach(),
        "halt_loss": halt_loss.detach(),
        "token_accuracy": correct_tokens.sum(-1) / counts,
        "exact": exact,
        "halt_correct": (halt_logits > 0) == exact,
    }
    return loss, per_example
