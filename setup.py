"""Build step that ships the top-level ``protocols/``, ``models/`` and ``studies/`` folders.

They stay where the product brief puts them (the repository's top level) and are copied into
the wheel as ``neurosleep/_examples/<folder>/``, keeping their relative layout so that a
protocol's ``model: ../models/x.yaml`` still resolves. An editable install reads them from the
checkout instead (``neurosleep.examples.root``). Everything else is in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

EXAMPLE_FOLDERS = ("protocols", "models", "studies")


class BuildWithExamples(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        here = Path(__file__).resolve().parent
        for folder in EXAMPLE_FOLDERS:
            for source in sorted((here / folder).glob("**/*.yaml")):
                target = Path(self.build_lib, "neurosleep", "_examples", source.relative_to(here))
                self.mkpath(str(target.parent))
                self.copy_file(str(source), str(target))


setup(cmdclass={"build_py": BuildWithExamples})
