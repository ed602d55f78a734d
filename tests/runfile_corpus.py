"""A corpus of damaged run files, made by code from real run files (nothing checked in).

:func:`make_corpus` copies a base run file once per damage: every dataset and group deleted in
turn, every attribute the reader relies on deleted in turn, lengths made inconsistent, objects
of the wrong kind or dtype, truncated files, files holding only the format attribute, foreign
bytes. Each case says whether the reader must refuse it (``required``) or may read it.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from neurosleep.io.layout import FORMAT


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    required: bool  # True: every analysis command must refuse it (exit 2)


# HDF5 paths (regular expressions) whose loss the reader must refuse: what analysis reads
REQUIRED_OBJECTS = re.compile(
    r"^(phases|metrics|metrics/scalars|metrics/evaluations|metrics/evaluations/phase"
    r"|spikes/[^/]+/(timestamps|node_ids)"
    r"|reports/[^/]+/[^/]+/(data|time|mapping|mapping/(time|node_ids|index_pointers"
    r"|element_ids|element_pos))"
    r"|weights/[^/]+/(values|time|phase|pre|post)"
    r"|metrics/continual/[^/]+/matrix)$"
)
REQUIRED_UNITS = re.compile(
    r"^(reports/[^/]+/[^/]+/data|weights/[^/]+/values|metrics/evaluations/(?!phase$)[^/]+"
    r"|metrics/continual/[^/]+/matrix)$"
)
ROOT_REQUIRED = {"format", "format_version", "status"}
READ_ATTRS = {"units", "n_nodes", "sorting", "description"}  # attributes analysis reads


def make_corpus(bases: dict[str, Path], out: Path) -> list[Case]:
    cases: list[Case] = []
    for label, base in bases.items():
        cases += _deletions(label, base, out)
        cases += _edits(label, base, out)
    cases += _foreign(next(iter(bases.values())), out)
    return cases


def _copy(base: Path, out: Path, name: str) -> Path:
    path = out / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.h5"
    shutil.copyfile(base, path)
    return path


def _objects(base: Path) -> tuple[list[str], list[tuple[str, str]]]:
    objects, attrs = [], [("", key) for key in h5py.File(base, "r").attrs]
    with h5py.File(base, "r") as f:

        def visit(name: str, obj) -> None:
            objects.append(name)
            attrs.extend((name, key) for key in obj.attrs if key in READ_ATTRS)

        f.visititems(visit)
    return objects, attrs


def _deletions(label: str, base: Path, out: Path) -> list[Case]:
    objects, attrs = _objects(base)
    cases = []
    for name in objects:
        path = _copy(base, out, f"{label}-del-{name}")
        with h5py.File(path, "a") as f:
            if name in f:  # a hard link's other name may be gone with a parent
                del f[name]
        cases.append(Case(f"{label} without /{name}", path, bool(REQUIRED_OBJECTS.match(name))))
    for owner, key in attrs:
        path = _copy(base, out, f"{label}-delattr-{owner}@{key}")
        with h5py.File(path, "a") as f:
            del (f[owner] if owner else f).attrs[key]
        required = (
            key in ROOT_REQUIRED
            if not owner
            else (key == "units" and bool(REQUIRED_UNITS.match(owner)))
        )
        cases.append(Case(f"{label} without /{owner}@{key}", path, required))
    return cases


def _resize(name: str, delta: int) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:
        ds = f[name]
        ds.resize((max(0, ds.shape[0] + delta), *ds.shape[1:]))

    return edit


def _replace(name: str, make: Callable[[h5py.File, str], object]) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:
        del f[name]
        make(f, name)

    return edit


def _set_attr(owner: str, key: str, value) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:
        (f[owner] if owner else f).attrs[key] = value

    return edit


def _grow(group: str, n: int) -> Callable[[h5py.File], None]:
    """Spike datasets whose shape declares ``n`` entries (no data behind them)."""

    def edit(f: h5py.File) -> None:
        for name in ("timestamps", "node_ids"):
            f[f"{group}/{name}"].resize((n,))

    return edit


def _set_last(name: str, value: float) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:
        f[name][-1] = value

    return edit


def _huge_id(group: str) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:
        f[f"{group}/node_ids"][-1] = 2**62
        f[group].attrs.pop("n_nodes", None)

    return edit


def _set_phase_stop(value: float) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:
        row = f["phases"][-1]
        row["stop_time"] = value
        f["phases"][-1] = row

    return edit


def _set_text(name: str, text: str) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:
        if name in f:
            del f[name]
        f.create_dataset(name, data=text, dtype=h5py.string_dtype())

    return edit


def _edits(label: str, base: Path, out: Path) -> list[Case]:
    """Inconsistent lengths, wrong kinds and dtypes, absurd attributes: all must be refused."""
    with h5py.File(base, "r") as f:
        spikes = [f"spikes/{p}" for p in f.get("spikes", {})]
        reports = [f"reports/{n}/{p}" for n in f.get("reports", {}) for p in f[f"reports/{n}"]]
        weights = [f"weights/{p}" for p in f.get("weights", {})]
        sparse = [w for w in weights if "pre" in f[w]]
    edits: dict[str, Callable[[h5py.File], None]] = {
        "status bogus": _set_attr("", "status", "finished?"),
        "phase stop 1e300": _set_phase_stop(1e300),
        "phase stop before start": _set_phase_stop(-1.0),
        "n_tasks text": _set_attr("", "n_tasks", "two"),
        "n_tasks huge": _set_attr("", "n_tasks", 10**12),
        "task_names not JSON": _set_attr("", "task_names", "[A, B"),
        "format_version text": _set_attr("", "format_version", "one"),
        "format_version 99": _set_attr("", "format_version", 99),
        "phases as a group": _replace("phases", lambda f, n: f.create_group(n)),
        "phases without columns": _replace("phases", lambda f, n: f.create_dataset(n, data=[1.0])),
        "scalars as numbers": _replace(
            "metrics/scalars", lambda f, n: f.create_dataset(n, data=[1])
        ),
        "evaluation phase longer": _resize("metrics/evaluations/phase", 3),
        "evaluation phase 2-d": _replace(
            "metrics/evaluations/phase", lambda f, n: f.create_dataset(n, data=np.zeros((2, 2)))
        ),
        "provenance not text": _replace(
            "provenance/protocol", lambda f, n: f.create_dataset(n, data=np.arange(3))
        ),
        "sleep group misnamed": lambda f: f.create_group("sleep/not-a-phase"),
    }
    for s in spikes:
        edits |= {
            f"{s} timestamps shorter": _resize(f"{s}/timestamps", -5),
            f"{s} node_ids shorter": _resize(f"{s}/node_ids", -1),
            f"{s} as a dataset": _replace(s, lambda f, n: f.create_dataset(n, data=[0.0])),
            f"{s} timestamps a group": _replace(f"{s}/timestamps", lambda f, n: f.create_group(n)),
            f"{s} node_ids float": _replace(
                f"{s}/node_ids",
                lambda f, n: f.create_dataset(n, data=f[n.replace("node_ids", "timestamps")][:]),
            ),
            f"{s} n_nodes huge": _set_attr(s, "n_nodes", 10**12),
            f"{s} declared huge": _grow(s, 10**12),
            f"{s} last time 1e300": _set_last(f"{s}/timestamps", 1e300),
            f"{s} n_nodes text": _set_attr(s, "n_nodes", "many"),
        }
    for r in reports:
        edits |= {
            f"{r} time shorter": _resize(f"{r}/time", -2),
            f"{r} last time inf": _set_last(f"{r}/time", np.inf),
            f"{r} data 1-d": _replace(f"{r}/data", lambda f, n: f.create_dataset(n, data=[1.0])),
            f"{r} node_ids shorter": _replace(
                f"{r}/mapping/node_ids", lambda f, n: f.create_dataset(n, data=[0])
            ),
            f"{r} mapping time short": _replace(
                f"{r}/mapping/time", lambda f, n: f.create_dataset(n, data=[0.0])
            ),
        }
    for w in weights:
        edits |= {
            f"{w} time shorter": _resize(f"{w}/time", -1),
            f"{w} phase longer": _resize(f"{w}/phase", 2),
            f"{w} values 1-d": _replace(
                f"{w}/values", lambda f, n: f.create_dataset(n, data=[1.0])
            ),
        }
    for w in sparse:
        edits[f"{w} pre shorter"] = _replace(f"{w}/pre", lambda f, n: f.create_dataset(n, data=[0]))
    tolerated = {  # what analysis reads only in places: refused there, not at open
        **{f"{s} node id huge, no n_nodes": _huge_id(s) for s in spikes},
        "protocol not YAML": _set_text("provenance/protocol", "{{{: [ not yaml"),
        "protocol with bad replay settings": _set_text(
            "provenance/protocol",
            "data: {networks: banana, memories: {replay_bin: fast, replay_threshold_sd: x}}",
        ),
        "model not JSON": _set_text("provenance/model", "{ not json"),
        "environment not JSON": _set_text("provenance/environment", "[1, 2"),
        "protocol metadata of wrong types": _set_text(
            "provenance/protocol", "name: x\nmetadata: {keywords: 5, subject: {age: [1]}}"
        ),
        "protocol metadata not a mapping": _set_text("provenance/protocol", "metadata: [1, 2]"),
        "protocol an alias bomb": _set_text(
            "provenance/protocol",
            "a: &a [x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
                for p, c in zip("abcdefgh", "bcdefghi", strict=True)
            ),
        ),
        "created not a time": _set_attr("", "created", "yesterday"),
    }
    cases = []
    for name, edit in (edits | tolerated).items():
        path = _copy(base, out, f"{label}-edit-{name}")
        with h5py.File(path, "a") as f:
            edit(f)
        cases.append(Case(f"{label}: {name}", path, name not in tolerated))
    return cases


def _foreign(base: Path, out: Path) -> list[Case]:
    """Truncated copies, bytes that are not a run file, files holding only root attributes."""
    data = base.read_bytes()
    cases = []
    for fraction in (0.0, 0.02, 0.3, 0.6, 0.9, 0.995):
        path = out / f"truncated-{fraction}.h5"
        path.write_bytes(data[: int(len(data) * fraction)])
        cases.append(Case(f"truncated to {fraction:.1%}", path, True))
    rng = np.random.default_rng(0)
    for name, content in (
        ("text.h5", b"# README\nnot a run file\n"),
        ("random.h5", rng.bytes(4096)),
        ("signature.h5", b"\x89HDF\r\n\x1a\n" + rng.bytes(2048)),
    ):
        (out / name).write_bytes(content)
        cases.append(Case(name, out / name, True))
    for name, attrs in (
        ("only-format.h5", {"format": FORMAT}),
        ("format-version.h5", {"format": FORMAT, "format_version": 1}),
        ("format-version-status.h5", {"format": FORMAT, "format_version": 1, "status": "complete"}),
        ("other-format.h5", {"format": "something-else"}),
    ):
        with h5py.File(out / name, "w") as f:
            f.attrs.update(attrs)
        cases.append(Case(name, out / name, True))
    return cases
