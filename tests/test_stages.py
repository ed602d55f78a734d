"""Staged sleep phases: stages × cycles equal the explicit sequence of sleep phases, bit for bit,
and each stage is a sub-phase row of /stages with its times."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from neurosleep.analysis.plots import shade_phases
from neurosleep.analysis.summary import summarize
from neurosleep.analysis.updown import sleep_up_down
from neurosleep.commands.info import describe
from neurosleep.errors import SpecError
from neurosleep.io.runfile import open_run
from neurosleep.protocol import MAX_CYCLES, load_protocol
from neurosleep.runner import run
from tests.conftest import ROOT

HEAD = """\
format_version: 1
name: {name}
seed: 3
model: {{format_version: 1, kind: hopfield, name: h, neurons: 60, diagonal: zero,
        update_interval: "1 ms"}}
engine: torch
device: cpu
data: {{kind: random_patterns, patterns: 12}}
record: {{weights: true, sleep_states: true}}
output: {name}.h5
schedule:
  - wake: {{name: store}}
"""
NREM = "kind: dreaming, t: 2, steps: 7"
REM = "kind: unlearning, dreams: 5, epsilon: 0.02"
STAGED = f"""\
  - sleep:
      name: night
      cycles: 2
      stages:
        - {{name: nrem, {NREM}}}
        - {{name: rem, {REM}}}
  - test: {{name: after, cue_noise: 0.05}}
