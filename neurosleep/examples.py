"""The shipped protocols, models and studies: find them by name, list them, copy them out.

A wheel carries the repository's top-level ``protocols/``, ``models/`` and ``studies/`` folders as
``neurosleep/_examples/`` (setup.py copies them in, keeping their layout, so a protocol's
``model: ../models/x.yaml`` still resolves); an editable install or a source checkout reads
them where they are.

Examples
--------
>>> protocol_path("hopfield_dreaming").name
'hopfield_dreaming.yaml'
>>> "hopfield_dreaming" in [path.stem for path in shipped("protocols")]
True
"""

from __future__ import annotations

import difflib
from pathlib import Path

import yaml

from neurosleep.errors import UserError

#: shipped folder → what one file in it is
FOLDERS = {"protocols": "protocol", "models": "model", "studies": "study"}


class ExamplesError(UserError, ValueError):
    """The shipped examples cannot be found, or copying them would overwrite a file."""


def root() -> Path:
    """The folder holding ``protocols/`` and ``models/``: inside the installed package, else the
    source checkout the package was imported from."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "_examples", package.parent):
        if (candidate / "protocols").is_dir():
            return candidate
    raise ExamplesError(
        f"no shipped protocols next to {package} (a broken installation? reinstall neurosleep)"
    )


def shipped(folder: str = "protocols") -> list[Path]:
    """The YAML files of one shipped folder (``protocols``, ``models``, ``studies``), sorted."""
    if folder not in FOLDERS:
        raise ValueError(f"unknown examples folder {folder!r}; choose one of: {', '.join(FOLDERS)}")
    return sorted((root() / folder).glob("*.yaml"))


def protocol_path(protocol: str | Path, folder: str = "protocols") -> Path:
    """A protocol file as given, or else the shipped protocol of that name (``folder``:
    ``studies`` for a study).

    ``"protocols/x.yaml"`` is a path (relative to the current directory); a bare name such as
    ``"hopfield_dreaming"`` (or ``"hopfield_dreaming.yaml"``) that is not a file here names a
    shipped protocol. Raises :class:`ExamplesError` when it is neither.
    """
    path = Path(protocol)
    if path.exists() or len(path.parts) > 1:
        return path
    name = path.stem if path.suffix in (".yaml", ".yml") else path.name
    candidate = root() / folder / f"{name}.yaml"
    if candidate.is_file():
        return candidate
    close = difflib.get_close_matches(name, [p.stem for p in shipped(folder)], n=3)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise ExamplesError(
        f"{protocol}: no such file, and no shipped {FOLDERS[folder]} of that name; "
        f"{hint}`neurosleep examples list` shows them"
    )


def describe(path: Path) -> str:
    """A shipped file's ``description`` key (empty when it has none or cannot be read)."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return ""
    return str(data.get("description", "")) if isinstance(data, dict) else ""


def copy(destination: Path) -> list[Path]:
    """Copy every shipped folder into ``destination`` (created if missing); return the files.

    Never overwrites: if any target file exists, nothing is copied and
    :class:`ExamplesError` names it.
    """
    pairs = [
        (path, destination / folder / path.name) for folder in FOLDERS for path in shipped(folder)
    ]
    existing = [target for _, target in pairs if target.exists()]
    if existing:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise ExamplesError(
            f"{existing[0]} exists{more}; examples copy never overwrites (choose a new folder)"
        )
    for path, target in pairs:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "xb") as out:  # "x": fails rather than replace a file made meanwhile
            out.write(path.read_bytes())
    return [target for _, target in pairs]
