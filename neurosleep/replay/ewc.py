"""Elastic weight consolidation (Kirkpatrick et al. 2017), one penalty per finished task.

After task t the diagonal Fisher information ``F_t`` is estimated on ``fisher_samples`` training
samples, one at a time, with the label drawn from the model's own predictive distribution (the
"true" Fisher, as van de Ven et al.), and the parameters ``θ*_t`` are stored. Training later
tasks adds ``(λ/2)·Σ_t Σ_i F_t,i (θ_i − θ*_t,i)²``. Not a replay method: nothing is replayed,
which is why it does little in class-incremental learning (van de Ven & Tolias 2019: ≈20 %).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from neurosleep.replay import ReplayMethod, ReplayParams, ReplayStrategy, register


class EWCParams(ReplayParams):
    """``replay: {kind: ewc, ...}``."""

    kind: Literal["ewc"] = "ewc"
    strength: float = Field(1e9, ge=0, description="λ (van de Ven's class-IL value: 1e9)")
    fisher_samples: int = Field(200, ge=1, description="samples for the Fisher estimate")


class EWC(ReplayStrategy):
    params: EWCParams

    def __init__(self, params, context) -> None:
        super().__init__(params, context)
        self.anchors: list[tuple[list[torch.Tensor], list[torch.Tensor]]] = []  # (F, θ*) per task

    def penalty(self, net):
        if not self.anchors:
            return None
        total = 0.0
        for fisher, theta in self.anchors:
            for f, t, p in zip(fisher, theta, net.parameters(), strict=True):
                total = total + (f * (p - t).pow(2)).sum()
        return 0.5 * self.params.strength * total

    def end_task(self, net, x, y, task) -> None:
        g = self.context.generator
        params = list(net.parameters())
        fisher = [torch.zeros_like(p) for p in params]
        n = min(self.params.fisher_samples, x.shape[0])
        pick = torch.randperm(x.shape[0], generator=g, device=x.device)[:n]
        net.eval()
        for i in pick:
            z, _ = net.forward_pre(x[i : i + 1])
            log_p = F.log_softmax(z, dim=1)
            label = torch.multinomial(log_p.exp().detach(), 1, generator=g).squeeze(1)
            grads = torch.autograd.grad(F.nll_loss(log_p, label), params)
            for f, gr in zip(fisher, grads, strict=True):
                f += gr.detach().pow(2) / n
        self.anchors.append((fisher, [p.detach().clone() for p in params]))


register(ReplayMethod("ewc", EWCParams, EWC, "elastic weight consolidation (diagonal Fisher)"))