"""
EXPLICIT = (
    "".join(
        f"  - sleep: {{name: {stage}{c}, {body}}}\n"
        for c in (1, 2)
        for stage, body in (("nrem", NREM), ("rem", REM))
    )
    + "  - test: {name: after, cue_noise: 0.05}\n"
)


def _run(tmp_path, name, schedule):
    path = tmp_path / f"{name}.yaml"
    path.write_text(HEAD.format(name=name) + schedule)
    return run(load_protocol(path), output=tmp_path / f"{name}.h5", progress=False).path


def test_stages_equal_the_explicit_phases_and_are_recorded(tmp_path):
    staged = _run(tmp_path, "staged", STAGED)
    explicit = _run(tmp_path, "explicit", EXPLICIT)
    with open_run(staged) as s, open_run(explicit) as e:
        w_s, w_e = s.weights("J"), e.weights("J")
        assert np.array_equal(w_s.values[-1], w_e.values[-1])  # bit-identical couplings
        assert np.array_equal(w_s.values, w_e.values) and np.array_equal(w_s.times, w_e.times)
        assert s.evaluations().metrics["overlap"].tolist() == (
            e.evaluations().metrics["overlap"].tolist()
        )
        # one parent phase; four sub-phases with the explicit phases' names, kinds and times
        assert [p.name for p in s.phases()] == ["store", "night", "after"]
        night = s.phases()[1]
        sleeps = [p for p in e.phases() if p.kind == "sleep"]
        stages = s.stages()
        assert [(st.phase, st.step, st.cycle) for st in stages] == [
            (1, 0, 0),
            (1, 1, 0),
            (1, 2, 1),
            (1, 3, 1),
        ]
        assert [f"{st.name}{st.cycle + 1}" for st in stages] == [p.name for p in sleeps]
        assert [st.kind for st in stages] == ["dreaming", "unlearning"] * 2
        assert [(st.start_time, st.stop_time) for st in stages] == [
            (p.start_time, p.stop_time) for p in sleeps
        ]
        assert (stages[0].start_time, stages[-1].stop_time) == (night.start_time, night.stop_time)
        assert all(st.status == "complete" for st in stages)
        # per-stage diagnostics and scalars, as the explicit phases have them
        for st, p in zip(stages, sleeps, strict=True):
            ours, theirs = s.arrays(f"sleep/1/{st.step}"), e.arrays(f"sleep/{p.index}")
            assert ours.keys() == theirs.keys()
            assert all(np.array_equal(ours[k], theirs[k]) for k in ours)
        named = {name: v for _, name, v, _ in s.scalars()}
        for p in sleeps:
            (value,) = [v for i, _, v, _ in e.scalars() if i == p.index]
            assert named[f"{p.name}/coupling_change_rms"] == value
        assert e.stages() == []  # a run without stages has no /stages
        # plots: each sub-phase starts at a dotted line and is named with its cycle
        ax = Figure(figsize=(8, 3)).subplots()
        shade_phases(ax, s, 1.0)
        labels = [t.get_text() for t in ax.texts]
        assert [t for t in labels if t[-1].isdigit()] == ["nrem1", "rem1", "nrem2", "rem2"]
        lines = sorted(line.get_xdata()[0] for line in ax.lines)
        assert lines == [st.start_time for st in stages]


def _same(a, b) -> bool:
    """Equal arrays, NaN equal to NaN."""
    return np.array_equal(a, b, equal_nan=np.asarray(a).dtype.kind == "f")


def _problems(tmp_path, schedule):
    path = tmp_path / "p.yaml"
    path.write_text(HEAD.format(name="p") + schedule)
    with pytest.raises(SpecError) as info:
        load_protocol(path)
    return [(p.line, str(p).split(": ")[1], p.message) for p in info.value.problems]


@pytest.mark.parametrize(
    ("old", "new", "line", "key", "message"),
    [
        ("cycles: 2", "cycels: 2", 15, "schedule[1].sleep.cycels", "unknown key"),
        ("cycles: 2", "cycles: 0", 15, "schedule[1].sleep.cycles", "greater than or equal to 1"),
        ("cycles: 2", f"cycles: {MAX_CYCLES + 1}", 15, "schedule[1].sleep.cycles", "less than"),
        ("epsilon:", "epsilom:", 18, "schedule[1].sleep.stages[1].epsilom", "unknown key"),
        (
            "name: rem, kind: unlearning",
            "name: rem, kind: nap",
            18,
            "schedule[1].sleep.stages[1].kind",
            "unknown sleep kind 'nap'",
        ),
        (
            "name: rem,",
            "name: nrem,",
            18,
            "schedule[1].sleep.stages[1].name",
            "duplicate stage name 'nrem'",
        ),
        (
            "epsilon: 0.02",
            "epsilon: -1",
            18,
            "schedule[1].sleep.stages[1].epsilon",
            "greater than 0",
        ),
    ],
)
def test_bad_stages_name_line_and_key(tmp_path, old, new, line, key, message):
    assert old in STAGED
    found = _problems(tmp_path, STAGED.replace(old, new, 1))
    assert len(found) == 1, found
    assert found[0][:2] == (line, key), found
    assert message in found[0][2], found


def test_empty_stages_refused(tmp_path):
    found = _problems(tmp_path, "  - sleep: {name: night, stages: []}\n")
    assert found[0][1] == "schedule[1].sleep.stages" and "at least 1" in found[0][2], found


SNN_SHORT = [
    "record.spikes=[exc]",
    "schedule.before.duration=200 ms",
    "schedule.learn_A.duration=600 ms",
    "schedule.after_A.duration=200 ms",
    "schedule.learn_B.duration=600 ms",
    "schedule.after_B.duration=200 ms",
    "schedule.final.duration=200 ms",
]


def test_snn_nrem_rem_stages_equal_explicit_phases(tmp_path):
    """The shipped NREM/REM protocol, shortened: 2 cycles of NREM (the sleep state) and REM
    (the rem state) give the E→E weights and recall of the 4 explicit sleep phases."""
    shipped = ROOT / "protocols" / "consolidation_nrem_rem.yaml"
    staged = [
        *SNN_SHORT,
        "schedule.sleep.cycles=2",
        "schedule.sleep.stages.0.duration=400 ms",
        "schedule.sleep.stages.1.duration=200 ms",
    ]
    text = shipped.read_text().replace("../models/", f"{ROOT}/models/")
    start = text.index("  - sleep:\n")
    stop = text.index("  - test: {name: final")
    explicit = (
        text[:start]
        + "".join(
            f"  - sleep: {{name: {stage}{c}, kind: spontaneous, duration: {ms} ms, "
            f"state: {state}}}\n"
            for c in (1, 2)
            for stage, ms, state in (("nrem", 400, "sleep"), ("rem", 200, "rem"))
        )
        + text[stop:]
    )
    (tmp_path / "explicit.yaml").write_text(explicit)
    a = run(load_protocol(shipped, staged), output=tmp_path / "a.h5", progress=False).path
    b = run(
        load_protocol(tmp_path / "explicit.yaml", SNN_SHORT),
        output=tmp_path / "b.h5",
        progress=False,
    ).path
    with open_run(a) as s, open_run(b) as e:
        assert np.array_equal(s.weights("ee").values, e.weights("ee").values)
        final_s, final_e = s.phases()[-1].index, e.phases()[-1].index
        for key, value in s.arrays(f"recall/{final_s}").items():
            assert np.array_equal(value, e.arrays(f"recall/{final_e}")[key]), key
        sleeps = [p for p in e.phases() if p.kind == "sleep"]
        assert [(st.name, st.cycle, st.start_time, st.stop_time) for st in s.stages()] == [
            (p.name[:-1], int(p.name[-1]) - 1, p.start_time, p.stop_time) for p in sleeps
        ]
        for st, p in zip(s.stages(), sleeps, strict=True):  # replay diagnostics per stage
            ours, theirs = s.arrays(f"sleep/{st.phase}/{st.step}"), e.arrays(f"sleep/{p.index}")
            assert ours.keys() == theirs.keys()
            assert [k for k in ours if not _same(ours[k], theirs[k])] == [], p.name
        windows = [name for name, _ in sleep_up_down(s, "exc")]
        assert windows == ["sleep.nrem1", "sleep.rem1", "sleep.nrem2", "sleep.rem2"]
        # info and summary read a staged run: replay per stage run, scalars per stage
        replay = [
            line.split(":")[0].strip() for line in describe(s).splitlines() if "replay" in line
        ]
        assert replay == [f"phase {st.phase}/{st.step}" for st in s.stages()]
        scalars = summarize(s, spikes=False)["phases"][st.phase]["scalars"]
        assert {"nrem1/rate_exc", "rem2/ee_change_rms"} <= set(scalars)


def test_a_run_stopped_inside_a_stage_closes_its_row(tmp_path):
    from neurosleep.io.recorder import Recorder

    recorder = Recorder.create(tmp_path / "r.h5", attrs={}, n_tasks=1)
    recorder.begin_phase("night", "sleep", task=-1, start_time=0.0)
    assert recorder.begin_stage("nrem", "spontaneous", cycle=0, start_time=0.0) == 0
    recorder.add_scalar("rate_exc", 3.0, "Hz")
    recorder.write_arrays(recorder.sleep_path, {"x": 1.0}, {"x": "Hz"})
    recorder.end_stage(stop_time=5.0)
    assert recorder.begin_stage("rem", "spontaneous", cycle=0, start_time=5.0) == 1
    recorder.close("interrupted")
    with open_run(tmp_path / "r.h5") as r:
        assert [(s.step, s.name, s.stop_time, s.status) for s in r.stages()][0] == (
            0,
            "nrem",
            5.0,
            "complete",
        )
        last = r.stages()[1]
        assert (last.step, last.status, np.isnan(last.stop_time)) == (1, "interrupted", True)
        assert r.scalars() == [(0, "nrem1/rate_exc", 3.0, "Hz")]
        assert r.arrays("sleep/0/0") == {"x": 1.0}
        assert r.phases()[0].status == "interrupted"


@pytest.mark.formats
def test_nwb_export_keeps_the_stages(tmp_path):
    pynwb = pytest.importorskip("pynwb", reason="formats extra (pynwb) not installed")
    from neurosleep.cli import main

    staged = _run(tmp_path, "staged", STAGED)
    out = tmp_path / "staged.nwb"
    assert main(["export", str(staged), "--nwb", str(out)]) == 0
    with open_run(staged) as s:
        stages = s.stages()
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        table = io.read().intervals["sleep_stages"].to_dataframe()
    assert table["stage"].tolist() == [st.name for st in stages] == ["nrem", "rem"] * 2
    assert table["cycle"].tolist() == [0, 0, 1, 1]
    assert table["algorithm"].tolist() == ["dreaming", "unlearning"] * 2
    assert [list(t) for t in table["tags"]] == [["nrem1"], ["rem1"], ["nrem2"], ["rem2"]]
    np.testing.assert_allclose(table["start_time"], [st.start_time / 1000 for st in stages])
    np.testing.assert_allclose(table["stop_time"], [st.stop_time / 1000 for st in stages])
