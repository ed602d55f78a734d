"""Export a run file to SONATA files that libsonata and bmtk read.

- ``DIR/nodes.h5`` + ``DIR/node_types.csv``: one node population per spiking population and
  spike source of the model (``/nodes/<population>/{node_type_id, node_group_id,
  node_group_index, node_id, 0/}``; ``node_id`` for bmtk), sized as the model says; a source
  is ``model_type virtual``.
- ``DIR/<projection>_edges.h5`` + ``DIR/edge_types.csv`` per sparse projection with weight
  snapshots: ``/edges/<projection>/{source_node_id, target_node_id}`` (each with the
  ``node_population`` attribute), ``edge_type_id``, ``edge_group_id``, ``edge_group_index``,
  ``0/syn_weight`` (the last snapshot, in the run file's synapse order) and the ``indices`` group
  (``source_to_target`` and ``target_to_source``: ``node_id_to_ranges`` [nodes × 2] and
  ``range_to_edge_id`` [ranges × 2], right-open; ``node_id_to_range``, a hard link, for bmtk).
- ``DIR/spikes.h5``: root attributes ``magic`` (0x0A7A) and ``version`` ([0, 1]);
  ``/spikes/<population>/{timestamps (ms), node_ids}`` with ``sorting`` as the HDF5 enum
  (``by_time``: the run file stores spikes in time order), copied in blocks.
- ``DIR/<report>.h5`` per recorded variable: ``/report/<population>/data`` (float32, which
  libsonata requires) and ``mapping/{node_ids, index_pointers, index_pointer, element_ids,
  element_pos, time}`` with ``mapping/time = [start, start + n·dt, dt]``.
- ``DIR/circuit_config.json``: the nodes and edges files, as a SONATA circuit config.

Populations and projection endpoints come from the model stored in ``/provenance/model``.
Everything is uncompressed (the PyPI libsonata wheel has no zlib) and written with
``libver=('earliest','v110')``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from neurosleep.errors import RunFileError
from neurosleep.io.blocks import BLOCK, population_size
from neurosleep.io.layout import LIBVER, SORTING
from neurosleep.io.runfile import RunFile

SPIKES_MAGIC = 0x0A7A  # SONATA spike-file magic number
SPIKES_VERSION = (0, 1)


@dataclass(frozen=True)
class Circuit:
    """Node populations (name → (size, model_type)) and sparse projections (name → (pre, post))."""

    nodes: dict[str, tuple[int, str]]
    edges: dict[str, tuple[str, str]]


def export_sonata(run: RunFile, out_dir: str | Path) -> list[Path]:
    """Write the SONATA files of ``run`` into ``out_dir``; returns the paths written.

    A report sampled with gaps (e.g. only during sleep phases) cannot be described by SONATA's
    single ``[start, stop, dt]``: its exact sample times are kept in an extra ``time`` dataset
    beside ``data`` and a ``gaps`` attribute is set on the population group.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    circuit = circuit_of(run)
    if circuit.nodes:
        written += _nodes(circuit, out)
    edge_files = []
    for projection, (pre, post) in circuit.edges.items():
        path = out / f"{projection}_edges.h5"
        _edges(run, projection, pre, post, circuit, path)
        edge_files.append(path)
    if edge_files:
        types = out / "edge_types.csv"
        types.write_text("edge_type_id model_template\n0 static_synapse\n")
        written += [*edge_files, types]
    if circuit.nodes:
        written.append(_circuit_config(circuit, out))
    if run.populations():
        written.append(_spikes(run, out / "spikes.h5"))
    names = sorted({name for name, _ in run.reports()})
    for name in names:
        written.append(_report(run, name, out / f"{name}.h5"))
    return written


