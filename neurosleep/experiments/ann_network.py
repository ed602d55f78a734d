"""The torch MLP of an ``mlp`` spec, its wake losses, and one optimisation step.

Losses (``wake: {loss: ...}``), looked up in :data:`LOSSES`:

- ``squared_error``: the SRA paper's toolbox (DeepLearnToolbox). Reported value
  ``L = ½·Σ e²/m`` with ``e = y_onehot − a``; the gradient at the output pre-activation is
  ``d = −e`` whatever the output nonlinearity (the toolbox skips the ReLU derivative there).
- ``cross_entropy``: softmax cross-entropy on the output pre-activation (named variant).

Both take the output pre-activation ``z`` and the output ``a`` [batch × units] and either integer
targets [batch] or soft targets [batch × units] (replayed outputs of a previous model).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.sgd import sgd as torch_sgd

from neurosleep.registry import Registry
from neurosleep.spec.mlp import MLPSpec

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "linear": lambda z: z,
}
INPLACE: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {  # the same, on their argument
    "relu": torch.relu_,
    "sigmoid": torch.sigmoid_,
    "tanh": torch.tanh_,
    "linear": lambda z: z,
}


class MLP(nn.Module):
    """Fully connected network built from an :class:`MLPSpec` (weights [out × in]).

    Created on ``device`` and initialised with ``generator`` (a generator of that device).
    """

    def __init__(
        self, spec: MLPSpec, generator: torch.Generator | None = None, device: str = "cpu"
    ) -> None:
        super().__init__()
        self.spec = spec
        sizes = spec.layers
        self.linears = nn.ModuleList(
            nn.Linear(n_in, n_out, bias=spec.bias, device=device)
            for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=False)
        )
        with torch.no_grad():
            for linear in self.linears:
                _initialise(linear, spec, generator)

    @property
    def weights(self) -> list[torch.Tensor]:
        return [linear.weight for linear in self.linears]

    def forward_pre(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Output pre-activation ``z`` and output ``a``; dropout per the spec's style. With
        gradients on the CPU and ReLU hidden units, a layer's backward computes the input
        gradient only of the units the ReLU before it let through (:class:`_LiveInputLinear`)."""
        spec = self.spec
        hidden = ACTIVATIONS[spec.activation]
        live = None  # indices of the units of x whose gradient matters; None: all
        for linear in self.linears[:-1]:
            x = hidden(_linear(linear, x, live))
            live = _live_units(x) if _skips_dead(spec, x) else None
            if spec.dropout > 0:
                x = _dropout(x, spec.dropout, spec.dropout_style, self.training)
        z = _linear(self.linears[-1], x, live)
        return z, ACTIVATIONS[spec.output](z)

    def forward(self, x: torch.Tensor, pre: bool = False):
        """The output ``a`` [sample × output]; with ``pre``, ``(z, a)`` as :meth:`forward_pre`."""
        return self.forward_pre(x) if pre else self.forward_pre(x)[1]

    def forward_with(
        self, weights: Sequence[torch.Tensor], x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z, a)`` of :meth:`forward_pre` with ``weights`` [out × in] in place of the layer
        weights (differentiable with respect to them), in the network's current mode."""
        params = {f"linears.{i}.weight": w for i, w in enumerate(weights)}
        return torch.func.functional_call(self, params, (x,), {"pre": True})

    @torch.no_grad()
    def activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Test-mode activations of every non-input layer (for data-based normalisation), each
        layer's nonlinearity and test-mode dropout scaling done in place on its product (the
        same numbers, no copies of [sample × unit] arrays)."""
        spec = self.spec
        out = []
        for i, linear in enumerate(self.linears):
            last = i == len(self.linears) - 1
            x = INPLACE[spec.output if last else spec.activation](linear(x))
            if not last and spec.dropout > 0:
                x = _dropout(x, spec.dropout, spec.dropout_style, False, scale_inplace=True)
            out.append(x)
        return out


class _LiveInputLinear(torch.autograd.Function):
    """``F.linear(x, weight)`` (no bias) whose backward computes the gradient with respect to
    ``x`` only in the columns ``live`` (+0 in the others), from the weight's columns ``live``.

    Used where x is a ReLU layer's output (through dropout): a unit the ReLU gave 0 for every
    sample of the batch gets its gradient zeroed by the ReLU's backward (``threshold_backward``
    writes 0 there whatever arrives), so its column is never needed. After SRA's sleeps most of
    the first hidden layer is such units in a split MNIST run (30–73 % of 1200 from the second
    task on), and the product ``grad @ weight`` is the largest of the backward. The other
    products, and the live columns, are the ones autograd computes for ``F.linear``, bit for bit:
    MKL computes an entry of a product from its row and column alone for the shapes checked by
    :func:`_column_subsets_exact` (tests/test_ann.py compares whole gradients)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight, live)
        return F.linear(x, weight)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight, live = ctx.saved_tensors
        grad_x = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_x = grad.new_zeros(x.shape)
            grad_x.index_copy_(1, live, grad.mm(weight.index_select(1, live)))
        if ctx.needs_input_grad[1]:
            grad_weight = grad.t().mm(x)  # autograd's mm backward for x @ weight.t()
        return grad_x, grad_weight, None


