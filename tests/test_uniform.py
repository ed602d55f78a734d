"""neurosleep.uniform: torch's CPU uniform draws, compiled — the same numbers and the generator
left in the same state as ``torch.rand``."""

from __future__ import annotations

import pytest
import torch

from neurosleep import uniform

pytestmark = pytest.mark.torch


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_draws_are_torch_rand_bit_for_bit(dtype):
    """Sizes below, at and across the twister's 624 words, in a sequence that leaves the
    generator mid-state; then torch draws on from both generators alike."""
    assert uniform.reproduces(dtype)  # the compiled path is the one tested below
    ours, theirs = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    for size in [(3,), (623,), (1,), (624,), (625,), (100, 1200), (7, 9), (1000, 784)]:
        drawn = uniform.rand(size, ours, dtype)
        assert drawn.shape == size and drawn.dtype == dtype
        assert torch.equal(drawn, torch.rand(size, generator=theirs, dtype=dtype))
    assert torch.equal(ours.get_state(), theirs.get_state())
    assert torch.equal(torch.rand(5, generator=ours), torch.rand(5, generator=theirs))


def test_default_generator_and_other_dtypes():
    """No generator: torch's default one, as ``torch.rand_like`` uses; a dtype the compiled
    draws do not make (bfloat16) is torch's own."""
    torch.manual_seed(3)
    want = torch.rand(1000)
    torch.manual_seed(3)
    assert torch.equal(uniform.rand((1000,)), want)
    assert not uniform.reproduces(torch.bfloat16)
    g = torch.Generator().manual_seed(1)
    want = torch.rand(10, generator=torch.Generator().manual_seed(1), dtype=torch.bfloat16)
    assert torch.equal(uniform.rand((10,), g, torch.bfloat16), want)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_above_is_torch_rand_gt_bit_for_bit(dtype):
    """``above`` (the compiled single pass for float32, rand().gt_ for float64): torch's mask
    and generator state, for sizes across the twister's words, and for
    levels a float32 number cannot hold (compared as torch does, in the tensor's type), at a
    drawn value itself (not above it) and at 0 and 1."""
    ours, theirs = torch.Generator().manual_seed(11), torch.Generator().manual_seed(11)
    drawn = torch.rand(1, generator=torch.Generator().manual_seed(11), dtype=dtype).item()
    sizes = [(1,), (623,), (625,), (1249,), (624,), (100, 1200), (3, 5, 7)]
    levels = [drawn, 0.25, 0.3, 0.1, 0.0, 1.0, 0.7]
    for size, p in zip(sizes, levels, strict=True):
        mask = uniform.above(size, p, ours, dtype)
        want = torch.rand(size, generator=theirs, dtype=dtype).gt_(p)
        assert mask.dtype == dtype and torch.equal(mask, want)
    assert not uniform.above((1,), drawn, torch.Generator().manual_seed(11), dtype).any()
    assert torch.equal(ours.get_state(), theirs.get_state())
    torch.manual_seed(4)
    want = torch.rand(3000).gt_(0.5)
    torch.manual_seed(4)
    assert torch.equal(uniform.above((3000,), 0.5), want)  # torch's default generator
