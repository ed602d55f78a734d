"""Exports read back by the real libraries: libsonata (SONATA), pynwb and neo (NWB), neo and
elephant (spike trains); a missing extra gives the install command."""

import importlib.util

import h5py
import numpy as np
import pytest

from neurosleep.cli import main
from neurosleep.io import Recorder, open_run
from neurosleep.io.export_sonata import export_sonata
from neurosleep.io.neo import MissingExtra, require
from tests.test_analysis_runs import N, make_run

pytestmark = pytest.mark.formats


@pytest.fixture(scope="module")
def run_path(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("export") / "run.h5")


def test_sonata_read_back_by_libsonata(run_path, tmp_path):
    libsonata = pytest.importorskip("libsonata", reason="formats extra (libsonata) not installed")
    assert main(["export", str(run_path), "--sonata", str(tmp_path)]) == 0
    with open_run(run_path) as run:
        spikes = {pop: run.spikes(pop) for pop in N}
        report = run.report("v", "exc")
        weights = run.weights("exc_exc")
    reader = libsonata.SpikeReader(str(tmp_path / "spikes.h5"))
    assert sorted(reader.get_population_names()) == ["exc", "inh"]
    for pop in N:
        population = reader[pop]
        assert population.sorting == "by_time"
        got = np.array(population.get())  # (node id, time) pairs in time order
        np.testing.assert_array_equal(got[:, 0], spikes[pop].node_ids)
        np.testing.assert_array_equal(got[:, 1], spikes[pop].times)
        window = np.array(population.get(tstart=200.0, tstop=400.0))
        inside = (spikes[pop].times >= 200.0) & (spikes[pop].times <= 400.0)
        assert len(window) == inside.sum()
    frames = libsonata.ElementReportReader(str(tmp_path / "v.h5"))["exc"]
    assert frames.times == (0.0, 600.0, 1.0) and frames.data_units == "mV"
    data = frames.get()
    np.testing.assert_allclose(np.asarray(data.times), report.times)
    np.testing.assert_allclose(np.asarray(data.data), report.data, rtol=1e-6)  # float32
    assert [i for i, _ in data.ids] == list(report.node_ids)
    edges = libsonata.EdgeStorage(str(tmp_path / "exc_exc_edges.h5")).open_population("exc_exc")
    assert edges.source == edges.target == "exc"
    np.testing.assert_array_equal(
        np.sort(edges.efferent_edges([3]).flatten()), np.flatnonzero(weights.pre == 3)
    )
    everything = libsonata.Selection([(0, edges.size)])
    np.testing.assert_array_equal(edges.source_nodes(everything), weights.pre)
    np.testing.assert_array_equal(edges.target_nodes(everything), weights.post)
    np.testing.assert_allclose(edges.get_attribute("syn_weight", everything), weights.values[-1])


def test_sonata_report_with_gaps_keeps_exact_times(tmp_path):
    path = tmp_path / "gaps.h5"
    with Recorder.create(path, attrs={}, n_tasks=1) as rec:
        for start in (0.0, 100.0):  # sampled in two phases, 90 ms apart
            rec.append_report(
                "v",
                "exc",
                np.ones((10, 2)),
                times_ms=start + np.arange(10.0),
                dt_ms=1.0,
                units="mV",
            )
    with open_run(path) as run:
        (out,) = export_sonata(run, tmp_path / "son")
    with h5py.File(out) as f:
        group = f["report/exc"]
        assert group.attrs["gaps"]
        np.testing.assert_array_equal(group["time"][:10], np.arange(10.0))
        np.testing.assert_array_equal(group["time"][10:], 100 + np.arange(10.0))
        np.testing.assert_array_equal(group["mapping/time"][:], [0.0, 20.0, 1.0])


