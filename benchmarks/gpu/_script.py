"""The start shared by the GPU benchmark scripts (a sibling module, like _timing.py): their common
arguments, and the Triton interpreter switch, which must be set before torch and Triton are
imported, so this module imports torch only inside ``start``."""
from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable


def start(doc: str, budget_s: float, budget_help: str,
          more: Callable[[argparse.ArgumentParser], None] | None = None) -> tuple[argparse.Namespace, float]:
    """Parse --smoke / --out / --budget-s (and ``more``'s arguments); under --smoke run the kernels
    in the Triton interpreter unless a GPU is there; create --out. Returns (args, deadline on
    time.monotonic())."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes, CPU, Triton interpreter")
    p.add_argument("--out", default=os.environ.get("OUT") or "gpu-results")
    p.add_argument("--budget-s", type=float, default=budget_s, help=budget_help)
    if more is not None:
        more(p)
    args = p.parse_args()
    if args.smoke:
        os.environ.setdefault("TRITON_INTERPRET", "1")
    import torch

    if args.smoke and torch.cuda.is_available():
        os.environ.pop("TRITON_INTERPRET", None)  # a GPU is there: smoke-test on it
    os.makedirs(args.out, exist_ok=True)
    return args, time.monotonic() + args.budget_s


def log(*a: object) -> None:
    print(*a, flush=True)
