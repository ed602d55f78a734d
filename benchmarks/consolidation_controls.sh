#!/usr/bin/env bash
# Every table of docs/results.md "Controls and the causal link to replay", its large
# configuration and the Brian2 nightmares of "Engines" (issue #15), one command:
#   bash benchmarks/consolidation_controls.sh    (PYTHON=.venv/bin/python OUT=... to change them)
# Seeds 101-120 (20 networks, one torch batch per condition): no sleep, sleep and the controls
# (CONTROLS of consolidation_table.py), with the spontaneous baseline; the large configuration
# (models/assemblies_large.yaml, groups of 200; LARGE_NETWORKS networks from seed 101) in no
# sleep, sleep, sleep with plasticity off and nightmares; no sleep and the nightmares on Brian2
# (numpy target, one run per seed, BRIAN2_NETWORKS of them from seed 101) against torch batches
# of 20 of the same protocols (in $OUT/engines, without the baseline windows on both engines).
# Run files go to $OUT: the ones already there are read, not run again (each must hold the model
# its condition runs now, else the table stops); remove them to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
OUT=${OUT:-outputs/controls20}
LARGE_NETWORKS=${LARGE_NETWORKS:-4}
BRIAN2_NETWORKS=${BRIAN2_NETWORKS:-6}
table=("$PYTHON" benchmarks/consolidation_table.py --seed 101 --out "$OUT" --figure "" --reuse)

echo "## controls, 20 networks (seeds 101-120)"
"${table[@]}" --networks 20 --baseline --only controls
echo "## large configuration, $LARGE_NETWORKS networks"
"${table[@]}" --networks "$LARGE_NETWORKS" --baseline --size large --only large
echo "## engines: torch (20 networks) against Brian2 ($BRIAN2_NETWORKS networks)"
"$PYTHON" benchmarks/consolidation_engines.py --networks 20 --brian2-networks "$BRIAN2_NETWORKS" \
    --seed 101 --out "$OUT/engines" --reuse --only consolidation_no_sleep consolidation_nightmares
