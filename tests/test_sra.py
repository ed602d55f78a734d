"""SRA sleep: event-driven step vs the literal dense translation, the rule's locality and sign,
the normalisation carry-over, the input spikes, determinism."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from neurosleep.sleep.sra import (
    SRAParams,
    input_spikes,
    normalisation_factors,
    sleep_image,
    sleep_images,
    sra,
    sra_sleep,
    sra_sleep_dense,
    weight_factor,
    window_spikes,
)
from neurosleep.sleep.sra import run as sra_sleep_phase

pytestmark = pytest.mark.torch

SHAPE = (8, 8)


def small_net(seed: int = 0, sizes=(64, 40, 30, 10)) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.rand(n_out, n_in, generator=g, dtype=torch.float64) - 0.5) * 0.02
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
    ]


def blocks(steps: int, seed: int, window: int = 4, block: int = 50) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(64, generator=g, dtype=torch.float64)
    params = SRAParams(steps=steps, window=window, block=block, dtype="float64")
    return list(input_spikes(image, SHAPE, params, g))


RULE = {"inc": 0.03, "dec": 0.004, "decay": 0.999}
ALPHAS = [40.0, 60.0, 50.0]  # low thresholds below: every layer fires often
THRESHOLDS = [0.4, 0.3, 0.3]


def test_event_driven_equals_dense_reference_float64():
    w0 = small_net()
    spikes = blocks(400, seed=1)
    fast, counts_fast = sra_sleep(w0, ALPHAS, THRESHOLDS, iter(spikes), **RULE)
    dense, counts_dense = sra_sleep_dense(w0, ALPHAS, THRESHOLDS, iter(spikes), **RULE)
    assert torch.equal(counts_fast, counts_dense)
    assert (counts_fast > 20).all(), counts_fast  # the comparison means something
    for a, b, before in zip(fast, dense, w0, strict=True):
        assert (a - before).abs().max() > 1e-3  # sleep changed the weights
        torch.testing.assert_close(a, b, rtol=0, atol=1e-14)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_loop_equals_the_torch_loop_bit_for_bit(dtype):
    """The compiled steps (first layer below threshold) and the torch loop: the same weights,
    spike counts and spike events, with every layer firing hundreds of times and steps of 1 to
    ≈40 input spikes (torch's sum changes its order at 16 rows)."""
    w0 = [w.to(dtype) for w in small_net(sizes=(64, 300, 30, 10))]
    spikes = blocks(2000, seed=1, window=8)
    assert max(int(b.sum(dim=1).max()) for b in spikes) > 16
    events: dict[bool, list] = {True: [], False: []}

    def run(fused: bool):
        def on_spikes(layer, steps, ids):
            events[fused].append((layer, steps.tolist(), ids.tolist()))

        return sra_sleep(
            w0, ALPHAS, THRESHOLDS, iter(spikes), **RULE, fused=fused, on_spikes=on_spikes
        )

    results = {fused: run(fused) for fused in (False, True)}
    (torch_w, torch_counts), (fused_w, fused_counts) = results[False], results[True]
    assert (torch_counts > 100).all(), torch_counts
    assert torch.equal(torch_counts, fused_counts)
    assert events[True] == events[False]
    for a, b in zip(torch_w, fused_w, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("beta", [[0.5, 0.0, 0.5], [0.5, -1.0, 0.5], []])
def test_thresholds_must_be_positive(beta):
    with pytest.raises(ValidationError, match="beta"):
        SRAParams(steps=10, beta=beta)


def test_only_rows_of_spiking_neurons_change_in_the_rule_direction():
    w0 = small_net(seed=2)
    spikes = blocks(60, seed=3)
    fired: dict[int, set[int]] = {}

    def on_spikes(layer, steps, neurons):
        fired.setdefault(layer, set()).update(neurons.tolist())

    new, counts = sra_sleep(w0, ALPHAS, THRESHOLDS, iter(spikes), **RULE, on_spikes=on_spikes)
    assert counts.sum() > 0
    for layer, (before, after) in enumerate(zip(w0, new, strict=True), start=1):
        changed_rows = set(torch.nonzero((after != before).any(dim=1)).squeeze(1).tolist())
        assert changed_rows <= fired.get(layer, set())
        assert changed_rows  # something changed in every layer

    # one step, by hand: a single input spike, thresholds that make exactly one unit fire
    w = small_net(seed=4, sizes=(64, 5, 3))
    w[0][2, 7] = 0.5  # neuron 2 gets a strong input from pixel 7
    step = torch.zeros((1, 64), dtype=torch.bool)
    step[0, 7] = True
    new, counts = sra_sleep(
        w, [1.0, 1.0], [0.4, 10.0], iter([step]), inc=0.1, dec=0.05, decay=0.999
    )
    assert counts.tolist() == [1, 0]
    delta = new[0] - w[0]
    assert torch.count_nonzero(delta[[0, 1, 3, 4]]) == 0  # silent neurons untouched
    f = weight_factor(w[0][2])
    torch.testing.assert_close(delta[2, 7], 0.1 * f[7])  # pre spiked: up by inc·f(w)
    others = torch.arange(64) != 7
    torch.testing.assert_close(delta[2, others], -0.05 * f[others])  # silent pre: down
    assert (delta[2, others] <= 0).all() and delta[2, 7] >= 0
    assert torch.equal(new[1], w[1])


def test_weight_factor_shape():
    f = weight_factor(torch.tensor([-0.01, 0.0, 0.005, 0.01], dtype=torch.float64))
    assert f[0] == pytest.approx(2.0, abs=1e-4)
    assert f[1] == pytest.approx(1.0)
    assert f[2] == pytest.approx(2 / (1 + torch.e**5), rel=1e-9)
    assert f[3] == pytest.approx(9.08e-5, rel=1e-2)


def test_normalisation_carries_the_previous_factor():
    weights = [torch.tensor([[2.0, -9.0]]), torch.tensor([[3.0]]), torch.tensor([[-1.0]])]
    factors = normalisation_factors(weights, [4.0, 1.0, 10.0])
    # scales 4, 3, 10; applied 4, 3/4, 10/(3/4) — the code's carry-over, not s3/s2
    assert factors == pytest.approx([1 / 4, 4 / 3, 3 / 40])


def test_input_spikes_window_and_rate():
    image = torch.full((784,), 0.5, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    params = SRAParams(steps=400, dtype="float64", block=100)
    spikes = torch.cat(list(input_spikes(image, (28, 28), params, g)))
    assert spikes.shape == (400, 784)
    grid = spikes.reshape(400, 28, 28)
    rows, cols = grid.any(dim=2), grid.any(dim=1)
    span = lambda mask: mask.float().argmax(1) - (27 - mask.flip(1).float().argmax(1))  # noqa: E731
    assert (-span(rows) < 11).all() and (-span(cols) < 11).all()
    p = 2 * 1e-3 * 239.515363 * 0.5
    rate = spikes.sum() / (400 * 121)
    assert float(rate) == pytest.approx(p, abs=0.01)
    whole = SRAParams(steps=200, window=0, dtype="float64")
    all_pixels = torch.cat(list(input_spikes(image, (28, 28), whole, g)))
    assert float(all_pixels.double().mean()) == pytest.approx(p, abs=0.01)


@pytest.mark.parametrize(
    ("shape", "window", "dtype"),
    [((28, 28), 11, torch.float32), ((8, 8), 4, torch.float64), ((3, 6, 5), 4, torch.float32),
     ((20,), 7, torch.float64)],
)  # fmt: skip
@pytest.mark.parametrize("one_image", [True, False])
def test_compiled_window_spikes_equal_torch_operations(shape, window, dtype, one_image):
    """The compiled pass and torch's mask, ``where`` and product: the same spikes, for 1–3
    dimensions, one image or one per step, including draws of exactly 0 (spikes outside the
    window too)."""
    g = torch.Generator().manual_seed(3)
    steps, n = 300, torch.Size(shape).numel()
    windows = tuple(min(window, size) for size in shape)
    corners = torch.stack([torch.randint(0, s - w + 1, (steps,), generator=g)
                           for s, w in zip(shape, windows, strict=True)], dim=1)  # fmt: skip
    draw = torch.rand((steps, n), generator=g, dtype=dtype)
    draw[torch.rand((steps, n), generator=g) < 0.02] = 0.0
    pixels = torch.rand((1 if one_image else steps, n), generator=g, dtype=dtype)
    pixels[:, ::3] = 0.0
    spikes = {
        fused: window_spikes(draw, pixels.expand(steps, n), corners, shape, windows, 1.3, fused)
        for fused in (True, False)
    }
    assert torch.equal(spikes[True], spikes[False])
    assert spikes[True][draw == 0].all()  # 0 ≤ x: inside the window or not
    assert 0.01 < float(spikes[True][draw != 0].double().mean()) < 0.5


@pytest.mark.parametrize("pixels", [784, 64, 8])
def test_compiled_spike_lists_are_nonzero_and_bincount(pixels):
    """sra_fused.spike_lists: the columns of ``nonzero`` in its order and the counts of
    ``bincount``, for sparse and dense blocks, empty and full rows, spikes in a word's last
    pixel; no lists where rows are not whole words (the torch path then)."""
    from neurosleep.engines import sra_fused

    g = torch.Generator().manual_seed(5)
    for density in (0.0, 0.02, 0.5, 1.0):
        block = torch.rand((300, pixels), generator=g) < density
        block[7] = False
        block[9] = True
        block[11, pixels - 1] = True
        cols, counts = sra_fused.spike_lists(block)
        steps, want = block.nonzero(as_tuple=True)
        assert torch.equal(cols, want)
        assert torch.equal(counts, torch.bincount(steps, minlength=block.shape[0]))
    assert sra_fused.spike_lists(torch.ones((4, 10), dtype=torch.bool)) is None


def test_run_is_deterministic_and_records_layers():
    w = [x.float() for x in small_net(sizes=(64, 30, 10))]
    x = torch.rand(50, 64, generator=torch.Generator().manual_seed(0))
    params = SRAParams(steps=300, beta=[0.5, 0.5], alpha_scale=2.0, window=4)
    seen = []
    a, diag_a = sra(
        w,
        x,
        [1.0, 1.0],
        SHAPE,
        params,
        torch.Generator().manual_seed(5),
        lambda layer, s, n: seen.append(layer),
    )
    b, diag_b = sra(w, x, [1.0, 1.0], SHAPE, params, torch.Generator().manual_seed(5))
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    assert diag_a["spike_count"].tolist() == diag_b["spike_count"].tolist()
    assert diag_a["spike_count"][0] > 0 and 1 in seen
    assert diag_a["steps"] == 300


def test_nightmares_corrupt_the_replayed_image():
    x = torch.rand(30, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    clean = sleep_image(x, SRAParams(steps=1), torch.Generator().manual_seed(1))
    torch.testing.assert_close(clean, x.mean(0))
    noisy = sleep_image(
        x, SRAParams(steps=1, corrupt="noise", corrupt_level=0.3), torch.Generator().manual_seed(1)
    )
    assert (noisy >= clean).all() and 0.05 < float((noisy - clean).mean()) < 0.25
    shuffled = sleep_image(
        x, SRAParams(steps=1, corrupt="shuffle"), torch.Generator().manual_seed(1)
    )
    torch.testing.assert_close(shuffled.sort().values, clean.sort().values)
    assert not torch.equal(shuffled, clean)


def test_sra_checks_its_own_requirements():
    """Biases and a sleep before any wake phase are refused by SRA itself (the mlp context
    carries the facts; the experiment knows nothing of SRA)."""
    from neurosleep.sleep import MLPContext

    w = [x.float() for x in small_net(sizes=(64, 30, 10))]

    def context(biases: bool, n_samples: int) -> MLPContext:
        return MLPContext(
            weights=tuple(w),
            biases=biases,
            activations=lambda x: [x],
            forward=lambda weights, x: (x, x),
            inputs=torch.rand(n_samples, 64),
            labels=torch.zeros(n_samples, dtype=torch.long),
            shape=SHAPE,
            generator=torch.Generator(),
            engine="torch",
            on_spikes=lambda *a: None,
            record=None,
            progress=lambda f: None,
        )

    params = SRAParams(steps=10, beta=[0.5, 0.5])
    with pytest.raises(ValueError, match=r"sleep 'sra' needs a model without biases"):
        sra_sleep_phase(params, context(True, 5))
    with pytest.raises(ValueError, match="no wake phase before it"):
        sra_sleep_phase(params, context(False, 0))


def _seen(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """60 samples of 3 classes: class c lights pixels 20c .. 20c+19 (0.8 + noise)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(3).repeat_interleave(20)
    lit = (torch.arange(64)[None, :] // 20 == labels[:, None]).double()
    inputs = 0.8 * lit + 0.1 * torch.rand(60, 64, generator=g, dtype=torch.float64)
    return inputs, labels


def test_class_means_are_the_seen_classes_means_and_differ_from_the_mean_image():
    inputs, labels = _seen()
    params = SRAParams(steps=1, input="class_means")
    draw = sleep_images(inputs, labels, params, torch.Generator().manual_seed(0))
    shown = draw(200)
    distinct = torch.unique(shown, dim=0)
    expected = torch.stack([inputs[labels == c].mean(0) for c in range(3)])
    assert distinct.shape == (3, 64)  # every seen class drawn, nothing else
    torch.testing.assert_close(distinct.sort(dim=0).values, expected.sort(dim=0).values)
    mean = sleep_images(inputs, labels, SRAParams(steps=1), torch.Generator().manual_seed(0))
    assert (distinct - mean).abs().max(dim=1).values.min() > 0.4  # none is the mean image
    # only the classes given (the seen tasks' data): two classes, two means
    two = sleep_images(inputs[:40], labels[:40], params, torch.Generator().manual_seed(0))(200)
    assert torch.unique(two, dim=0).shape == (2, 64)


def test_buffer_keeps_buffer_size_seen_images_and_noise_matches_the_mean_drive():
    inputs, labels = _seen()
    buffer = SRAParams(steps=1, input="buffer", buffer_size=5)
    shown = sleep_images(inputs, labels, buffer, torch.Generator().manual_seed(0))(500)
    kept = torch.unique(shown, dim=0)
    assert kept.shape == (5, 64)
    assert all((inputs == row).all(dim=1).any() for row in kept)  # seen training images
    noise = SRAParams(steps=1, input="noise")
    drawn = sleep_images(inputs, labels, noise, torch.Generator().manual_seed(0))(400)
    assert float(drawn.mean()) == pytest.approx(float(inputs.mean()), rel=0.02)
    assert torch.unique(drawn, dim=0).shape[0] == 400  # fresh noise every draw


def test_drawn_images_are_held_image_steps_steps_across_blocks():
    """A fresh image every image_steps steps, whatever the block size (a segment that spans a
    block boundary keeps its image). Image j lights pixel j only, at a rate that always
    spikes: each step's spike is the index of the image it shows."""
    drawn = []

    def draw(count: int) -> torch.Tensor:
        first = len(drawn)
        drawn.extend(range(first, first + count))
        return torch.eye(64, dtype=torch.float64)[first : first + count]

    for block in (7, 50, 1000):
        drawn.clear()
        params = SRAParams(
            steps=130, image_steps=30, window=0, block=block, max_rate="500 Hz", dtype="float64"
        )
        spikes = torch.cat(list(input_spikes(draw, SHAPE, params, torch.Generator(), n=64)))
        assert spikes.shape == (130, 64) and (spikes.sum(dim=1) == 1).all()
        shown = spikes.double().argmax(dim=1)
        assert shown.tolist() == [s // 30 for s in range(130)], block
        assert drawn == [0, 1, 2, 3, 4]  # five segments, five images drawn


def test_unknown_input_and_corrupted_noise_are_refused():
    with pytest.raises(ValidationError, match=r"unknown input 'dreams'; known: buffer, "):
        SRAParams(steps=1, input="dreams")
    from neurosleep.sleep.sra import check
    from neurosleep.spec.mlp import MLPSpec

    params = SRAParams(steps=1, input="noise", corrupt="shuffle")
    model = MLPSpec.model_validate(
        {"format_version": 1, "name": "m", "kind": "mlp", "layers": [64, 30, 10], "bias": False}
    )
    problems = check(params.model_copy(update={"beta": [1.0, 1.0]}), model, [])
    assert (("corrupt",), "corrupt degrades image contents; input 'noise' has none") in problems


def test_mean_image_input_is_the_papers_input_unchanged():
    """input: mean_image draws nothing extra: the same spikes as the mean image itself."""
    inputs, labels = _seen()
    params = SRAParams(steps=300, window=4, block=64, dtype="float64")
    content = sleep_images(inputs, labels, params, torch.Generator().manual_seed(2))
    a = torch.cat(list(input_spikes(content, SHAPE, params, torch.Generator().manual_seed(9))))
    image = sleep_image(inputs, params, torch.Generator().manual_seed(2))
    b = torch.cat(list(input_spikes(image, SHAPE, params, torch.Generator().manual_seed(9))))
    assert torch.equal(a, b)