MIN_LIVE = 64  # fewer live columns: MKL's small-N products sum in another order (checked)
MAX_LIVE_SHARE = 0.75  # more: gathering the weight's columns costs what the product saves


def _linear(linear: nn.Linear, x: torch.Tensor, live: torch.Tensor | None) -> torch.Tensor:
    """``linear(x)``; through :class:`_LiveInputLinear` where ``live`` (the units of ``x`` whose
    gradient matters) is few enough to pay and the shape's column subsets are exact."""
    weight = linear.weight
    if (
        live is None
        or linear.bias is not None
        or not MIN_LIVE <= live.numel() <= MAX_LIVE_SHARE * x.shape[1]
        or not _column_subsets_exact(x.shape[0], weight.shape[1], weight.shape[0], x.dtype)
    ):
        return linear(x)
    return _LiveInputLinear.apply(x, weight, live)


def _skips_dead(spec: MLPSpec, x: torch.Tensor) -> bool:
    """Whether the next layer's backward may leave out ReLU-silent units of ``x``."""
    return (
        spec.activation == "relu" and x.requires_grad and x.device.type == "cpu" and x.ndim == 2
    )


def _live_units(relu_out: torch.Tensor) -> torch.Tensor:
    """Indices of the units (columns) of a ReLU output that are not ≤ 0 for every sample (a
    NaN counts as live, as ``threshold_backward`` lets its gradient through)."""
    with torch.no_grad():
        return torch.logical_not(relu_out.amax(0) <= 0).nonzero().squeeze(1)


