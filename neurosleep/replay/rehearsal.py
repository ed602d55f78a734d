"""Experience replay / rehearsal: a class-balanced buffer of stored training samples.

After each task, ``per_class`` samples (or ``fraction`` of each new class's training samples,
at least one) of every class not yet stored are drawn at random and kept. ``mode: batch``
replays a batch drawn from the buffer at every step (loss ``(1/k)·current + (1 − 1/k)·replay``,
van de Ven et al.); ``mode: concat`` appends the buffer to the next task's training set (how
Tadros et al. 2022 mix 0.75 % of old data into new training before SRA).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator

from neurosleep.replay import ReplayMethod, ReplayParams, ReplayStrategy, corrupt_labels, register


class RehearsalParams(ReplayParams):
    """``replay: {kind: rehearsal, ...}``."""

    kind: Literal["rehearsal"] = "rehearsal"
    per_class: int | None = Field(None, ge=1, description="samples kept per class")
    fraction: float | None = Field(
        None, gt=0, le=1, description="or: this fraction of each class's training samples"
    )
    mode: Literal["batch", "concat"] = "batch"

    @model_validator(mode="after")
    def _budget(self) -> RehearsalParams:
        if (self.per_class is None) == (self.fraction is None):
            raise ValueError("give exactly one of 'per_class' and 'fraction'")
        return self


class Rehearsal(ReplayStrategy):
    """The buffer: ``x`` [stored × feature] and labels ``y``, balanced over stored classes."""

    params: RehearsalParams

    def __init__(self, params, context) -> None:
        super().__init__(params, context)
        self.x = torch.empty(0, device=context.device)
        self.y = torch.empty(0, dtype=torch.long, device=context.device)

    def _labels(self) -> torch.Tensor:
        p, c = self.params, self.context
        return corrupt_labels(self.y, p.corrupt_labels, c.n_outputs, c.generator)

    def training_set(self, x, y, task):
        if self.params.mode == "concat" and self.y.numel():
            return torch.cat([x, self.x]), torch.cat([y, self._labels()])
        return x, y

    def replay_batch(self, size, task):
        if self.params.mode != "batch" or self.y.numel() == 0:
            return None
        g = self.context.generator
        idx = torch.randint(0, self.y.numel(), (size,), generator=g, device=self.y.device)
        return self.x[idx], self._labels()[idx]

    def end_task(self, net, x, y, task) -> None:
        stored = set(self.y.tolist())
        xs, ys = [self.x.reshape(-1, x.shape[1])], [self.y]
        for c in sorted(set(y.tolist()) - stored):
            members = torch.nonzero(y == c).squeeze(1)
            n = self.params.per_class or max(1, round(self.params.fraction * members.numel()))
            order = torch.randperm(
                members.numel(), generator=self.context.generator, device=members.device
            )
            keep = members[order[:n]]
            xs.append(x[keep])
            ys.append(y[keep])
        self.x, self.y = torch.cat(xs), torch.cat(ys)


register(ReplayMethod("rehearsal", RehearsalParams, Rehearsal, "class-balanced exemplar buffer"))
