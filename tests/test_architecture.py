"""Dependencies flow one way (docs/architecture.md): read every module's imports and check them.

Every ``import`` counts — at module level, inside functions, under ``if TYPE_CHECKING:`` — and
so does ``importlib.import_module("<literal>")``. Each module belongs to one layer (by its dotted
name's longest matching prefix in :data:`LAYERS`); a module may import modules of its own layer
and of the layers its layer lists. No cycle among modules, whatever the layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "neurosleep"

# module prefix → layer (the longest matching prefix wins)
LAYERS = {
    "neurosleep.errors": "base",
    "neurosleep.registry": "base",
    "neurosleep.imports": "base",
    "neurosleep.units": "base",
    "neurosleep.expressions": "base",
    "neurosleep.yamlfile": "base",
    "neurosleep.params": "base",
    "neurosleep.version": "base",
    "neurosleep.progress": "base",
    "neurosleep.examples": "base",
    "neurosleep.limits": "base",
    "neurosleep.uniform": "base",
    "neurosleep.io": "io",
    "neurosleep.analysis": "analysis",
    "neurosleep.spec": "schema",
    "neurosleep.data": "schema",
    "neurosleep.protocol": "schema",
    "neurosleep.catalogue": "schema",
    "neurosleep.engines": "engines",
    "neurosleep.sleep": "algorithms",
    "neurosleep.replay": "algorithms",
    "neurosleep.experiments": "experiments",
    "neurosleep.runner": "runner",
    "neurosleep.study": "runner",
    "neurosleep": "commands",  # the package itself: the Python API's names (exactly this name)
    "neurosleep.api": "commands",
    "neurosleep.cli": "commands",
    "neurosleep.commands": "commands",
}

# layer → the other layers it may import
ALLOWED = {
    "base": set(),
    "io": {"base"},
    "analysis": {"io", "base"},
    "schema": {"io", "base"},  # validation refuses output paths the recorder would refuse
    "engines": {"schema", "base"},
    "algorithms": {"engines", "schema", "analysis", "io", "base"},
    "experiments": {"algorithms", "engines", "schema", "analysis", "io", "base"},
    "runner": {"experiments", "schema", "analysis", "io", "base"},
    "commands": {"runner", "experiments", "schema", "analysis", "io", "base"},
}


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(name: str, source: str, is_package: bool, known: set[str]) -> set[str]:
    """The internal modules ``source`` (module ``name``) imports, anywhere in the file."""
    found = set()
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import mod` imports the module pkg.mod; `from mod import name` imports mod
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            targets = [node.args[0].value]
        for target in targets:
            while target and target not in known:  # `import a.b.c` of an attribute: its module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def layer_of(module: str) -> str:
    parts = module.split(".")
    for n in range(len(parts), 1 if len(parts) > 1 else 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in LAYERS:
            return LAYERS[prefix]
    raise KeyError(f"{module}: no layer in LAYERS (add it there and to docs/architecture.md)")


def graph_of(sources: dict[str, tuple[str, bool]]) -> dict[str, set[str]]:
    """Module → imported internal modules, for ``{module: (source, is_package)}``."""
    known = set(sources)
    return {name: imports(name, src, pkg, known) for name, (src, pkg) in sources.items()}


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Imports that break the layer rules."""
    out = []
    for module, targets in sorted(graph.items()):
        mine = layer_of(module)
        for target in sorted(targets):
            theirs = layer_of(target)
            if theirs != mine and theirs not in ALLOWED[mine]:
                out.append(f"{module} ({mine}) imports {target} ({theirs})")
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def package_sources(root: Path) -> dict[str, tuple[str, bool]]:
    base = root / PACKAGE
    return {
        module_name(root, path): (path.read_text(), path.name == "__init__.py")
        for path in sorted(base.rglob("*.py"))
    }


@pytest.fixture
def graph(root):
    return graph_of(package_sources(root))


def test_every_module_has_a_layer(graph):
    for module in graph:
        layer_of(module)


def test_imports_follow_the_layers(graph):
    bad = violations(graph)
    assert not bad, "imports against the layers (docs/architecture.md):\n" + "\n".join(bad)


def test_no_import_cycles(graph):
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_experiments_never_name_a_sleep_algorithm(root):
    """No experiment branches on an algorithm: no algorithm name appears as a string in it."""
    from neurosleep.catalogue import SLEEP

    names = set(SLEEP.names())
    for path in sorted((root / PACKAGE / "experiments").glob("*.py")):
        strings = {
            node.value
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        }
        assert not strings & names, f"{path.name} names sleep algorithms {strings & names}"


def test_sleep_algorithms_touch_no_private_member(root):
    """A sleep module reads no ``_private`` attribute of anything but itself."""
    for path in sorted((root / PACKAGE / "sleep").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
                owner = node.value.id if isinstance(node.value, ast.Name) else ""
                assert owner == "self" or node.attr.startswith("__"), (
                    f"{path.name}:{node.lineno} reads {node.attr}"
                )


def test_the_sleep_contract_checks_kinds():
    import torch

    from neurosleep.sleep import SLEEP, HopfieldContext, MLPOutcome, SleepAlgorithm

    with pytest.raises(ValueError, match="unknown model kind 'ann'"):
        SleepAlgorithm("x", SLEEP.get("sra").Params, "ann", lambda p, c: None, "")
    wrong = SleepAlgorithm(
        "x", SLEEP.get("sra").Params, "hopfield", lambda p, c: MLPOutcome([]), ""
    )
    j = torch.zeros(2, 2)
    context = HopfieldContext(j, "zero", torch.Generator(), lambda b, d: None, None, print)
    with pytest.raises(TypeError, match="returned MLPOutcome"):
        wrong(None, context)
    with pytest.raises(TypeError, match="takes a MLPContext"):
        SLEEP.get("sra")(None, context)


FAKE = {
    "neurosleep": ("", True),
    "neurosleep.spec": ("", True),
    "neurosleep.spec.snn": ("", False),
    "neurosleep.engines": ("", True),
    "neurosleep.engines.torch": ("from neurosleep.spec import snn\n", False),
    "neurosleep.experiments": ("", True),
    "neurosleep.experiments.snn": ("from ..engines.torch import Engine\n", False),
    "neurosleep.sleep": ("", True),
    "neurosleep.sleep.a": ("from neurosleep.sleep import b\n", False),
    "neurosleep.sleep.b": ("def f():\n    import neurosleep.sleep.a\n", False),
}


def test_the_checks_catch_what_they_forbid():
    """Self-check: allowed imports pass; each kind of forbidden import is caught."""
    assert violations(graph_of(FAKE)) == [] and cycles(graph_of({})) == []
    assert cycles(graph_of(FAKE)) == [["neurosleep.sleep.a", "neurosleep.sleep.b"]]
    upward = {
        "plain": "from neurosleep.experiments.snn import X\n",
        "type checking": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from neurosleep.experiments import snn\n",
        "function-local": "def f():\n    import neurosleep.experiments.snn as m\n",
        "relative": "from ..experiments import snn\n",
        "dynamic": "import importlib\nimportlib.import_module('neurosleep.experiments.snn')\n",
    }
    for how, source in upward.items():
        fake = dict(FAKE, **{"neurosleep.spec.snn": (source, False)})
        assert violations(graph_of(fake)) == [
            "neurosleep.spec.snn (schema) imports neurosleep.experiments.snn (experiments)"
        ], how
