"""Resource limits a protocol is checked against at validation (docs/protocols.md, Limits).

Each model kind and sleep algorithm estimates the memory it will need from the protocol alone;
an estimate above :data:`MAX_MEMORY_BYTES` is refused with the estimate in the message, before
anything is allocated.
"""

from __future__ import annotations

MAX_MEMORY_BYTES = 16 * 2**30  # largest memory estimate a protocol may need (16 GiB)


def memory_problem(estimate: float, what: str) -> str | None:
    """A message when ``estimate`` bytes exceed :data:`MAX_MEMORY_BYTES` (``what``: the sum)."""
    if estimate <= MAX_MEMORY_BYTES:
        return None
    return (
        f"needs about {estimate / 2**30:.3g} GiB of memory ({what}); the limit is "
        f"{MAX_MEMORY_BYTES / 2**30:g} GiB (docs/protocols.md, Limits)"
    )
