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
        gradients on the CPU and ReLU hidden units, the backward leaves out the units the ReLU
        silenced for the whole batch (:class:`_LiveLinear`)."""
        spec = self.spec
        hidden = ACTIVATIONS[spec.activation]
        skip = _skips_silent(spec, self.linears[0].weight)
        live = None  # indices of the units of x whose gradient matters; None: all
        for linear in self.linears[:-1]:
            rows: list[torch.Tensor] = []  # the layer's live units, known after its ReLU
            x = hidden(_linear(linear, x, live, rows if skip else None))
            live = _live_units(x) if skip else None
            rows.extend([] if live is None else [live])
            if spec.dropout > 0:
                x = _dropout(x, spec.dropout, spec.dropout_style, self.training)
        z = self.linears[-1](x)  # its input gradient is a small product: nothing to leave out
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


class _LiveLinear(torch.autograd.Function):
    """``F.linear(x, weight)`` (no bias) whose backward leaves out ReLU-silent units: the
    gradient with respect to ``x`` is computed only in the columns ``live`` (+0 in the others,
    from the weight's columns ``live``) and the weight gradient only in the rows ``rows[0]``
    (+0 in the others).

    A unit the ReLU gave 0 for every sample of the batch gets its gradient zeroed by the ReLU's
    backward (``threshold_backward`` writes +0 there whatever arrives): so where ``x`` is a
    ReLU layer's output (through dropout), the columns of x's gradient for its silent units are
    never used, and the weight gradient's rows of this layer's own silent units (``rows``,
    filled once the forward has passed the ReLU) are sums of +0 × x, +0 for finite ``x``.
    After SRA's sleeps 30–73 % of the first hidden layer is silent in a split MNIST run from the
    second task on. The entries computed are those of autograd's products for ``F.linear``, bit
    for bit: for the shapes :func:`_subsets_exact` checks, MKL computes an entry from its own
    row and column alone (tests/test_ann.py compares whole gradients). Each part falls back to
    autograd's full product where it would not pay (:data:`MIN_LIVE`, :data:`MAX_LIVE_SHARE`).
    """

    @staticmethod
    def forward(ctx, x, weight, live, rows):
        ctx.save_for_backward(x, weight)
        ctx.live, ctx.rows = live, rows
        return F.linear(x, weight)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        live, rows = ctx.live, (ctx.rows or [None])[0]
        n_out, n_in = weight.shape
        exact = _subsets_exact(x.shape[0], n_in, n_out, x.dtype, torch.get_num_threads())
        grad_x = grad_weight = None
        if ctx.needs_input_grad[0]:
            if exact and _pays(live, n_in):
                grad_x = grad.new_zeros(x.shape)
                grad_x.index_copy_(1, live, grad.mm(weight.index_select(1, live)))
            else:
                grad_x = grad.mm(weight)  # autograd's mm backward for x @ weight.t()
        if ctx.needs_input_grad[1]:
            if exact and _pays(rows, n_out) and bool(torch.isfinite(x.sum())):
                grad_weight = x.new_zeros(weight.shape)
                grad_weight.index_copy_(0, rows, grad.index_select(1, rows).t().mm(x))
            else:
                grad_weight = grad.t().mm(x)
        return grad_x, grad_weight, None, None


MIN_LIVE = 64  # fewer live units: MKL's small products sum in another order (checked)
MAX_LIVE_SHARE = 0.75  # more: gathering and scattering cost what the smaller product saves


def _pays(live: torch.Tensor | None, units: int) -> bool:
    return live is not None and MIN_LIVE <= live.numel() <= MAX_LIVE_SHARE * units


def _linear(
    linear: nn.Linear,
    x: torch.Tensor,
    live: torch.Tensor | None,
    rows: list[torch.Tensor] | None,
) -> torch.Tensor:
    """``linear(x)``; through :class:`_LiveLinear` where there are silent units to leave out:
    ``live`` (the units of ``x`` whose gradient matters) or ``rows`` (the layer's own live
    units, filled after its ReLU)."""
    if linear.bias is not None or (live is None and rows is None):
        return linear(x)
    return _LiveLinear.apply(x, linear.weight, live, rows)


def _skips_silent(spec: MLPSpec, weight: torch.Tensor) -> bool:
    """Whether a forward's backward may leave out ReLU-silent units (gradients on, the CPU)."""
    return (
        spec.activation == "relu"
        and torch.is_grad_enabled()
        and weight.requires_grad
        and weight.device.type == "cpu"
    )


def _live_units(relu_out: torch.Tensor) -> torch.Tensor | None:
    """Indices of the units (columns) of a ReLU output [sample × unit] (≥ 0 or NaN) that are
    not 0 for every sample (NaN counts as live: ``threshold_backward`` lets its gradient
    through, and a column's maximum is NaN where it has one)."""
    if relu_out.ndim != 2:
        return None
    with torch.no_grad():
        return relu_out.amax(0).nonzero().squeeze(1)


@functools.cache
def _subsets_exact(batch: int, n_in: int, n_out: int, dtype: torch.dtype, threads: int) -> bool:
    """Whether, for ``g`` [batch × n_out], ``w`` [n_out × n_in] and ``x`` [batch × n_in],
    ``g @ w[:, cols]`` is the columns ``cols`` of ``g @ w`` and ``g[:, rows].t() @ x`` the rows
    ``rows`` of ``g.t() @ x``, bit for bit (scratch numbers, subsets of the sizes the backward
    may use); checked once per process, shape and torch thread count."""
    generator = torch.Generator().manual_seed(0)
    g = torch.randn(batch, n_out, generator=generator, dtype=dtype)
    w = torch.randn(n_out, n_in, generator=generator, dtype=dtype)
    x = torch.randn(batch, n_in, generator=generator, dtype=dtype)
    products = [(g.mm(w), n_in), (g.t().mm(x), n_out)]
    for (full, units), kind in zip(products, ("columns", "rows"), strict=True):
        for size in {MIN_LIVE, MIN_LIVE + 1, units // 3, units // 2, int(MAX_LIVE_SHARE * units)}:
            if not MIN_LIVE <= size <= units:
                continue
            keep = torch.randperm(units, generator=generator)[:size].sort().values
            if kind == "columns":
                part, want = g.mm(w.index_select(1, keep)), full.index_select(1, keep)
            else:
                part, want = g.index_select(1, keep).t().mm(x), full.index_select(0, keep)
            if not torch.equal(part, want):
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
