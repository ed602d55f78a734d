"""NWB export of real runs: protocol metadata (Subject, institution, keywords), nwbinspector
finds nothing CRITICAL or BEST_PRACTICE_VIOLATION, Neo keeps population and node id."""

import numpy as np
import pytest

from neurosleep.cli import main
from neurosleep.io import open_run
from neurosleep.io.neo import spiketrains
from neurosleep.protocol import load_protocol
from neurosleep.runner import run

pytestmark = pytest.mark.formats
pynwb = pytest.importorskip("pynwb", reason="formats extra (pynwb) not installed")

METADATA = {
    "experimenter": ["Doe, Jane"],
    "institution": "Example University",
    "lab": "Sleep Lab",
    "keywords": ["sleep", "Hopfield network", "dreaming"],
    "experiment_description": "Hebbian storage beyond capacity, then dreaming sleep",
    "related_publications": ["doi:10.1016/j.neunet.2018.10.005"],
    "subject": {"subject_id": "net-1", "species": "Mus musculus", "age": "P90D", "sex": "O"},
}


def problems(path) -> list[str]:
    """nwbinspector's CRITICAL and BEST_PRACTICE_VIOLATION messages for one file."""
    from nwbinspector import Importance, inspect_nwbfile

    worst = (Importance.CRITICAL, Importance.BEST_PRACTICE_VIOLATION)
    return [
        f"{m.importance.name} {m.check_function_name}: {m.message}"
        for m in inspect_nwbfile(nwbfile_path=str(path))
        if m.importance in worst
    ]


def test_protocol_metadata_reaches_nwb(hopfield_protocol, write_protocol, tmp_path):
    pytest.importorskip("nwbinspector", reason="formats extra (nwbinspector) not installed")
    hopfield_protocol["metadata"] = METADATA
    # 150 sleep states of 100 neurons: nwbinspector's orientation check flags any TimeSeries
    # with fewer samples than columns, time-first or not
    hopfield_protocol["schedule"][2]["sleep"]["steps"] = 150
    protocol = load_protocol(write_protocol(hopfield_protocol))
    result = run(protocol, output=tmp_path / "run.h5", progress=False)
    out = tmp_path / "run.nwb"
    assert main(["export", str(result.path), "--nwb", str(out)]) == 0
    assert problems(out) == []
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        nwb = io.read()
        assert list(nwb.experimenter) == ["Doe, Jane"] and nwb.lab == "Sleep Lab"
        assert nwb.institution == "Example University"
        assert list(nwb.keywords[:]) == METADATA["keywords"]
        assert nwb.experiment_description == METADATA["experiment_description"]
        assert list(nwb.related_publications) == METADATA["related_publications"]
        s = nwb.subject
        assert (s.subject_id, s.species, s.age, s.sex) == ("net-1", "Mus musculus", "P90D", "O")
        j = nwb.processing["weights"]["J"]
        with open_run(result.path) as r:
            np.testing.assert_array_equal(j["values"].data[:], r.weights("J").values)
        assert j["values"].data.shape == (2, 100, 100)  # [snapshot × N × N], a table's rows
    from neurosleep.io.neo import read_nwb  # Neo's own NWBIO fails on list-valued keywords

    assert read_nwb(out).annotations["keywords"] == METADATA["keywords"]


def test_unknown_metadata_key_names_file_line_and_key(hopfield_protocol, write_protocol):
    from neurosleep.errors import SpecError

    hopfield_protocol["metadata"] = {"institute": "x"}
    with pytest.raises(SpecError, match=r"p\.yaml:\d+.*metadata\.institute"):
        load_protocol(write_protocol(hopfield_protocol))


def test_spiking_run_without_metadata_passes_nwbinspector(consolidation_run, tmp_path):
    pytest.importorskip("nwbinspector", reason="formats extra (nwbinspector) not installed")
    out = tmp_path / "cons.nwb"
    assert main(["export", str(consolidation_run), "--nwb", str(out)]) == 0
    assert problems(out) == []
    with open_run(consolidation_run) as r:
        ee = r.weights("ee")
        spikes = r.spikes("inh")
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        nwb = io.read()
        assert nwb.units.resolution == pytest.approx(0.5e-3)  # the model's dt, 0.5 ms, in s
        assert nwb.subject.species.endswith("NCBITaxon_32630")  # "synthetic construct"
        assert nwb.experiment_description.startswith("sequence A, reversed sequence B")
        table = nwb.processing["weights"]["ee"]
        np.testing.assert_array_equal(table["values"].data[:], ee.values)
        np.testing.assert_array_equal(table["phase"].data[:], ee.phases)
        units = nwb.units.to_dataframe()
        row = units[(units.population == "inh") & (units.node_id == 7)].iloc[0]
        np.testing.assert_allclose(row.spike_times, spikes.times[spikes.node_ids == 7] / 1000)


def test_neo_keeps_population_and_node_id(consolidation_run, tmp_path):
    pytest.importorskip("neo", reason="formats extra (neo) not installed")
    from neurosleep.io.neo import read_nwb

    out = tmp_path / "cons.nwb"
    assert main(["export", str(consolidation_run), "--nwb", str(out)]) == 0
    trains = read_nwb(out).segments[0].spiketrains
    with open_run(consolidation_run) as r:
        spikes = r.spikes("exc")
        direct = spiketrains(r, "exc")
    assert len(trains) == 250
    by_key = {(t.annotations["population"], t.annotations["node_id"]): t for t in trains}
    assert set(by_key) == {("exc", k) for k in range(200)} | {("inh", k) for k in range(50)}
    for k in (0, 33, 199):
        expected = spikes.times[spikes.node_ids == k]
        np.testing.assert_allclose(by_key["exc", k].rescale("ms").magnitude, expected)
        assert direct[k].annotations["population"] == "exc"
        assert direct[k].annotations["node_id"] == k and direct[k].name == f"exc:{k}"
