"""What a pip user gets: every third-party package neurosleep imports is declared in
pyproject.toml (a dependency, or an extra for the optional ones), and the metadata is current.
.ci/wheel_check builds and installs the wheel itself."""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import re
import sys
import tomllib

#: imported modules that are not distributions of their own
NOT_DISTRIBUTIONS = {"neurosleep", "mpl_toolkits", "_pytest"}


def normal(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(root) -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]

    def names(requirements):
        return {normal(re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0]) for r in requirements}

    extras = {k: names(v) for k, v in project["optional-dependencies"].items()}
    return names(project["dependencies"]), extras


def imported_modules(root) -> set[str]:
    modules = set()
    for path in (root / "neurosleep").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - NOT_DISTRIBUTIONS


def test_every_imported_package_is_declared(root):
    required, extras = declared(root)
    allowed = required | set().union(*extras.values())
    providers = metadata.packages_distributions()
    undeclared = {
        module: providers.get(module, ["?"])
        for module in imported_modules(root)
        if not {normal(d) for d in providers.get(module, [])} & allowed
    }
    assert not undeclared, f"imported but not in pyproject.toml: {undeclared}"


def test_metadata_uses_an_spdx_license_and_ships_the_examples(root):
    text = (root / "pyproject.toml").read_text()
    project = tomllib.loads(text)["project"]
    assert project["license"] == "MIT" and (root / "LICENSE").read_text().startswith("MIT License")
    assert project["license-files"] == ["LICENSE"]
    build = tomllib.loads(text)["build-system"]["requires"]
    assert build == ["setuptools>=77"]  # 77: the first setuptools that reads an SPDX string
    required, extras = declared(root)
    assert {"pandas", "xarray"} <= required and {"mkdocs"} <= extras["docs"]
    assert (root / "neurosleep" / "py.typed").exists() and (root / "CITATION.cff").exists()
    manifest = (root / "MANIFEST.in").read_text()
    assert all(f"graft {folder}" in manifest for folder in ("protocols", "models", "studies"))


def test_docs_site_lists_every_page(root):
    """`mkdocs build --strict` (make docs) fails on a page left out of mkdocs.yml's nav."""
    import yaml

    nav = yaml.safe_load((root / "mkdocs.yml").read_text())["nav"]
    listed = {page for entry in nav for page in entry.values()}
    pages = {p.name for p in (root / "docs").glob("*.md")}
    assert pages == listed, f"add to mkdocs.yml nav: {sorted(pages - listed)}"
