"""Which backend runs an op: lazy loading, the device rule, ``HPO_BENCH_BACKEND``, load errors.

Backends (``available_backends()``), fastest first:

* ``"triton"``  -- ``hpo_bench.kernels``, for CUDA tensors (on CPU under ``TRITON_INTERPRET=1``)
* ``"native"``  -- ``hpo_bench.ops.native`` over the C++ extension ``hpo_bench._native``, for CPU
* ``"torch"``   -- ``hpo_bench.ops.reference``, the specification, for anything

CUDA tensors go to Triton, CPU tensors to the native extension, anything else to the reference.
``HPO_BENCH_BACKEND=torch|native|triton`` (or an op's ``backend=``) forces one backend, and fails
loudly if it is missing, saying why (``load_error``). Each backend is imported on first use only,
so ``import hpo_bench.ops`` costs torch alone; what the backends provide is ``protocol.Backend``.
"""
from __future__ import annotations

import os

import torch

from . import reference
from .formats import SparseWeight
from .protocol import Backend

__all__ = ["BACKENDS", "available_backends", "backend_for", "load", "load_error", "module_for",
           "product_backend"]

BACKENDS = ("triton", "native", "torch")

_loaded: dict[str, Backend | None] = {}
_load_errors: dict[str, str] = {}


def _import(name: str) -> Backend:
    if name == "torch":
        return reference
    if name == "native":
        from . import native

        return native
    if name == "triton":
        from .. import kernels

        if not kernels.available():
            raise ImportError(kernels.unavailable_reason())
        return kernels
    raise KeyError(name)


def load(name: str) -> Backend | None:
    """The backend module ``name``, imported once, lazily; None if it does not run here (then
    ``load_error(name)`` says why)."""
    if name not in _loaded:
        try:
            module: Backend | None = _import(name)
        except Exception as e:  # noqa: BLE001 - any import failure means "not available"
            module = None
            _load_errors[name] = f"{type(e).__name__}: {e}"
        _loaded[name] = module
    return _loaded[name]


def load_error(name: str) -> str | None:
    """Why backend ``name`` is unavailable (``"ImportError: ..."``), or None if it loaded (or has
    not been asked for yet: ``available_backends()`` asks for all of them)."""
    return _load_errors.get(name)


def available_backends() -> tuple[str, ...]:
    """The backends that import and run here, fastest first."""
    return tuple(b for b in BACKENDS if load(b) is not None)


def _forced() -> str | None:
    forced = os.environ.get("HPO_BENCH_BACKEND", "").strip().lower() or None
    if forced is not None and forced not in BACKENDS:
        raise RuntimeError(
            f"HPO_BENCH_BACKEND={forced!r} is not a backend; choose one of {', '.join(BACKENDS)}"
        )
    return forced


def backend_for(device: torch.device, backend: str | None = None) -> str:
    """Name of the backend an op on ``device`` uses: ``backend`` if given, else
    ``$HPO_BENCH_BACKEND``, else triton for CUDA, native for CPU, torch otherwise."""
    name = backend or _forced()
    if name is not None:
        if name not in BACKENDS:
            raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
        if load(name) is None:
            raise RuntimeError(
                f"backend {name!r} was asked for but is not available: {load_error(name)}"
            )
        if name == "native" and device.type != "cpu":
            raise RuntimeError(f"backend 'native' runs on CPU tensors only, got {device}")
        return name
    if device.type == "cuda" and load("triton") is not None:
        return "triton"
    if device.type == "cpu" and load("native") is not None:
        return "native"
    return "torch"


def module_for(device: torch.device, backend: str | None) -> Backend:
    """The module of the backend an op on ``device`` uses (see ``backend_for``)."""
    module = load(backend_for(device, backend))
    assert module is not None  # backend_for names only backends that loaded
    return module


#: Formats whose weight torch multiplies itself (``F.linear`` takes the stored weight as it is):
#: no backend is consulted for them, so no backend choice can fail or load for them.
_TORCH_OPERANDS = ("dense", "2:4")


def product_backend(x2: torch.Tensor, sw: SparseWeight, bias: torch.Tensor | None,
                    backend: str | None) -> Backend:
    """The backend module that runs ``x2 @ W.T + bias``: the one chosen for ``x2``'s device if it
    ``supports`` the product, else the reference."""
    if sw.format in _TORCH_OPERANDS:
        return reference
    module = module_for(x2.device, backend)
    return module if module.supports(x2, sw, bias) else reference
