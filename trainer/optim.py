"""Optimizers and the learning-rate schedule."""

from __future__ import annotations

import torch


def lr_at(step: int, *, lr: float, warmup: int, steps: int, power: float = 1.0, min_lr: float = 0.0) -> float:
    """Learning rate of (0-based) ``step``: BERT's warmup then polynomial decay."""
    # 1) linear warmup from lr/warmup to lr over the first `warmup` steps
    if step < warmup:
        return lr * (step + 1) / warmup
    # 2) polynomial decay (power 1: linear, BERT; 0.5: the usual LAMB choice) to min_lr at `steps`
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    return min_lr + (lr - min_lr) * (1.0 - progress) ** power


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices and embeddings; not biases or LayerNorm weights (as BERT does)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class Lamb(torch.optim.Optimizer):
    """LAMB (You et al. 2019): Adam's update scaled per tensor by ||w|| / ||update||.

    The trust ratio lets large batches (32k+) train with a single learning rate. The step works on
    all tensors of a group at once (``torch._foreach_*``: a few multi-tensor kernels on a GPU
    instead of ~10 small ones per parameter) and the ratio stays a tensor, so the step never
    waits for the host.
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-6, weight_decay: float = 0.01):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            for p in params:
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
            m = [self.state[p]["exp_avg"] for p in params]
            v = [self.state[p]["exp_avg_sq"] for p in params]
            steps = [self.state[p]["step"] for p in params]
            torch._foreach_mul_(m, beta1)
            torch._foreach_add_(m, grads, alpha=1 - beta1)
            torch._foreach_mul_(v, beta2)
            torch._foreach_addcmul_(v, grads, grads, value=1 - beta2)
            # update = (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps) [+ wd * w]
            denom = torch._foreach_div(v, [1 - beta2**t for t in steps])
            torch._foreach_sqrt_(denom)
            torch._foreach_add_(denom, group["eps"])
            update = torch._foreach_div(m, [1 - beta1**t for t in steps])
            torch._foreach_div_(update, denom)
            if group["weight_decay"]:
                torch._foreach_add_(update, params, alpha=group["weight_decay"])
            w_norms, u_norms = torch._foreach_norm(params), torch._foreach_norm(update)
            trust = [
                torch.where((w > 0) & (u > 0), w / u, torch.ones_like(w)) for w, u in zip(w_norms, u_norms, strict=True)
            ]
            torch._foreach_mul_(update, trust)
            torch._foreach_add_(params, update, alpha=-group["lr"])
        return loss


def make_optimizer(
    model: torch.nn.Module, name: str, *, lr: float, weight_decay: float, fused: bool
) -> torch.optim.Optimizer:
    """AdamW (``fused``: one kernel for all tensors; torch has it on CUDA and CPU) or LAMB."""
    groups = param_groups(model, weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-6, fused=fused or None)
    if name == "lamb":
        return Lamb(groups, lr=lr, betas=(0.9, 0.999), eps=1e-6)
    raise ValueError(f"unknown optimizer {name!r}; choose adamw or lamb")
