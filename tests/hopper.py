"""Compile Triton kernels for sm_90 (Hopper) without a GPU, in a process without the interpreter:
GPU-only lowering errors show up on a CPU-only machine. Used by the kernel tests."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

#: Starts every compile script: ``compile_(fn, signature, constexprs, num_warps)`` compiles one
#: kernel; exit status 3 means "this machine cannot compile" (the test is skipped, saying why).
PRELUDE = """import sys
import triton
try:
    from triton.backends.compiler import GPUTarget
except ImportError:
    print("this triton cannot compile for a named GPU target"); sys.exit(3)

def compile_(fn, sig, cx, nw):
    sig = dict(sig, **{k: "constexpr" for k in cx})
    src = triton.compiler.ASTSource(fn=fn, signature=sig, constexprs=cx)
    try:
        triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": nw})
    except FileNotFoundError as e:
        print(f"no CUDA toolchain to compile with: {e}"); sys.exit(3)
"""


def compile_for_hopper(body: str) -> None:
    """Run ``PRELUDE + body`` in a fresh process; fail on any compile error."""
    pytest.importorskip("triton", reason="triton is not installed")
    if torch.cuda.is_available():
        pytest.skip("a CUDA machine compiles the kernels in the other tests")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-c", PRELUDE + body], env=env, capture_output=True, text=True,
                          timeout=300)
    if proc.returncode == 3:
        pytest.skip(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == 0, proc.stdout + proc.stderr
