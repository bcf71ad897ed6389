#!/usr/bin/env bash
# Device check of real 4-bit (nf4 vs bf16, full-depth OLMoE). Prepare here once:  echo /.whl/ >> .git/info/exclude && python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_24_x86_64 -d .whl bitsandbytes==0.50.2
# Then the device tool: run(command="bash benchmarks/gpu_model_check.sh", carry=[".whl"], timeout_s=570)
set -euo pipefail; python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 timeout 550 python3 benchmarks/gpu_model_check.py --out "${OUT:-benchmarks/results}" "$@"
