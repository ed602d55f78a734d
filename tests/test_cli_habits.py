"""Shipped examples (run by name, list, copy) and the CLI's habits: --quiet everywhere, progress
only on a terminal, one line for a closed pipe or a missing extra, documented exit codes."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from neurosleep import examples
from neurosleep.cli import EXIT_CODES, _leaf_parsers, build_parser, main

SHORT = ["--set", "schedule.dream.steps=5", "--set", "data.patterns=10"]


def test_shipped_protocols_resolve_by_name(root):
    assert examples.protocol_path("hopfield_dreaming") == root / "protocols/hopfield_dreaming.yaml"
    assert {p.stem for p in examples.shipped("protocols")} == {
        p.stem for p in (root / "protocols").glob("*.yaml")
    }
    with pytest.raises(examples.ExamplesError, match="did you mean hopfield_dreaming"):
        examples.protocol_path("hopfield_dreamin")


@pytest.mark.torch
def test_run_by_name_from_another_folder(tmp_path, monkeypatch, capsys, one_torch_thread):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "hopfield_dreaming", "--seed", "2", *SHORT]) == 0
    out, err = capsys.readouterr()
    assert "run file: outputs/hopfield_dreaming_seed2.h5" in out
    assert (tmp_path / "outputs" / "hopfield_dreaming_seed2.h5").is_file()
    assert err == ""  # stderr is not a terminal here: no progress bars, no \r
    assert (
        main(
            [
                "run",
                "hopfield_dreaming",
                "--seed",
                "2",
                *SHORT,
                "--overwrite",
                "--progress",
                "always",
            ]
        )
        == 0
    )
    assert "\r" in capsys.readouterr().err


def test_examples_list_and_copy_never_overwrites(tmp_path, capsys):
    assert main(["examples", "list"]) == 0
    listing = capsys.readouterr().out
    assert "hopfield_dreaming" in listing and "models:" in listing
    assert main(["examples", "copy", str(tmp_path / "mine")]) == 0
    copied = tmp_path / "mine" / "protocols" / "hopfield_dreaming.yaml"
    assert copied.read_text() == examples.protocol_path("hopfield_dreaming").read_text()
    assert (tmp_path / "mine" / "models" / "hopfield.yaml").is_file()
    capsys.readouterr()

    copied.write_text("# my edits\n")
    assert main(["examples", "copy", str(tmp_path / "mine")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "never overwrites" in err
    assert copied.read_text() == "# my edits\n"


def test_copied_protocol_validates_with_its_relative_model(tmp_path, capsys):
    assert main(["examples", "copy", str(tmp_path), "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["validate", str(tmp_path / "protocols" / "hopfield_dreaming.yaml")]) == 0
    assert "hopfield model 'hopfield400'" in capsys.readouterr().out


def test_every_command_takes_quiet():
    parser = build_parser()
    leaves = _leaf_parsers(parser)
    assert len(leaves) >= 10
    for leaf in leaves:
        assert "--quiet" in leaf._option_string_actions, leaf.prog
    # before or after the command
    assert parser.parse_args(["--quiet", "info", "x.h5"]).quiet is True
    assert parser.parse_args(["info", "x.h5", "--quiet"]).quiet is True
    assert parser.parse_args(["info", "x.h5"]).quiet is False


def test_help_lists_exit_codes(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    for code in EXIT_CODES:
        assert f"\n  {code:3d}  " in text


def test_closed_pipe_is_silent(root):
    listing = subprocess.Popen(
        [sys.executable, "-m", "neurosleep.cli", "examples", "list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ | {"PYTHONPATH": str(root)},
    )
    listing.stdout.close()  # the reader is gone before the first line is written
    err = listing.stderr.read().decode()
    assert listing.wait() == 141
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_missing_extra_is_one_line(
    tmp_path, monkeypatch, capsys, write_protocol, hopfield_protocol
):
    monkeypatch.setitem(sys.modules, "dask", None)  # as if Dask were not installed
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    path = write_protocol(hopfield_protocol)
    folder = str(tmp_path / "sweep")
    assert (
        main(["sweep", str(path), "--seeds", "1", "2", "--workers", "2", "--folder", folder, "-q"])
        == 2
    )
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "pip install 'neurosleep[study]'" in err


def test_an_optional_module_missing_deep_inside_names_the_extra(monkeypatch, capsys):
    def needs_pynwb(args: argparse.Namespace) -> int:
        import pynwb  # noqa: F401

        return 0

    monkeypatch.setitem(sys.modules, "pynwb", None)
    parser = build_parser()
    args = parser.parse_args(["examples", "list"])
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", lambda self, argv=None: args)
    args.func = needs_pynwb
    assert main([]) == 2
    assert "pip install 'neurosleep[formats]'" in capsys.readouterr().err


def test_progress_auto_follows_the_terminal(monkeypatch):
    from neurosleep.progress import progress_shown

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert progress_shown("auto") and progress_shown("always") and not progress_shown("never")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert not progress_shown("auto") and progress_shown("always")
    with pytest.raises(ValueError, match="auto, always, never"):
        progress_shown("sometimes")


def test_shipped_study_by_name_and_in_the_copy(tmp_path, monkeypatch, capsys, root):
    monkeypatch.chdir(tmp_path)
    assert main(["study", "validate", "hopfield_capacity"]) == 0
    assert "hopfield_capacity.yaml: valid" in capsys.readouterr().out
    assert main(["examples", "copy", "mine", "-q"]) == 0
    study = tmp_path / "mine" / "studies" / "hopfield_capacity.yaml"
    assert study.read_text() == (root / "studies" / "hopfield_capacity.yaml").read_text()
    # the copied study's relative protocol path resolves inside the copy
    assert main(["study", "validate", str(study)]) == 0
