"""torch's uniform draws on the CPU (``torch.rand``), compiled: the same numbers, and the
generator left where torch would leave it.

torch draws a CPU tensor's uniform numbers one at a time from its generator's Mersenne twister
(``at::mt19937``): a float32 from the low 24 bits of one 32-bit output, a float64 from the low
53 bits of two (the first the high word), times 2**−24 or 2**−53. That loop costs ≈3 ns a
number, and an SRA split MNIST run draws 98 million for its sleeps' input spikes and 115
million for its dropout masks. :func:`rand` runs the same twister in numba on the state that
``Generator.get_state`` gives and hands the state back with ``set_state``. It does so only where
a check on scratch generators (:func:`reproduces`, once per process and dtype) finds
``torch.rand``'s numbers and final state; otherwise, and off the CPU, it calls ``torch.rand``.
:func:`above` is ``torch.rand(size).gt_(p)`` (a dropout mask) in one pass, no array of draws.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from neurosleep.imports import import_numba

numba = import_numba()

N, M = 624, 397  # the twister's state words and its shift
STATE_BYTES = 5056  # sizeof(CPUGeneratorImplState): seed, left, seeded, next, 624 words, …
LEFT, NEXT, WORDS = slice(8, 12), slice(16, 24), slice(24, 24 + 8 * N)  # int32, uint64, uint64[N]
U32 = np.uint32


@numba.njit(inline="always", boundscheck=False)
def _mix(s, k, j, m):
    """Word k of the next state: word m xor the twist of words k and j."""
    y = (s[k] & U32(0x80000000)) | (s[j] & U32(0x7FFFFFFF))
    return s[m] ^ (y >> U32(1)) ^ (U32(0x9908B0DF) & (U32(0) - (s[j] & U32(1))))


@numba.njit(boundscheck=False)
def _twist(s):
    """``at::mt19937::next_state``: all N words in place."""
    for k in range(N - M):
        s[k] = _mix(s, k, k + 1, k + M)
    for k in range(N - M, N - 1):
        s[k] = _mix(s, k, k + 1, k + M - N)
    s[N - 1] = _mix(s, N - 1, 0, M - 1)


@numba.njit(inline="always", boundscheck=False)
def _draw(s, left, position, out, emit, level):
    """``out[i]`` = ``emit(word, level)`` of the generator's next ``len(out)`` 32-bit outputs,
    from state ``s`` [N] (uint32, updated) and its counters ``left`` and ``position`` (torch's
    ``left_`` and ``next_``); returns the counters after. torch's ``operator()``: a twist when
    ``left`` counts down to 0, then word ``position`` tempered (in 32 bits: the loop vectorizes,
    ``emit`` inlined)."""
    done, n = 0, out.shape[0]
    while done < n:
        if left == 1:
            _twist(s)
            left, position = N + 1, 0
        take = min(left - 1, n - done)
        state, dst = s[position : position + take], out[done : done + take]
        for k in range(take):
            y = state[k]
            y = U32(y ^ (y >> U32(11)))
            y = U32(y ^ ((y << U32(7)) & U32(0x9D2C5680)))
            y = U32(y ^ ((y << U32(15)) & U32(0xEFC60000)))
            dst[k] = emit(U32(y ^ (y >> U32(18))), level)
        done, left, position = done + take, left - take, position + take
    return left, position


@numba.njit(inline="always")
def _float32(w):
    """The low 24 bits of word ``w`` × 2**−24 (torch's ``uniform_real<float>``)."""
    return np.float32(w & U32(0xFFFFFF)) * np.float32(2.0**-24)


@numba.njit(inline="always")
def _word(w, level):
    return w


@numba.njit(inline="always")
def _above(w, level):
    return np.float32(1.0) if _float32(w) > level else np.float32(0.0)


@numba.njit(cache=True, nogil=True, boundscheck=False)
def words(s, left, position, out):
    """The generator's next ``len(out)`` 32-bit outputs into ``out`` (:func:`_draw`)."""
    return _draw(s, left, position, out, _word, U32(0))


@numba.njit(cache=True, nogil=True, boundscheck=False)
def above_float32(s, left, position, level, out):
    """``out[i]`` = 1 where the i-th float32 draw is above ``level`` (float32: torch compares a
    float32 tensor with a number in float32), else 0, in one pass (:func:`_draw`)."""
    return _draw(s, left, position, out, _above, level)


@numba.njit(cache=True, nogil=True, boundscheck=False)
def to_float32(w, out):
    """``out[i]`` = :func:`_float32` of ``w[i]``."""
    for i in range(out.shape[0]):
        out[i] = _float32(w[i])


@numba.njit(cache=True, nogil=True, boundscheck=False)
def to_float64(w, out):
    """``out[i]`` = the low 53 bits of ``w[2i]·2**32 + w[2i+1]`` × 2**−53 (``random64``)."""
    for i in range(out.shape[0]):
        bits = (np.uint64(w[2 * i]) << np.uint64(32)) | np.uint64(w[2 * i + 1])
        out[i] = np.float64(bits & np.uint64((1 << 53) - 1)) * 2.0**-53


CONVERT = {torch.float32: (1, to_float32), torch.float64: (2, to_float64)}  # words per number


def rand(
    size: tuple[int, ...],
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``torch.rand(size, generator=generator, dtype=dtype, device=device)``, the same numbers
    and generator state after (``generator``: default, torch's default CPU generator). Reads
    and writes the generator's whole state: not for a generator other threads draw from."""
    drawing = _cpu_generator(generator, device)
    if drawing is None or not reproduces(dtype):
        return torch.rand(size, generator=generator, dtype=dtype, device=device)
    return _compiled(size, drawing, dtype)


def above(
    size: tuple[int, ...],
    p: float,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``torch.rand(size, generator=generator, dtype=dtype, device=device).gt_(p)``: 1 where a
    draw is above ``p``, else 0, in ``dtype``; the same numbers and generator state after, in
    one compiled pass for float32 on the CPU (:func:`above_float32`), else by :func:`rand`."""
    drawing = _cpu_generator(generator, device)
    if drawing is None or dtype != torch.float32 or not reproduces(dtype):
        return rand(size, generator, dtype, device).gt_(p)
    out = torch.empty(size, dtype=dtype)
    flat, level = out.view(-1).numpy(), np.float32(p)
    _drawing(drawing, lambda s, left, position: above_float32(s, left, position, level, flat))
    return out


def _cpu_generator(
    generator: torch.Generator | None, device: torch.device | str
) -> torch.Generator | None:
    """The generator the draws come from (``None``: torch's default) where they and it are on
    the CPU, else ``None``."""
    drawing = torch.default_generator if generator is None else generator
    return drawing if torch.device(device).type == drawing.device.type == "cpu" else None


def _compiled(size: tuple[int, ...], generator: torch.Generator, dtype: torch.dtype):
    per, convert = CONVERT[dtype]
    out = torch.empty(size, dtype=dtype)
    w = np.empty(per * out.numel(), dtype=np.uint32)
    _drawing(generator, lambda s, left, position: words(s, left, position, w))
    convert(w, out.view(-1).numpy())
    return out


def _drawing(generator: torch.Generator, draw) -> None:
    """``draw(s, left, position)`` on ``generator``'s twister (its state words as uint32 and its
    counters), which returns the counters after; the state is handed back to the generator."""
    state = generator.get_state()
    raw = state.numpy()
    left, position = raw[LEFT].view(np.int32), raw[NEXT].view(np.uint64)
    s = raw[WORDS].view(np.uint64).astype(np.uint32)
    left[0], position[0] = draw(s, int(left[0]), int(position[0]))
    raw[WORDS].view(np.uint64)[:] = s
    generator.set_state(state)


@functools.cache
def reproduces(dtype: torch.dtype) -> bool:
    """Whether the compiled draws give ``torch.rand``'s numbers and leave the generator as it
    does, for ``dtype`` (sizes across several twists, from two seeds)."""
    if dtype not in CONVERT:
        return False
    for seed in (0, 12345):
        ours, theirs = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        if ours.get_state().numel() != STATE_BYTES:
            return False
        for size in (1, 623, 2, 1250, 5, 40000):  # beyond one twist, beyond a grain
            want = torch.rand(size, generator=theirs, dtype=dtype)
            if not torch.equal(_compiled((size,), ours, dtype), want):
                return False
        if not torch.equal(ours.get_state(), theirs.get_state()):
            return False
    return True


__all__ = ["above", "rand", "reproduces"]
