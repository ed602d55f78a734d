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


def search_module(root):
    """benchmarks/sra_search.py (not a package: loaded from its path)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("sra_search", root / "benchmarks/sra_search.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_search_configurations_expand_to_valid_overrides(root):
    search = search_module(root)
    protocol = root / "protocols/split_mnist_rehearsal_sra.yaml"
    args = search.argparse.Namespace(
        protocol=protocol,
        vary=[["wake.epochs", "16", "24"]],
        scale=[["sleep.beta", "0.5"]],
        product=False,
    )
    configs = search.configurations(args)
    assert [label for label, _ in configs] == [
        "base",
        "wake.epochs=16",
        "wake.epochs=24",
        "sleep.beta×0.5",
    ]
    beta = configs[3][1][0]
    assert beta == ("schedule.1.repeat.phases.sleep{k}.beta", "[7.27414, 22.2802, 19.0232]")
    # every override is one that `neurosleep run --set` accepts, with the intended value
    for _, overrides in configs[1:]:
        loaded = load_protocol(protocol, [f"{k}={v}" for k, v in overrides])
        wake = next(p.params for p in loaded.phases if p.kind == "wake")
        sleep = next(p.params for p in loaded.phases if p.kind == "sleep")
        assert (wake.epochs, sleep.beta[0]) in {(16, 14.548273), (24, 14.548273), (12, 7.27414)}
    args.product = True
    assert len(search.configurations(args)) == 1 + 2 * 1
