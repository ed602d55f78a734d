"""Rate-matched surrogate plasticity: a sleep's own spikes, shuffled, applied to the synapses
with the sleep's own STDP rule (the ``surrogate`` option of ``spontaneous`` sleep).

The control asks whether the *structure* of the sleep's activity (which neurons fire, in which
order) consolidates, or merely its amount. The sleep runs as usual (plasticity on, so its
activity is the real sleep's); then every plastic projection's weights are put back to their
values before the sleep and the STDP rule is applied, offline, to a shuffled copy of the
sleep's spikes, network by network (:data:`SHUFFLES`):

- ``time``: each neuron's spikes moved to distinct random steps of the sleep (its spike count,
  hence its rate, kept; bursts and order gone);
- ``neurons``: the neurons' identities permuted (every spike train, the population rate and
  its bursts kept; which neurons fire together, and in which order, no longer follows the
  memories).

:func:`apply_stdp` is the engines' pair STDP (the update functions of
:data:`neurosleep.engines.torch_plasticity.STDP_FORMS`, in the engines' order within a step:
traces decay, pre spikes depress then raise the pre traces, post spikes raise the post traces
then potentiate; each update clipped to the rule's bounds), open-loop on a given raster.
Applied to the unshuffled raster of a sleep that started with zero traces it gives the
engine's own weights (``tests/test_controls.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from neurosleep.engines.torch_plasticity import STDP_FORMS
from neurosleep.registry import Registry
from neurosleep.spec.snn import STDP

Shuffle = Callable[
    [np.ndarray, np.ndarray, int, int, np.random.Generator], tuple[np.ndarray, np.ndarray]
]
SHUFFLES: Registry[Shuffle] = Registry("surrogate shuffle")
"""``shuffle(steps, ids, n_steps, size, rng) -> (steps, ids)``: one network's raster of one
population (spike ``k``: neuron ``ids[k]`` at step ``steps[k]`` of ``n_steps``) shuffled."""


@SHUFFLES.register("time")
def shuffle_time(steps, ids, n_steps: int, size: int, rng: np.random.Generator):
    """Each neuron's spikes at distinct random steps (its count kept)."""
    counts = np.bincount(ids, minlength=size)
    firing = np.flatnonzero(counts)
    new = [rng.choice(n_steps, counts[i], replace=False) for i in firing]
    new_steps = np.concatenate(new) if new else np.zeros(0, dtype=np.int64)
    return new_steps.astype(np.int64), np.repeat(firing, counts[firing])


@SHUFFLES.register("neurons")
def shuffle_neurons(steps, ids, n_steps: int, size: int, rng: np.random.Generator):
    """Neuron ``i``'s spike train given to neuron ``π(i)``, ``π`` a random permutation."""
    return steps, rng.permutation(size)[ids]


def _members(indptr: np.ndarray, order: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """The synapses (indices) whose key (pre or post neuron) is in ``keys``, from a CSR
    table: ``order`` sorts the synapses by key, ``indptr`` [n + 1] its row starts."""
    starts, stops = indptr[keys], indptr[keys + 1]
    lengths = stops - starts
    if not lengths.sum():
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
    return order[offsets + np.arange(lengths.sum())]


def _csr(keys: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(keys, kind="stable")
    return np.concatenate([[0], np.cumsum(np.bincount(keys, minlength=n))]), order


def _by_step(steps: np.ndarray, ids: np.ndarray) -> dict[int, np.ndarray]:
    order = np.argsort(steps, kind="stable")
    steps, ids = steps[order], ids[order]
    cuts = np.flatnonzero(np.diff(steps)) + 1
    pieces = zip(np.split(steps, cuts), np.split(ids, cuts), strict=True)
    return {int(s[0]): i for s, i in pieces if len(s)}


def apply_stdp(
    weights: np.ndarray,
    pre: np.ndarray,
    post: np.ndarray,
    bounds: tuple,
    rule: STDP,
    form: str,
    eta: float,
    depression: float,
    pre_spikes: tuple[np.ndarray, np.ndarray],
    post_spikes: tuple[np.ndarray, np.ndarray],
    dt_ms: float,
) -> np.ndarray:
    """New weights [S] after pair STDP on given spikes (traces start at 0).

    ``weights``, ``pre``, ``post`` [S]: synapses (neuron indices of the pre and post
    populations); ``bounds``: (lower, upper), numbers or arrays [S]; ``rule`` the spec's STDP
    rule run in ``form`` with learning-rate factor ``eta`` and depression factor
    ``depression``; ``pre_spikes``, ``post_spikes``: (steps, neuron indices) of each side.
    """
    update = STDP_FORMS.get(form)
    w = np.array(weights, dtype=float)
    low, high = (np.broadcast_to(np.asarray(b, dtype=float), w.shape) for b in bounds)
    n_pre = int(max(pre.max(initial=-1), pre_spikes[1].max(initial=-1))) + 1
    n_post = int(max(post.max(initial=-1), post_spikes[1].max(initial=-1))) + 1
    x, y = np.zeros(n_pre), np.zeros(n_post)
    decay_x, decay_y = np.exp(-dt_ms / rule.tau_plus), np.exp(-dt_ms / rule.tau_minus)
    by_pre, by_post = _csr(pre, n_pre), _csr(post, n_post)
    pres, posts = _by_step(*pre_spikes), _by_step(*post_spikes)
    a_minus, last = depression * rule.a_minus, None
    for step in sorted(set(pres) | set(posts)):
        if last is not None:
            x *= decay_x ** (step - last)
            y *= decay_y ** (step - last)
        last = step
        fired = pres.get(step)
        if fired is not None and eta:
            s = _members(*by_pre, fired)
            new = update.pre(w[s], y[post[s]], low[s], high[s], eta, rule.a_plus, a_minus)
            w[s] = np.clip(new, low[s], high[s])
        if fired is not None:
            x[fired] += 1.0
        fired = posts.get(step)
        if fired is not None:
            y[fired] += 1.0
            if eta:
                s = _members(*by_post, fired)
                new = update.post(w[s], x[pre[s]], low[s], high[s], eta, rule.a_plus)
                w[s] = np.clip(new, low[s], high[s])
    return w
