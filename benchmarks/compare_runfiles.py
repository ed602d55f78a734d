"""Compare two run files on every dataset and attribute; print the differences.

Used to show that a refactor changes no number: run the same protocols before and after, then

    python benchmarks/compare_runfiles.py before.h5 after.h5          (one pair)
    python benchmarks/compare_runfiles.py before_dir/ after_dir/      (every *.h5 of the first)

Exit code 0 when every pair is equal, 1 otherwise. Numeric arrays must be equal bit for bit
(NaN equal to NaN) unless ``--rtol`` is given. What legitimately differs between two runs of
the same protocol is ignored: the root attributes ``created`` / ``finished`` and the like,
``/provenance/environment`` and ``/provenance/command_line`` (paths, versions, hosts), and wall
times (``/phases`` column ``wall_seconds``, any dataset or attribute whose name says ``wall``),
and the run file's own path (``output`` in ``/provenance/protocol``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import h5py
import numpy as np
import yaml

IGNORED_PATHS = ("/provenance/environment", "/provenance/command_line")
IGNORED_ATTRS = ("created", "closed", "finished", "modified", "updated", "neurosleep_version")
LOCATION_KEYS = ("output",)  # keys of /provenance/protocol that name where the file was written


def _ignored(name: str) -> bool:
    leaf = name.rsplit("/", 1)[-1].lower()
    return "wall" in leaf or leaf in IGNORED_ATTRS


def _values(obj) -> np.ndarray | bytes | str | dict:
    data = obj[()]
    if obj.name == "/provenance/protocol":
        resolved = yaml.safe_load(data)
        return {k: v for k, v in resolved.items() if k not in LOCATION_KEYS}
    if isinstance(data, np.ndarray) and data.dtype.names:  # compound table: drop wall columns
        keep = [n for n in data.dtype.names if not _ignored(n)]
        return data[keep] if keep != list(data.dtype.names) else data
    return data


def _equal(a, b, rtol: float) -> bool:
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        if a.shape != b.shape or a.dtype.names != b.dtype.names:
            return False
        if a.dtype.names:
            return all(_equal(a[n], b[n], rtol) for n in a.dtype.names)
        if a.dtype.kind in "fc" and b.dtype.kind in "fc":
            if rtol:
                return bool(np.allclose(a, b, rtol=rtol, atol=0, equal_nan=True))
            return bool(np.array_equal(a, b, equal_nan=True))
        return bool(np.array_equal(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return _equal(np.asarray(a), np.asarray(b), rtol)
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    return a == b


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype}{list(value.shape)}"
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."


def _walk(f: h5py.File) -> dict[str, h5py.Group | h5py.Dataset]:
    items = {"/": f}
    f.visititems(lambda name, obj: items.__setitem__("/" + name, obj))
    return {k: v for k, v in items.items() if not k.startswith(IGNORED_PATHS)}


def compare_runfiles(a: str | Path, b: str | Path, rtol: float = 0.0) -> list[str]:
    """Differences between run files ``a`` and ``b`` (empty: equal), one line each."""
    out = []
    with h5py.File(a, "r", locking=False) as fa, h5py.File(b, "r", locking=False) as fb:
        ia, ib = _walk(fa), _walk(fb)
        for name in sorted(set(ia) ^ set(ib)):
            out.append(f"{name}: only in {'first' if name in ia else 'second'}")
        for name in sorted(set(ia) & set(ib)):
            oa, ob = ia[name], ib[name]
            if isinstance(oa, h5py.Dataset) != isinstance(ob, h5py.Dataset):
                out.append(f"{name}: dataset in one file, group in the other")
                continue
            if isinstance(oa, h5py.Dataset) and not _ignored(name):
                va, vb = _values(oa), _values(ob)
                if not _equal(va, vb, rtol):
                    out.append(f"{name}: {_difference(va, vb)}")
            for key in sorted(set(oa.attrs) | set(ob.attrs)):
                if _ignored(key):
                    continue
                if key not in oa.attrs or key not in ob.attrs:
                    out.append(f"{name} @{key}: only in {'first' if key in oa.attrs else 'second'}")
                elif not _equal(oa.attrs[key], ob.attrs[key], rtol):
                    out.append(
                        f"{name} @{key}: {_describe(oa.attrs[key])} != {_describe(ob.attrs[key])}"
                    )
    return out


def _difference(a, b) -> str:
    if (
        isinstance(a, np.ndarray)
        and isinstance(b, np.ndarray)
        and a.shape == b.shape
        and a.dtype.kind in "fiu"
        and b.dtype.kind in "fiu"
        and not a.dtype.names
    ):
        x, y = a.astype(np.float64), b.astype(np.float64)
        diff = np.abs(x - y)
        bad = ~((diff == 0) | (np.isnan(x) & np.isnan(y)))
        nan = int((np.isnan(x) != np.isnan(y)).sum())
        finite = diff[np.isfinite(diff)]
        largest = f"max |diff| {finite.max():.3g}" if finite.size else "no finite pair"
        return f"{int(bad.sum())} of {a.size} values differ ({largest}; NaN in one only: {nan})"
    return f"{_describe(a)} != {_describe(b)}"


def _pairs(a: Path, b: Path) -> list[tuple[Path, Path]]:
    if a.is_dir():
        return [(x, b / x.name) for x in sorted(a.glob("*.h5"))]
    return [(a, b)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path, help="run file, or folder of run files")
    parser.add_argument("second", type=Path, help="run file, or folder with the same names")
    parser.add_argument("--rtol", type=float, default=0.0, help="relative tolerance (default 0)")
    args = parser.parse_args(argv)
    failed = 0
    pairs = _pairs(args.first, args.second)
    for a, b in pairs:
        if not b.exists():
            print(f"{a.name}: MISSING {b}")
            failed += 1
            continue
        diffs = compare_runfiles(a, b, args.rtol)
        print(f"{a.name}: {'equal' if not diffs else f'{len(diffs)} differences'}")
        for line in diffs[:20]:
            print(f"  {line}")
        failed += bool(diffs)
    print(f"{len(pairs) - failed} of {len(pairs)} pairs equal")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