def test_nwb_read_back_by_pynwb_and_neo(run_path, tmp_path):
    pynwb = pytest.importorskip("pynwb", reason="formats extra (pynwb) not installed")
    neo = pytest.importorskip("neo", reason="formats extra (neo) not installed")
    out = tmp_path / "run.nwb"
    assert main(["export", str(run_path), "--nwb", str(out)]) == 0
    assert pynwb.validate(path=str(out)) == []  # schema-valid NWB
    with open_run(run_path) as run:
        spikes = run.spikes("inh")
        phases = run.phases()
        evaluations = run.evaluations()
        weights = run.weights("fc1")
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        nwb = io.read()
        units = nwb.units.to_dataframe()
        assert len(units) == N["exc"] + N["inh"]
        inh = units[units.population == "inh"]
        for node in (0, 7, 19):
            row = inh[inh.node_id == node].iloc[0]
            expected = np.sort(spikes.times[spikes.node_ids == node]) / 1000.0
            np.testing.assert_allclose(row.spike_times, expected)  # seconds
        epochs = nwb.epochs.to_dataframe()
        assert list(epochs.phase_name) == [p.name for p in phases]
        np.testing.assert_allclose(epochs.stop_time, [p.stop_time / 1000 for p in phases])
        v = nwb.acquisition["v_exc"]
        assert v.unit == "mV" and v.rate == pytest.approx(1000.0) and v.data.shape == (600, 5)
        fc1 = nwb.processing["weights"]["fc1"]
        np.testing.assert_allclose(fc1["values"].data[:], weights.values)
        np.testing.assert_allclose(fc1["time"].data[:], weights.times / 1000.0)
        assert "exc_exc_synapses" in nwb.processing["weights"].data_interfaces
        table = nwb.processing["metrics"]["evaluations"]
        np.testing.assert_allclose(table["accuracy"].data[:], evaluations.metrics["accuracy"])
    block = neo.io.NWBIO(str(out), mode="r").read_block()
    segment = block.segments[0]
    assert len(segment.spiketrains) == N["exc"] + N["inh"]
    assert sum(len(st) for st in segment.spiketrains) == sum(_counts(run_path))
    (signal,) = segment.analogsignals
    assert str(signal.units.dimensionality) == "mV" and signal.shape == (600, 5)
    assert list(segment.epochs[0].labels[:2]) == ["test:before", "wake:learn"]


def _counts(path):
    with open_run(path) as run:
        return [run.spike_count(pop) for pop in run.populations()]


def test_spiketrains_for_elephant(run_path):
    pytest.importorskip("elephant", reason="formats extra (elephant) not installed")
    from elephant.statistics import mean_firing_rate

    from neurosleep.io.neo import spiketrains

    with open_run(run_path) as run:
        trains = spiketrains(run, "exc")
        window = spiketrains(run, "exc", t_start=200.0, t_stop=400.0)
        spikes = run.spikes("exc")
    assert len(trains) == N["exc"]
    for k in (0, 41, 79):
        np.testing.assert_array_equal(trains[k].magnitude, spikes.times[spikes.node_ids == k])
        assert str(trains[k].units.dimensionality) == "ms"
        rate = float(mean_firing_rate(trains[k]).rescale("Hz"))
        assert rate == pytest.approx((spikes.node_ids == k).sum() / 0.6)
    in_window = (spikes.times >= 200.0) & (spikes.times < 400.0)
    assert sum(len(st) for st in window) == in_window.sum()
    assert float(window[0].t_start) == 200.0 and float(window[0].t_stop) == 400.0


def test_missing_extra_names_the_install_command(run_path, tmp_path, monkeypatch, capsys):
    with pytest.raises(MissingExtra, match=r"pip install 'neurosleep\[formats\]'"):
        require("neurosleep_no_such_package")
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pynwb" else real(name, *a)
    )
    assert main(["export", str(run_path), "--nwb", str(tmp_path / "x.nwb")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        "neurosleep: this needs the optional package 'pynwb': pip install 'neurosleep[formats]'"
    )


def test_export_needs_a_target(run_path, capsys):
    assert main(["export", str(run_path)]) == 2
    assert "--nwb FILE and/or --sonata DIR" in capsys.readouterr().err
