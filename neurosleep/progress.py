"""When to draw progress bars: only on a terminal unless asked (no ``\\r`` codes in logs)."""

from __future__ import annotations

import sys

PROGRESS = ("auto", "always", "never")


def progress_shown(progress: bool | str) -> bool:
    """Whether to draw progress bars: ``auto`` only when stderr is a terminal, so that logs and
    pipes get no carriage returns or cursor codes; ``always``; ``never``; or a bool."""
    if isinstance(progress, bool):
        return progress
    if progress not in PROGRESS:
        raise ValueError(f"progress must be one of {', '.join(PROGRESS)} (got {progress!r})")
    return progress == "always" or (progress == "auto" and sys.stderr.isatty())
