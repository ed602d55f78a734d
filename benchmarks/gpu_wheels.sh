#!/usr/bin/env bash
# The Python packages benchmarks/gpu_check.sh needs that a lent GPU machine's image lacks, as
# wheels for its Python (3.12, x86-64) in .whl/ (ignored by git), downloaded here: nothing can
# be fetched there. Pinned to this project's setup (numpy < 2.4 for Brian2 2.9.0; the image's
# numpy is newer). The device call carries them: carry [".whl"]; gpu_check.sh installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    numpy==2.3.5 brian2==2.9.0 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 \
    typing-inspection==0.4.5 typing-extensions==4.16.0 pint==0.25.3 flexcache==0.3 \
    flexparser==0.4 platformdirs==4.14.9
du -sh .whl
