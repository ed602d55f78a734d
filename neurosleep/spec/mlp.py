"""Multilayer perceptron spec (``kind: mlp``) for the conventional-network experiments.

Dropout has two conventions. ``inverted`` (PyTorch's): kept units are scaled by 1/(1 − p) while
training, nothing at test time. ``scaled`` (the DeepLearnToolbox used by the SRA paper's
MATLAB code): kept units are not rescaled while training, and hidden activations are multiplied
by (1 − p) at test time — which is what data-based normalisation for SRA sees.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from neurosleep.spec import MODEL_KINDS, Spec


@MODEL_KINDS.register("mlp")
class MLPSpec(Spec):
    """``kind: mlp``: fully connected layers, input first, output last."""

    kind: Literal["mlp"] = "mlp"
    layers: list[int] = Field(
        min_length=2, description="units per layer, input first, e.g. [784, 1200, 1200, 10]"
    )
    activation: Literal["relu", "sigmoid", "tanh"] = Field(
        "relu", description="hidden-layer nonlinearity"
    )
    output: Literal["relu", "linear"] = Field(
        "linear",
        description="output nonlinearity: 'relu' as the SRA paper's toolbox, 'linear' logits",
    )
    bias: bool = Field(True, description="biases on every layer (SRA needs bias: false)")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout probability of hidden units")
    dropout_style: Literal["inverted", "scaled"] = Field(
        "inverted", description="'inverted' (PyTorch) or 'scaled' (×(1 − p) at test time)"
    )
    init: Literal["uniform", "kaiming_uniform", "xavier_uniform"] = Field(
        "kaiming_uniform", description="weight initialisation"
    )
    init_scale: float = Field(
        0.01, gt=0, description="'uniform': weights drawn from U(−init_scale, +init_scale)"
    )

    @model_validator(mode="after")
    def _positive_sizes(self) -> MLPSpec:
        if any(n < 1 for n in self.layers):
            raise ValueError(f"layer sizes must be positive, got {self.layers}")
        return self

    @property
    def n_inputs(self) -> int:
        return self.layers[0]

    @property
    def n_outputs(self) -> int:
        return self.layers[-1]
