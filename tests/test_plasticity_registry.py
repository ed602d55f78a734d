"""Plasticity rules are described once (spec) and each engine translates them by registry:
every spec name has a translation in every engine, and an unknown name raises in both."""

from __future__ import annotations

import pytest

import neurosleep.engines  # noqa: F401  (registers the engines)
from neurosleep.engines import ENGINES, brian2, make_engine, torch_plasticity
from neurosleep.errors import SpecError
from neurosleep.spec import load_model
from neurosleep.spec.snn import PLASTICITY_RULES, STDP_FORMS, SNNSpec
from tests.snn_helpers import small_network

pytestmark = [pytest.mark.brian2, pytest.mark.torch]

STDP = {"rule": "stdp", "form": "additive", "w_max": "15 mV"}
SCALING = {"rule": "scaling", "w_max": "15 mV", "target": "5 Hz", "eta": "1 1/s"}


def test_every_engine_translates_exactly_the_spec_rules():
    assert PLASTICITY_RULES.names() == ["oja", "scaling", "stdp"]
    assert brian2.RULE_CODE.names() == PLASTICITY_RULES.names()
    assert torch_plasticity.RULE_STEPS.names() == PLASTICITY_RULES.names()
    assert brian2.STDP_FORMS.names() == sorted(STDP_FORMS)
    assert torch_plasticity.STDP_FORMS.names() == sorted(STDP_FORMS)
    rate_rules = [n for n in PLASTICITY_RULES.names() if n != "stdp"]
    assert brian2.RATE_CHANGES.names() == rate_rules
    assert torch_plasticity.RATE_CHANGES.names() == rate_rules


def with_rule(spec: SNNSpec, **changes) -> SNNSpec:
    """``spec`` whose in_cur rule has ``changes`` applied without validation (as a spec built
    by code that bypasses the schema would)."""
    proj = spec.projections["in_cur"]
    rule = proj.plasticity[0].model_copy(update=changes)
    projections = {**spec.projections, "in_cur": proj.model_copy(update={"plasticity": [rule]})}
    return spec.model_copy(update={"projections": projections})


@pytest.mark.parametrize("engine_name", ENGINES.names())
@pytest.mark.parametrize(
    "rule, changes, message",
    [
        (STDP, {"form": "quadratic"}, "STDP form 'quadratic'"),
        (SCALING, {"rule": "bcm"}, "plasticity rule 'bcm'"),
        (STDP, {"rule": "bcm"}, "plasticity rule 'bcm'"),
    ],
)
def test_unknown_rule_or_form_raises_in_every_engine(engine_name, rule, changes, message):
    spec = with_rule(small_network([rule]), **changes)
    with pytest.raises(KeyError, match=f"unknown .*{message}; known: "):
        make_engine(engine_name, spec, seeds=[0])


MODEL = """\
kind: snn
name: t
populations:
  exc: {size: 4}
sources:
  drive: {type: poisson, size: 4, rate: 5 Hz}
projections:
  a:
    pre: drive
    post: exc
    connect: {rule: all_to_all}
    weight: 1 mV
    plasticity:
      - {rule: stdp, form: additive, w_max: 2 mV}
"""


@pytest.mark.parametrize(
    "old, new, key, message",
    [
        ("form: additive", "form: quadratic", "projections.a.plasticity[0].form", "'symmetric'"),
        ("rule: stdp", "rule: bcm", "projections.a.plasticity[0]", "'stdp', 'oja', 'scaling'"),
    ],
)
def test_validation_rejects_unknown_rules_and_forms_with_file_line_key(
    tmp_path, old, new, key, message
):
    path = tmp_path / "m.yaml"
    path.write_text(MODEL.replace(old, new))
    with pytest.raises(SpecError) as info:
        load_model(path)
    text = str(info.value)
    assert f"{path}:14: {key}" in text
    assert message in text
