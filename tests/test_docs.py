"""Docs stay true: every protocol key of every registered schema is documented."""

from __future__ import annotations

import re

from neurosleep.catalogue import EXPERIMENTS, SLEEP
from neurosleep.spec import MODEL_KINDS, _import_kinds


def documented(root) -> set[str]:
    """Names written in the docs as inline code (`key`, `key: value`) or as keys in code blocks."""
    text = "\n".join(p.read_text() for p in (root / "docs").glob("*.md"))
    blocks = re.findall(r"```.*?```", text, flags=re.DOTALL)
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.DOTALL))
    names = {span for span in spans if re.fullmatch(r"[A-Za-z_]\w*", span)}
    for code in blocks + spans:
        names.update(re.findall(r"([A-Za-z_]\w*)\s*:", code))
    return names


def schemas():
    _import_kinds()
    for kind in EXPERIMENTS:
        experiment = EXPERIMENTS.get(kind)
        for section in ("Data", "Record", "Wake", "Test"):
            yield f"{kind} {section.lower()}", getattr(experiment, section)
    for name in SLEEP:
        yield f"sleep {name}", SLEEP.get(name).Params
    for kind in MODEL_KINDS:
        yield f"model {kind}", MODEL_KINDS.get(kind)


def test_every_protocol_and_model_key_is_documented(root):
    names = documented(root)
    missing = {
        f"{where}: {field}"
        for where, schema in schemas()
        for field in schema.model_fields
        if field not in names
    }
    assert not missing, "undocumented keys (write them in docs/*.md as `key`):\n" + "\n".join(
        sorted(missing)
    )
