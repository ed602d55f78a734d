"""SONATA export of a real spiking run, read back by libsonata (and bmtk where installed):
nodes, edges with their populations and indices, spikes with the spike-file header."""

import h5py
import numpy as np
import pytest

from neurosleep.cli import main
from neurosleep.io import open_run
from neurosleep.io.export_sonata import edge_index

pytestmark = pytest.mark.formats
libsonata = pytest.importorskip("libsonata", reason="formats extra (libsonata) not installed")


@pytest.fixture(scope="module")
def exported(consolidation_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("sonata")
    assert main(["export", str(consolidation_run), "--sonata", str(out)]) == 0
    return out


def test_nodes_and_edges_read_back(consolidation_run, exported):
    with open_run(consolidation_run) as run:
        ee = run.weights("ee")
    nodes = libsonata.NodeStorage(str(exported / "nodes.h5"))
    sizes = {name: nodes.open_population(name).size for name in nodes.population_names}
    assert sizes == {"exc": 200, "inh": 50, "stim": 200, "noise": 200, "noise_i": 50}
    edges = libsonata.EdgeStorage(str(exported / "ee_edges.h5")).open_population("ee")
    assert (edges.source, edges.target, edges.size) == ("exc", "exc", ee.pre.size)
    everything = edges.select_all()
    np.testing.assert_array_equal(edges.source_nodes(everything), ee.pre)
    np.testing.assert_array_equal(edges.target_nodes(everything), ee.post)
    np.testing.assert_array_equal(edges.get_attribute("syn_weight", everything), ee.values[-1])
    with h5py.File(exported / "ee_edges.h5") as f:
        np.testing.assert_array_equal(f["edges/ee/edge_type_id"][:], 0)
    for node in (0, 57, 199):
        out_ids = np.sort(edges.efferent_edges([node]).flatten())
        in_ids = np.sort(edges.afferent_edges([node]).flatten())
        np.testing.assert_array_equal(out_ids, np.flatnonzero(ee.pre == node))
        np.testing.assert_array_equal(in_ids, np.flatnonzero(ee.post == node))
        assert out_ids.size > 0 and in_ids.size > 0
    config = libsonata.CircuitConfig.from_file(str(exported / "circuit_config.json"))
    assert config.node_populations == set(sizes) and config.edge_populations == {"ee"}
    assert config.node_population_properties("stim").type == "virtual"


def test_spikes_file_header_and_sorting(consolidation_run, exported):
    with h5py.File(exported / "spikes.h5") as f:
        assert f.attrs["magic"] == 0x0A7A and list(f.attrs["version"]) == [0, 1]
    reader = libsonata.SpikeReader(str(exported / "spikes.h5"))
    assert sorted(reader.get_population_names()) == ["exc", "inh"]
    with open_run(consolidation_run) as run:
        for pop in ("exc", "inh"):
            spikes = run.spikes(pop)
            got = np.array(reader[pop].get())
            assert reader[pop].sorting == "by_time" and len(got) == spikes.times.size > 0
            np.testing.assert_array_equal(got[:, 1], spikes.times)
            np.testing.assert_array_equal(got[:, 0], spikes.node_ids)


def test_edge_index_matches_libsonata(exported, tmp_path):
    """Our indices equal the ones libsonata writes itself for the same edges."""
    copy = tmp_path / "edges.h5"
    with h5py.File(exported / "ee_edges.h5") as src, h5py.File(copy, "w") as dst:
        group = dst.create_group("edges/ee")
        for key in ("source_node_id", "target_node_id", "edge_type_id"):
            src.copy(src[f"edges/ee/{key}"], group, key)
        for key in ("edge_group_id", "edge_group_index"):
            src.copy(src[f"edges/ee/{key}"], group, key)
        ours = {d: src[f"edges/ee/indices/{d}"] for d in ("source_to_target", "target_to_source")}
        ours = {d: (g["node_id_to_ranges"][:], g["range_to_edge_id"][:]) for d, g in ours.items()}
    libsonata.EdgePopulation.write_indices(str(copy), "ee", 200, 200)
    with h5py.File(copy) as f:
        for direction, (node_to_range, range_to_edge) in ours.items():
            theirs = f[f"edges/ee/indices/{direction}"]
            np.testing.assert_array_equal(node_to_range, theirs["node_id_to_ranges"][:])
            np.testing.assert_array_equal(range_to_edge, theirs["range_to_edge_id"][:])


def test_edge_index_by_hand():
    # edges 0..5 with sources 2, 0, 2, 2, 1, 0; node 3 has none
    node_to_range, range_to_edge = edge_index(np.array([2, 0, 2, 2, 1, 0]), 4)
    np.testing.assert_array_equal(range_to_edge, [[1, 2], [5, 6], [4, 5], [0, 1], [2, 4]])
    np.testing.assert_array_equal(node_to_range, [[0, 2], [2, 3], [3, 5], [0, 0]])


def test_bmtk_reads_the_export(consolidation_run, exported):
    pytest.importorskip("bmtk", reason="bmtk not installed")
    from bmtk.utils.reports.spike_trains import SpikeTrains
    from bmtk.utils.sonata import File

    files = File(
        data_files=[str(exported / "nodes.h5"), str(exported / "ee_edges.h5")],
        data_type_files=[str(exported / "node_types.csv"), str(exported / "edge_types.csv")],
    )
    with open_run(consolidation_run) as run:
        ee = run.weights("ee")
        count = run.spike_count("exc")
    assert len(files.nodes["exc"]) == 200
    edges = files.edges["ee"]
    got = [(e.target_node_id, e["syn_weight"]) for e in edges.get_source(0)]
    mask = ee.pre == 0
    np.testing.assert_array_equal([t for t, _ in got], ee.post[mask])
    np.testing.assert_array_equal([w for _, w in got], ee.values[-1][mask])
    assert SpikeTrains.load(str(exported / "spikes.h5")).n_spikes("exc") == count
