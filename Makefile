# `make run`: the default suite (benchmarks/suites/default.toml; report: runs/make-run/report.md);
# `make test`: the test suite. Each sets up .venv on first use.
# torch is installed first and pinned, so pip never swaps in a multi-GB CUDA build on a CPU machine;
# override with `make TORCH_SPEC='torch==2.11.0' ...` elsewhere.
PYTHON ?= python3
VENV   ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test test-torch-backend bench clean

$(STAMP): pyproject.toml setup.py $(wildcard csrc/*.cpp csrc/*.h)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	mkdir -p runs
	$(VENV)/bin/hpo-bench suite benchmarks/suites/default.toml --out runs/make-run

# The whole suite with the native extension required (no silent fallback) and the Triton kernels
# under the interpreter, then the kernel-dependent tests again on the pure-torch reference backend.
test: $(STAMP)
	HPO_BENCH_REQUIRE_NATIVE=1 TRITON_INTERPRET=1 $(PY) -m pytest -q
	$(MAKE) --no-print-directory test-torch-backend

test-torch-backend: $(STAMP)
	HPO_BENCH_BACKEND=torch $(PY) -m pytest -q tests/test_ops_contract.py tests/test_pruning.py tests/test_evaluator.py

bench: $(STAMP)
	$(PY) -m pytest benchmarks --benchmark-enable -q

clean:
	rm -rf $(VENV) build *.egg-info hpo_bench/_native*.so runs
