#!/usr/bin/env bash
# What a machine with a CUDA GPU must show for the torch engine (issue 17), in one script.
# Run from the repository root:  bash benchmarks/gpu_check.sh [python]   (about 10-20 min)
#   1. the CUDA tests: the tensor loop on CUDA gives the CPU's spikes and weights (float64,
#      within the test's tolerance), and the loop never waits for the device within a block;
#   2. the N sweep 4k -> 1M against Brian2 cpp_standalone (1 thread), static and plastic;
#   3. plastic CUBA 4000 against Brian2 cython and cpp_standalone;
#   4. a batch of 256 CUBA networks in one simulation;
#   5. the tensor loop against its step captured as a CUDA graph (graphs=True), 1 and 256
#      networks, static and plastic (the graph test is among the CUDA tests of 1).
# Every table prints its load average; paste them into docs/performance.md with this command.
set -euo pipefail
PY=${1:-python}
export OMP_NUM_THREADS=1
cd "$(dirname "$0")/.."
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
"$PY" -m pytest -q -m gpu tests/
"$PY" -m pytest -q tests/test_engine_sync.py
SIZES="4000 16000 64000 256000 1000000"
"$PY" benchmarks/cuba_bench.py sweep --device cuda --sizes $SIZES --repeats 3 --cpp
"$PY" benchmarks/cuba_bench.py sweep --device cuda --sizes $SIZES --repeats 3 --cpp --model cuba_stdp
"$PY" benchmarks/cuba_bench.py plastic --device cuda --repeats 3 --cpp --networks 256
"$PY" benchmarks/cuba_bench.py batch --device cuda --networks 256 --repeats 3
"$PY" benchmarks/cuba_bench.py batch --device cuda --networks 256 --repeats 3 --dtype float32
"$PY" benchmarks/cuba_bench.py graphs --device cuda --networks 256 --repeats 3
"$PY" benchmarks/cuba_bench.py graphs --device cuda --networks 256 --repeats 3 --n 250
