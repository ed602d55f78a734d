"""Tasks by name (memories A/B, class pairs 0/1) in run files, headlines, summaries and compare;
FWT only outside class-IL; BWT and forgetting against the post- and the pre-sleep diagonal."""

import json

import numpy as np
import pytest

from neurosleep.cli import main
from neurosleep.errors import RunFileError
from neurosleep.experiments.snn import SNNExperiment
from neurosleep.io import open_run
from neurosleep.protocol import load_protocol
from neurosleep.runner import run
from tests.test_ann import TINY, WAKE, digits_protocol


def test_consolidation_run_names_its_memories(consolidation_run, capsys):
    with open_run(consolidation_run) as r:
        assert json.loads(r.attrs["task_names"]) == ["A", "B", "S2"]
        headline = SNNExperiment.headline(r.phases(), r.evaluations(), ["A", "B", "S2"])
        completion = r.evaluations().metrics["completion"]
    final = headline.splitlines()[-1]
    assert headline.startswith("test phases (per memory):")
    c = completion[-1]
    assert f"completion A {c[0]:.3g} B {c[1]:.3g} S2 {c[2]:.3g}" in final
    assert main(["summary", str(consolidation_run), "--json", "--no-spikes"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["task_names"] == ["A", "B", "S2"]
    assert s["final"]["completion"]["final_per_task"] == completion[-1].tolist()
    assert main(["summary", str(consolidation_run), "--no-spikes"]) == 0
    text = capsys.readouterr().out
    assert f"completion               A {c[0]:.3f}  B {c[1]:.3f}  S2 {c[2]:.3f}" in text


def test_compare_metric_filter_and_per_memory_columns(consolidation_run, capsys):
    argv = ["compare", str(consolidation_run), "--metric", "completion", "--quantity", "ACC"]
    assert main([*argv, "tasks"]) == 0
    header = [c.strip() for c in capsys.readouterr().out.splitlines()[0].split("|")[1:-1]]
    finals = [f"completion final {name}" for name in ("A", "B", "S2")]
    assert header == ["protocol", "n", "completion ACC", *finals]
    # default: ACC and BWT per metric; B and S2 are learned back to back (no test between),
    # so R[B, B] and with it BWT are undefined and left out
    assert main(["compare", str(consolidation_run)]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "FWT" not in header and "forgetting" not in header and "completion ACC" in header
    assert "BWT" not in header
    assert main(["compare", str(consolidation_run), "--metric", "recall"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("neurosleep: no metric 'recall' in these runs; they have: ")
    assert "completion" in err and len(err.splitlines()) == 1
    assert main(["compare", str(consolidation_run), "--quantity", "AUC"]) == 2
    assert "unknown quantity 'AUC'" in capsys.readouterr().err


def _sra_protocol(tmp_path, name, pre_sleep_test):
    sleep = {
        "sleep": {"name": "sleep{k}", "kind": "sra", "steps": 50, "beta": [0.5, 0.5], "window": 4}
    }
    extra = [{"test": {"name": "before_sleep{k}"}}, sleep] if pre_sleep_test else [sleep]
    protocol = digits_protocol(tmp_path, None, name=name, data={"classes_per_task": 5})
    protocol["model"] = TINY | {"output": "relu"}
    protocol["schedule"] = [
        {"test": {"name": "at_start"}},
        {
            "repeat": {
                "over": "tasks",
                "phases": [
                    {"wake": dict(WAKE, name="train{k}", epochs=2)},
                    *extra,
                    {"test": {"name": "after{k}"}},
                ],
            }
        },
    ]
    return protocol


@pytest.mark.torch
@pytest.mark.usefixtures("one_torch_thread")
def test_pre_sleep_test_changes_nothing_and_gives_both_diagonals(tmp_path, write_protocol, capsys):
    paths = {}
    for pre in (False, True):
        name = "with_test" if pre else "without"
        spec = write_protocol(_sra_protocol(tmp_path, name, pre), name=f"{name}.yaml")
        paths[pre] = run(load_protocol(spec), progress=False).path
    with open_run(paths[False]) as a, open_run(paths[True]) as b:
        after = b.evaluations()
        names = [p.name for p in b.phases()]
        rows = [names[int(i)] for i in after.phases]
        plain = a.evaluations().metrics["accuracy"]
        both = after.metrics["accuracy"]
        assert json.loads(b.attrs["task_names"]) == ["0/1/2/3/4", "5/6/7/8/9"]
        assert b.attrs["scenario"] == "class"
    # the extra test phase trains nothing: every other test row is identical, to the bit
    keep = [i for i, n in enumerate(rows) if not n.startswith("before_sleep")]
    np.testing.assert_array_equal(both[keep], plain)
    assert main(["summary", str(paths[True]), "--json", "--no-spikes"]) == 0
    final = json.loads(capsys.readouterr().out)["final"]["accuracy"]
    R, R_pre = np.array(final["matrix"]), np.array(final["matrix_before_sleep"])
    assert final["FWT"] is None  # class-IL: FWT means nothing, printed as null / "-"
    assert final["BWT"] == pytest.approx(R[2, 0] - R[1, 0])  # after sleep
    assert final["BWT_before_sleep"] == pytest.approx(R_pre[2, 0] - R_pre[1, 0])
    pre_row = both[rows.index("before_sleep1")]
    np.testing.assert_array_equal(R_pre[1], pre_row)
    np.testing.assert_array_equal(R_pre[2], R[2])
    assert main(["summary", str(paths[True]), "--no-spikes"]) == 0
    text = capsys.readouterr().out
    assert "against R[j, j] = the first test after training task j (before sleep)" in text
    assert "FWT '-' in class-IL" in text


def test_task_names_read_from_either_attribute_form(tmp_path):
    """A JSON list (written now), an array of strings (written by the first days' versions);
    text that is neither is a damaged file, refused by the reader naming the attribute."""
    from neurosleep.analysis.summary import task_names
    from tests.test_analysis_runs import make_run

    path = make_run(tmp_path / "run.h5")
    import h5py

    for value, expected in (
        (json.dumps(["A", "B"]), ["A", "B"]),
        (["A", "B"], ["A", "B"]),
        (json.dumps(["A"]), ["task 1", "task 2"]),  # wrong length (the file has no n_tasks)
    ):
        with h5py.File(path, "r+") as f:
            f.attrs["task_names"] = value
        with open_run(path) as r:
            assert task_names(r, 2) == expected
    with h5py.File(path, "r+") as f:
        f.attrs["task_names"] = "not json"
    with pytest.raises(RunFileError, match="task_names"):
        open_run(path)
