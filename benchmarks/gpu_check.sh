#!/usr/bin/env bash
# What a machine with a CUDA GPU must show for the torch engine (issue 17), sized for a lent
# machine's device time (15 minutes a session, 10 a command): parts whose step limits add up to
# under 590 s (quick 585 s, sweep 480 s: the two do not fit one session together), every step's
# output in $OUT/<step>.txt (what comes back from the device tool) and on stdout; a step that
# fails or runs out of time does not stop the next. The limits allow for building the networks
# on the host in numpy, ≈0.19 s per CUBA 4000 network here (≈50 s for a batch of 256).
#
#   bash benchmarks/gpu_wheels.sh                  # here, once: the wheels the image lacks, .whl/
#   device run, carry [".whl"], timeout_s 590:  bash benchmarks/gpu_check.sh quick
#   then, if the session has the time:           bash benchmarks/gpu_check.sh sweep
#
# quick: versions; the CUDA tests (the tensor loop and its captured step give the CPU's spikes,
#        samples and weights; no device wait per step); plastic CUBA 4000 against Brian2 cython
#        and cpp_standalone with a batch of 256; batches of static networks, 256 in float64 and
#        64 in float32; the tensor loop against its step as a CUDA graph (4000 neurons, 1 and 32
#        networks; 250 neurons, 1 and 256).
# sweep: the N sweep 4k -> 256k, static then plastic, against Brian2 cython and cpp_standalone
#        (1 thread); issue 17's goal: >= 10x cpp_standalone at 256k.
# full:  the sweep to 1M (Brian2 cython at 1M takes minutes per second simulated).
# DEVICE=cpu runs the same commands on the CPU (a check of this script, not a measurement).
set -uo pipefail
PART=${1:-quick}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-outputs/gpu_check}
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
if [ -d .whl ] && ls .whl/*.whl > /dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/neurosleep-site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/neurosleep-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
summary=()

step() {  # step NAME SECONDS COMMAND...: run under a time limit, output to $OUT/NAME.txt
    local name=$1 limit=$2 start=$SECONDS rc
    shift 2
    echo "=== $name (limit ${limit} s): $*"
    timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.txt"
    rc=${PIPESTATUS[0]}
    summary+=("$name: exit $rc in $((SECONDS - start)) s")
}

B=("$PY" benchmarks/cuba_bench.py)
D=(--device "$DEVICE")

case $PART in
quick)
    step 00-versions 30 "$PY" -c "
import importlib, shutil
names = ['torch', 'numpy', 'numba', 'scipy', 'h5py', 'yaml', 'tqdm', 'pydantic', 'pytest',
         'brian2', 'Cython', 'sympy', 'pyparsing', 'jinja2', 'packaging', 'setuptools',
         'neurosleep.engines']
for name in names:  # what the steps import: a gap shows here, in seconds
    try:
        print(name, getattr(importlib.import_module(name), '__version__', 'ok'))
    except Exception as exc:
        print(name, 'MISSING:', exc)
print('g++', shutil.which('g++'), 'make', shutil.which('make'))
import torch
print('device', torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')
assert '$DEVICE' == 'cpu' or torch.cuda.is_available(), 'no CUDA device'"
    step 01-cuda-tests 90 "$PY" -m pytest -q -p no:cacheprovider --continue-on-collection-errors \
        tests/test_engine_graph.py tests/test_engine_sync.py \
        "tests/test_engines_equivalence.py::test_torch_on_cuda_matches_cpu"
    step 02-plastic 180 "${B[@]}" plastic --repeats 3 --cpp --networks 256 "${D[@]}"
    step 03-batch-float64 120 "${B[@]}" batch --networks 256 --repeats 3 "${D[@]}"
    step 04-batch-float32 45 "${B[@]}" batch --networks 64 --repeats 3 --dtype float32 "${D[@]}"
    step 05-graphs-4000 75 "${B[@]}" graphs --networks 32 --repeats 2 "${D[@]}"
    step 06-graphs-250 45 "${B[@]}" graphs --networks 256 --repeats 2 --n 250 "${D[@]}"
    ;;
sweep)
    step 10-sweep-static 240 "${B[@]}" sweep --sizes 4000 16000 64000 256000 --repeats 3 --cpp \
        "${D[@]}"
    step 11-sweep-plastic 240 "${B[@]}" sweep --sizes 4000 64000 256000 --repeats 3 --cpp \
        --model cuba_stdp "${D[@]}"
    ;;
full)
    step 20-sweep-1m 580 "${B[@]}" sweep --sizes 1000000 --repeats 1 --cpp "${D[@]}"
    ;;
*)
    echo "usage: gpu_check.sh [quick|sweep|full]" >&2
    exit 2
    ;;
esac
printf '%s\n' "${summary[@]}" | tee "$OUT/summary.txt"