def circuit_of(run: RunFile) -> Circuit:
    """The node populations and the exported projections of a run.

    A spiking model (``/provenance/model`` of kind ``snn``) gives every population and source
    with its size; a population recorded in ``/spikes`` is at least :func:`population_size`
    large (a batch of networks numbers network b's neuron i as b·size + i; edges are network
    0's). A sparse projection with snapshots is exported when the model names ``pre``/``post``.
    """
    model = run.stored_model()
    try:
        nodes: dict[str, tuple[int, str]] = {}
        if model.get("kind") == "snn":
            for name, body in model.get("populations", {}).items():
                nodes[name] = (int(body["size"]), "point_neuron")
            for name, body in model.get("sources", {}).items():
                nodes[name] = (int(body["size"]), "virtual")
        projections = {
            name: (str(body["pre"]), str(body["post"]))
            for name, body in model.get("projections", {}).items()
            if model.get("kind") == "snn"
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        raise RunFileError(
            f"{run.path}: /provenance/model is not the JSON of a model spec (damaged)"
        ) from None
    for population in run.populations():  # a batch records network b's neuron i as b·size + i
        size, model_type = nodes.get(population, (0, "point_neuron"))
        nodes[population] = (max(size, population_size(run, population)), model_type)
    edges = {}
    for projection in run.projections():
        group = run.file[f"weights/{projection}"]
        if "pre" not in group or not group["values"].shape[0]:
            continue
        if projection not in projections:
            raise RunFileError(
                f"{run.path}: /provenance/model does not name the populations of projection "
                f"{projection!r}; its SONATA edges cannot be written"
            )
        edges[projection] = projections[projection]
    return Circuit(nodes=nodes, edges=edges)


def _nodes(circuit: Circuit, out: Path) -> list[Path]:
    path, types = out / "nodes.h5", out / "node_types.csv"
    rows = ["node_type_id pop_name model_type"]
    with h5py.File(path, "w", libver=LIBVER) as f:
        for type_id, (name, (size, model_type)) in enumerate(sorted(circuit.nodes.items())):
            group = f.create_group(f"nodes/{name}")
            group.create_dataset("node_type_id", data=np.full(size, type_id, dtype="u8"))
            group.create_dataset("node_group_id", data=np.zeros(size, dtype="u4"))
            group.create_dataset("node_group_index", data=np.arange(size, dtype="u8"))
            group.create_dataset("node_id", data=np.arange(size, dtype="u8"))  # bmtk needs it
            group.create_group("0")
            rows.append(f"{type_id} {name} {model_type}")
    types.write_text("\n".join(rows) + "\n")
    return [path, types]


def edge_index(node_ids: np.ndarray, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """SONATA edge index of one direction: (``node_id_to_ranges`` [n_nodes × 2],
    ``range_to_edge_id`` [ranges × 2]), both right-open; a node without edges gets [0, 0].

    The edges of a node are its edge ids in ascending order, cut into runs of consecutive ids.
    """
    ids = np.asarray(node_ids, dtype=np.int64)
    order = np.argsort(ids, kind="stable")  # edge ids grouped by node, ascending within a node
    sorted_ids = ids[order]
    new_range = np.ones(order.size, dtype=bool)
    new_range[1:] = (sorted_ids[1:] != sorted_ids[:-1]) | (order[1:] != order[:-1] + 1)
    starts = np.flatnonzero(new_range)
    stops = np.append(starts[1:], order.size)
    range_to_edge = np.stack([order[starts], order[stops - 1] + 1], axis=1).astype("u8")
    range_node = sorted_ids[starts]
    first = np.searchsorted(range_node, np.arange(n_nodes), side="left")
    last = np.searchsorted(range_node, np.arange(n_nodes), side="right")
    node_to_range = np.stack([first, last], axis=1).astype("u8")
    node_to_range[first == last] = 0
    return node_to_range, range_to_edge.reshape(-1, 2)


def _edges(run: RunFile, projection: str, pre: str, post: str, circuit: Circuit, path: Path):
    source = run.file[f"weights/{projection}"]
    sources, targets = source["pre"][:].astype("u8"), source["post"][:].astype("u8")
    n = sources.size
    with h5py.File(path, "w", libver=LIBVER) as f:
        group = f.create_group(f"edges/{projection}")
        for key, ids, population in (
            ("source_node_id", sources, pre),
            ("target_node_id", targets, post),
        ):
            group.create_dataset(key, data=ids).attrs["node_population"] = population
        group.create_dataset("edge_type_id", data=np.zeros(n, dtype="u8"))
        group.create_dataset("edge_group_id", data=np.zeros(n, dtype="u4"))
        group.create_dataset("edge_group_index", data=np.arange(n, dtype="u8"))
        weight = group.create_group("0").create_dataset("syn_weight", data=source["values"][-1])
        weight.attrs["units"] = source["values"].attrs["units"]
        for direction, ids, population in (
            ("source_to_target", sources, pre),
            ("target_to_source", targets, post),
        ):
            node_to_range, range_to_edge = edge_index(ids, circuit.nodes[population][0])
            index = group.create_group(f"indices/{direction}")
            index.create_dataset("node_id_to_ranges", data=node_to_range)
            index.create_dataset("range_to_edge_id", data=range_to_edge)
            index["node_id_to_range"] = index["node_id_to_ranges"]  # bmtk reads the singular name


def _circuit_config(circuit: Circuit, out: Path) -> Path:
    path = out / "circuit_config.json"
    nodes = {name: {"type": model_type} for name, (_, model_type) in circuit.nodes.items()}
    config = {
        "manifest": {"$BASE_DIR": "."},
        "components": {},
        "networks": {
            "nodes": [
                {
                    "nodes_file": "$BASE_DIR/nodes.h5",
                    "node_types_file": "$BASE_DIR/node_types.csv",
                    "populations": nodes,
                }
            ],
            "edges": [
                {
                    "edges_file": f"$BASE_DIR/{name}_edges.h5",
                    "edge_types_file": "$BASE_DIR/edge_types.csv",
                    "populations": {name: {"type": "chemical"}},
                }
                for name in circuit.edges
            ],
        },
    }
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def _spikes(run: RunFile, path: Path) -> Path:
    with h5py.File(path, "w", libver=LIBVER) as f:
        f.attrs.create("magic", SPIKES_MAGIC, dtype="u4")
        f.attrs.create("version", np.array(SPIKES_VERSION, dtype="u4"))
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