@functools.cache
def _column_subsets_exact(batch: int, n_in: int, n_out: int, dtype: torch.dtype) -> bool:
    """Whether ``g @ w[:, cols]`` equals the columns ``cols`` of ``g @ w`` bit for bit for
    ``g`` [batch × n_out] and ``w`` [n_out × n_in] (scratch numbers, subsets of the sizes the
    backward may use); checked once per process and shape."""
    generator = torch.Generator().manual_seed(0)
    g = torch.randn(batch, n_out, generator=generator, dtype=dtype)
    w = torch.randn(n_out, n_in, generator=generator, dtype=dtype)
    full = g.mm(w)
    for size in {MIN_LIVE, MIN_LIVE + 1, n_in // 3, n_in // 2, int(MAX_LIVE_SHARE * n_in)}:
        if not MIN_LIVE <= size <= n_in:
            continue
        cols = torch.randperm(n_in, generator=generator)[:size].sort().values
        if not torch.equal(g.mm(w.index_select(1, cols)), full.index_select(1, cols)):
            return False
    return True


def _dropout(
    x: torch.Tensor, p: float, style: str, training: bool, scale_inplace: bool = False
) -> torch.Tensor:
    """Dropout of ``x``; ``scale_inplace``: the test-mode scaling done on ``x`` itself."""
    if style == "inverted":
        return F.dropout(x, p, training)
    if training:  # the toolbox's mask without rescaling (1.0 where the draw > p, else 0.0)
        from neurosleep import uniform  # numba: imported where it draws

        return x * uniform.above(x.shape, p, dtype=x.dtype, device=x.device)
    return x.mul_(1.0 - p) if scale_inplace else x * (1.0 - p)


def _initialise(linear: nn.Linear, spec: MLPSpec, generator: torch.Generator | None) -> None:
    w = linear.weight
    if spec.init == "uniform":
        w.uniform_(-spec.init_scale, spec.init_scale, generator=generator)
    elif spec.init == "kaiming_uniform":
        bound = (6.0 / w.shape[1]) ** 0.5  # He et al. 2015: sqrt(6 / fan_in)
        w.uniform_(-bound, bound, generator=generator)
    elif spec.init == "xavier_uniform":
        bound = (6.0 / (w.shape[0] + w.shape[1])) ** 0.5
        w.uniform_(-bound, bound, generator=generator)
    else:
        raise ValueError(f"unknown init {spec.init!r}")
    if linear.bias is not None:
        linear.bias.zero_()


# ---------------------------------------------------------------------- losses
Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
LOSSES: Registry[Loss] = Registry("wake loss")


def _targets(target: torch.Tensor, units: int, dtype: torch.dtype) -> torch.Tensor:
    if target.ndim == 2:
        return target.to(dtype)
    return F.one_hot(target, units).to(dtype)


@LOSSES.register("squared_error")
def squared_error(z: torch.Tensor, a: torch.Tensor, target: torch.Tensor):
    """(surrogate whose gradient wrt z is (a − y)/m, reported ½·Σe²/m)."""
    y = _targets(target, a.shape[1], a.dtype)
    m = a.shape[0]
    e = y - a
    surrogate = (z * (-e).detach()).sum() / m
    return surrogate, 0.5 * e.detach().pow(2).sum() / m


@LOSSES.register("cross_entropy")
def cross_entropy(z: torch.Tensor, a: torch.Tensor, target: torch.Tensor):
    """Softmax cross-entropy on z; soft targets give −Σ y log softmax(z) / m."""
    if target.ndim == 2:
        loss = -(target * F.log_softmax(z, dim=1)).sum(dim=1).mean()
    else:
        loss = F.cross_entropy(z, target)
    return loss, loss.detach()


class SGD:
    """torch's SGD through its functional form ``torch.optim.sgd.sgd`` (what
    ``torch.optim.SGD.step`` calls), the momentum buffers kept here, with torch's fused CPU
    kernel (one pass over each tensor instead of three): the update of ``torch.optim.SGD`` bit
    for bit (``tests/test_ann.py``). ``torch.optim.SGD`` itself is an ``Optimizer``, whose
    constructor and ``step`` import ``torch._dynamo`` (≈1.1 s of processor time, a third of a
    short run's start) to mark themselves as not compilable."""

    def __init__(self, params, lr: float, momentum: float) -> None:
        self.params = list(params)
        self.lr, self.momentum = lr, momentum
        self.buffers: list[torch.Tensor | None] = [None] * len(self.params)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One update of the parameters that have a gradient (as ``torch.optim.SGD``)."""
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        buffers = [self.buffers[i] for i in live]
        torch_sgd(
            [self.params[i] for i in live],
            [self.params[i].grad for i in live],
            buffers,
            weight_decay=0.0,
            momentum=self.momentum,
            lr=self.lr,
            dampening=0.0,
            nesterov=False,
            maximize=False,
            fused=True,  # one pass per tensor (torch's CPU kernel; the same numbers)
        )
        for i, buffer in zip(live, buffers, strict=True):
            self.buffers[i] = buffer


Optimizer = SGD | torch.optim.Optimizer


def make_optimizer(
    params, kind: str, lr: float, momentum: float, betas: tuple[float, float]
) -> Optimizer:
    """SGD (the toolbox's momentum form is torch's: v = μv + g; W −= lr·v; :class:`SGD`) or
    Adam (``torch.optim.Adam``); both have ``zero_grad`` and ``step``."""
    if kind == "sgd":
        return SGD(params, lr=lr, momentum=momentum)
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas)
    raise ValueError(f"unknown optimizer {kind!r}")


@torch.no_grad()
def predict(
    net: MLP, x: torch.Tensor, readout: torch.Tensor | None = None, batch: int = 2000
) -> torch.Tensor:
    """Predicted output unit per sample: argmax over all units, or over ``readout`` units."""
    net.eval()
    preds = []
    for start in range(0, x.shape[0], batch):
        a = net(x[start : start + batch])
        if readout is not None:
            preds.append(readout[a[:, readout].argmax(dim=1)])
        else:
            preds.append(a.argmax(dim=1))
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.long, device=x.device)
