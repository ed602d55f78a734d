"""docs/api.md's examples run as doctests, and docs/examples/sleep_vs_no_sleep.py runs end to end,
each in an empty scratch folder (they run shipped protocols by name and write under outputs/)."""

from __future__ import annotations

import doctest
import re
import runpy

import pytest

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def markdown_doctests(text: str, name: str) -> doctest.DocTest:
    """The ``>>>`` examples of a Markdown file; code fences end an expected output."""
    text = re.sub(r"^```.*$", "", text, flags=re.MULTILINE)
    return doctest.DocTestParser().get_doctest(text, {}, name, name, 0)


@pytest.mark.torch
def test_api_page_examples(root, tmp_path, monkeypatch, one_torch_thread):
    monkeypatch.chdir(tmp_path)
    test = markdown_doctests((root / "docs" / "api.md").read_text(), "docs/api.md")
    assert len(test.examples) > 20
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docs/api.md examples failed"


@pytest.mark.torch
def test_notebook_script_end_to_end(root, tmp_path, monkeypatch, one_torch_thread):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEUROSLEEP_EXAMPLE_STEPS", "20")  # the script's sleep, shortened
    namespace = runpy.run_path(str(root / "docs" / "examples" / "sleep_vs_no_sleep.py"))
    table = namespace["table"]
    acc = table[(table.metric == "overlap") & (table.quantity == "ACC")].set_index("protocol")
    assert list(acc["n"]) == [3, 3]
    assert acc.loc["hopfield_dreaming", "mean"] > acc.loc["hopfield_no_sleep", "mean"] + 0.2
    assert (tmp_path / "outputs" / "notebook" / "overlap.png").stat().st_size > 5_000
