#!/usr/bin/env bash
# The lent GPU machine has torch, triton, numpy, scipy and scikit-learn but not optuna or
# matplotlib, and no network: the suite step (HPO_BENCH_GPU_STEPS=suite) needs their wheels carried
# along. Run this here (it downloads cp312 wheels into ./.wheels, ~31 MB, git-ignored), then call
# the device with carry [".wheels"]; run.sh installs from .wheels when it is there.
set -eu
cd "$(dirname "$0")/../.."
mkdir -p .wheels
python3 -m pip download -q --dest .wheels --python-version 3.12 --only-binary=:all: \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    --platform any optuna matplotlib tqdm
rm -f .wheels/numpy-*   # keep the machine's numpy (torch is built against it)
ls .wheels
