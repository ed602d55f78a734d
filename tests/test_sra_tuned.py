"""The tuned SRA protocols are the paper-default ones with only the values the validation
search chose changed (docs/results.md), and the paper defaults stay as they were."""

from __future__ import annotations

import pytest

from neurosleep.protocol import load_protocol
from neurosleep.sleep.sra import SRAParams


def phase_params(root, name: str) -> list[tuple[str, dict]]:
    protocol = load_protocol(root / "protocols" / f"{name}.yaml")
    return [(p.kind, p.params.model_dump()) for p in protocol.phases]


def differences(root, default: str, tuned: str) -> set[tuple[str, str, object]]:
    """(phase kind, key, tuned value) of every resolved parameter that differs."""
    found = set()
    pairs = zip(phase_params(root, default), phase_params(root, tuned), strict=True)
    for (kind, a), (kind_b, b) in pairs:
        assert kind == kind_b
        found |= {(kind, k, repr(b[k])) for k in a if a[k] != b[k]}
    return found


@pytest.mark.parametrize(
    ("default", "tuned", "changed"),
    [
        ("split_mnist_sra", "split_mnist_sra_tuned", {("sleep", "alpha_scale", "27.941227")}),
        (
            "split_mnist_rehearsal_sra",
            "split_mnist_rehearsal_sra_tuned",
            {("wake", "epochs", "24")},
        ),
    ],
)
def test_tuned_protocols_change_only_the_chosen_values(root, default, tuned, changed):
    assert differences(root, default, tuned) == changed


def test_paper_defaults_unchanged():
    defaults = {k: f.default for k, f in SRAParams.model_fields.items()}
    assert defaults["alpha_scale"] == 55.882454
    assert defaults["beta"] == [14.548273, 44.560317, 38.046326]
    assert (defaults["inc"], defaults["dec"], defaults["decay"]) == (0.032064, 0.003344, 0.999)
