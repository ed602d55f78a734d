"""Runs every command of docs/tutorial.md, in order, on a shortened dreaming protocol.

The tutorial's ```bash blocks hold only ``neurosleep`` commands, one a line; they run here
in-process in a scratch copy of protocols/ and models/, with the dreaming sleep shortened
(``--set schedule.dream.steps=20``) and shell globs expanded as a shell would.
"""

import glob
import shlex
import shutil

import pytest

from neurosleep.cli import main

SHORTEN = ["--set", "schedule.dream.steps=20"]


def tutorial_commands(root):
    text = (root / "docs" / "tutorial.md").read_text()
    blocks = text.split("```bash\n")[1:]
    lines = [line for block in blocks for line in block.split("```")[0].splitlines()]
    return [shlex.split(line) for line in lines if line.strip()]


def expand(argv):
    out = []
    for arg in argv:
        out.extend(sorted(glob.glob(arg)) if "*" in arg else [arg])
    return out


@pytest.mark.slow
@pytest.mark.torch
def test_tutorial_commands(root, tmp_path, monkeypatch, capsys):
    commands = tutorial_commands(root)
    assert commands and all(argv[0] == "neurosleep" for argv in commands)
    for folder in ("protocols", "models"):
        shutil.copytree(root / folder, tmp_path / folder)
    monkeypatch.chdir(tmp_path)
    outputs = {}
    for argv in commands:
        args = expand(argv[1:])
        if args[0] == "run" and "hopfield_dreaming" in args[1]:
            args += SHORTEN
        assert main(args) == 0, f"failed: {shlex.join(argv)}"
        outputs[args[0]] = capsys.readouterr().out
    assert {"run", "summary", "compare", "plot", "export"} <= set(outputs)
    table = outputs["compare"].splitlines()
    header = [cell.strip() for cell in table[0].split("|")]
    rows = {line.split("|")[1].strip(): line.split("|") for line in table[2:] if "|" in line}
    column = header.index("overlap ACC")
    dreaming = float(rows["hopfield_dreaming"][column].split("±")[0])
    no_sleep = float(rows["hopfield_no_sleep"][column].split("±")[0])
    assert rows["hopfield_dreaming"][2].strip() == rows["hopfield_no_sleep"][2].strip() == "3"
    assert dreaming > no_sleep + 0.2  # even 20 integration steps of dreaming restore retrieval
    out = tmp_path / "outputs" / "tutorial"
    assert (out / "figures" / "compare.png").stat().st_size > 5_000
    assert (out / "figures" / "dreaming" / "accuracy.png").exists()
    assert (out / "hopfield.nwb").exists() and (out / "sonata" / "sleep_state.h5").exists()
    # the tutorial writes nothing outside outputs/tutorial/ (git ignores outputs/)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models", "outputs", "protocols"]
    assert [p.name for p in (tmp_path / "outputs").iterdir()] == ["tutorial"]
