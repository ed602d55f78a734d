"""Export a run file to SONATA files that libsonata and bmtk read.

- ``DIR/spikes.h5``: ``/spikes/<population>/{timestamps (ms), node_ids}``, ``sorting`` as the
  HDF5 enum (by_time), copied in blocks.
- ``DIR/<report>.h5`` per recorded variable: ``/report/<population>/data`` (float32, which
  libsonata requires) and ``mapping/{node_ids, index_pointers, index_pointer, element_ids,
  element_pos, time}`` with ``mapping/time = [start, start + n·dt, dt]``.
- ``DIR/<projection>_edges.h5`` per sparse projection: the last weight snapshot as an edges
  file (``0/syn_weight``).

Everything is uncompressed (the PyPI libsonata wheel has no zlib) and written with
``libver=('v110','v110')``.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from neurosleep.io.blocks import BLOCK
from neurosleep.io.layout import LIBVER, SORTING
from neurosleep.io.runfile import RunFile


def export_sonata(run: RunFile, out_dir: str | Path) -> list[Path]:
    """Write the SONATA files of ``run`` into ``out_dir``; returns the paths written.

    A report sampled with gaps (e.g. only during sleep phases) cannot be described by SONATA's
    single ``[start, stop, dt]``: its exact sample times are kept in an extra ``time`` dataset
    beside ``data`` and a ``gaps`` attribute is set on the population group.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if run.populations():
        written.append(_spikes(run, out / "spikes.h5"))
    names = sorted({name for name, _ in run.reports()})
    for name in names:
        written.append(_report(run, name, out / f"{name}.h5"))
    for projection in run.projections():
        group = run.file[f"weights/{projection}"]
        if "pre" in group and group["values"].shape[0]:
            written.append(_edges(group, projection, out / f"{projection}_edges.h5"))
    return written


def _spikes(run: RunFile, path: Path) -> Path:
    with h5py.File(path, "w", libver=LIBVER) as f:
        for population in run.populations():
            source = run.file[f"spikes/{population}"]
            group = f.create_group(f"spikes/{population}")
            group.attrs.create("sorting", 2, dtype=SORTING)
            n = source["timestamps"].shape[0]
            ts = group.create_dataset("timestamps", shape=(n,), dtype="f8")
            ts.attrs["units"] = "ms"
            ids = group.create_dataset("node_ids", shape=(n,), dtype="u8")
            for start in range(0, n, BLOCK):
                stop = min(start + BLOCK, n)
                ts[start:stop] = source["timestamps"][start:stop]
                ids[start:stop] = source["node_ids"][start:stop]
    return path


def _report(run: RunFile, name: str, path: Path) -> Path:
    with h5py.File(path, "w", libver=LIBVER) as f:
        for report_name, population in run.reports():
            if report_name != name:
                continue
            source = run.file[f"reports/{name}/{population}"]
            group = f.create_group(f"report/{population}")
            rows, cols = source["data"].shape
            data = group.create_dataset(
                "data", shape=(rows, cols), dtype="f4"
            )  # libsonata: float32
            data.attrs["units"] = source["data"].attrs["units"]
            step = max(1, BLOCK // max(cols, 1))
            for start in range(0, rows, step):
                data[start : start + step] = source["data"][start : start + step]
            mapping = group.create_group("mapping")
            for key in ("node_ids", "index_pointers", "element_ids", "element_pos"):
                mapping.create_dataset(key, data=source[f"mapping/{key}"][:])
            mapping["index_pointer"] = mapping["index_pointers"]  # bmtk reads the singular name
            times = source["time"][:]
            start, _, dt = source["mapping/time"][:]
            mapping.create_dataset("time", data=np.array([start, start + rows * dt, dt]))
            mapping["time"].attrs["units"] = "ms"
            if rows and not np.allclose(
                times, start + dt * np.arange(rows), atol=1e-9 * max(dt, 1)
            ):
                group.create_dataset("time", data=times).attrs["units"] = "ms"
                group.attrs["gaps"] = True
    return path


def _edges(source: h5py.Group, projection: str, path: Path) -> Path:
    pre, post = source["pre"][:], source["post"][:]
    with h5py.File(path, "w", libver=LIBVER) as f:
        group = f.create_group(f"edges/{projection}")
        group.create_dataset("source_node_id", data=pre.astype("u8"))
        group.create_dataset("target_node_id", data=post.astype("u8"))
        group.create_dataset("edge_type_id", data=np.zeros(pre.size, dtype="u4"))
        group.create_dataset("edge_group_id", data=np.zeros(pre.size, dtype="u4"))
        group.create_dataset("edge_group_index", data=np.arange(pre.size, dtype="u8"))
        weight = group.create_group("0").create_dataset("syn_weight", data=source["values"][-1])
        weight.attrs["units"] = source["values"].attrs["units"]
    return path
