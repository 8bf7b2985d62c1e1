"""Convert a pruned model for inference: each ``nn.Linear`` becomes a ``SparseLinear`` in the format
that is *measured* fastest for it, here, at the batch size the model will see.

Whether skipping zeros pays depends on the sparsity, the layer's shape, the batch size and the
machine (a 50%-sparse layer is slower in every sparse format than dense; a 90%-sparse one at batch 1
is several times faster). So nothing is guessed: every candidate format of every layer is timed on
that layer's real input, interleaved with dense, and a sparse format is chosen only if it beats dense
by ``margin`` -- the converted model is never meaningfully slower than the dense one.

Choices are cached in memory and on disk (one JSON file per key under
``cache_root() / "formats"``), keyed by device name, dtype, shape, density bucket, block fill
bucket and batch, so a search that evaluates hundreds of pruned models measures each kind of layer
once.
"""
from __future__ import annotations

import copy
import hashlib
import json
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from .. import ops
from .._io import cache_root, write_json_atomic
from ..nn import SparseLinear

__all__ = ["DEFAULT_FORMATS", "choose_format", "device_name", "inference_latency", "load_timings", "measure_latency",
           "save_timings", "sparsify", "time_interleaved"]

# 2:4 runs on CUDA only (torch's semi-structured kernels) and only for weights with at most 2
# nonzeros in every 4: elsewhere it is skipped like any format that cannot hold the weight.
DEFAULT_FORMATS = ("dense", "csr", "bsr", "bitmask", "2:4")

_CHOICES: dict[str, dict[str, float]] = {}  # key -> {format: median seconds}


def device_name(device: torch.device) -> str:
    """What a timing depends on besides the layer: the processor (and CPU threads)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), model)
    except OSError:
        pass
    return f"{model} x{torch.get_num_threads()} threads"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(fns: dict[str, Callable[[], Any]], repeats: int, device: torch.device) -> dict[str, float]:
    """Median seconds per call of each fn, timed round-robin so that a burst of load from elsewhere
    on the machine hits every candidate alike. Fast calls are batched so a sample lasts >= ~0.2 ms,
    and (with several fns) every sample follows one untimed call of the same fn: each candidate is
    timed warm, as a layer called in a loop runs, not in whatever cache and thread state the
    previous candidate left (a 16 MB dense-sized candidate evicts a 1 MB sparse one from L3 and
    made it look 3x slower)."""
    inner: dict[str, int] = {}
    for name, fn in fns.items():
        fn()
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        inner[name] = max(1, min(100, int(2e-4 / max(time.perf_counter() - t0, 1e-9))))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(max(1, repeats)):
        for name, fn in fns.items():
            if len(fns) > 1:
                fn()
                _sync(device)
            t0 = time.perf_counter()
            for _ in range(inner[name]):
                fn()
            _sync(device)
            samples[name].append((time.perf_counter() - t0) / inner[name])
    return {name: statistics.median(s) for name, s in samples.items()}


@torch.no_grad()
def measure_latency(model: nn.Module, example: torch.Tensor, repeats: int = 20) -> float:
    """Median seconds of one forward pass of ``model`` on ``example`` (after a warm-up call)."""
    device = example.device
    return time_interleaved({"model": lambda: model(example)}, repeats, device)["model"]


def _block_fill(w: torch.Tensor, block: int) -> float:
    """Fraction of ``block`` x ``block`` tiles holding a nonzero: what BSR's speed depends on."""
    nz = torch.nn.functional.pad(w != 0, (0, -w.shape[1] % block, 0, -w.shape[0] % block))
    tiles = nz.reshape(nz.shape[0] // block, block, nz.shape[1] // block, block).any(3).any(1)
    return float(tiles.float().mean()) if tiles.numel() else 0.0


def _key(w: torch.Tensor, batch: int, block: int) -> dict[str, Any]:
    density = float((w != 0).sum()) / max(w.numel(), 1)
    # "kernels": bumped when a format's kernel changes (2: CSR runs a Triton kernel on CUDA, no
    # longer the densified reference), so timings of the old kernels are not reused
    return {"kernels": 2, "device": device_name(w.device), "dtype": str(w.dtype).removeprefix("torch."),
            "shape": list(w.shape), "density": round(density, 2), "block": block,
            "block_fill": round(_block_fill(w, block), 2), "batch": int(batch)}


def _cache_path(key: dict[str, Any], kind: str = "formats"):
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return cache_root() / kind / f"{digest}.json"


def load_timings(key: dict[str, Any], kind: str = "formats") -> dict[str, float]:
    """The measured median seconds of each candidate for ``key`` (a dict naming what the timing
    depends on), from memory or from ``cache_root() / kind``; {} if never measured. The returned
    dict is the memory cache's own: add to it, then ``save_timings``."""
    skey = kind + json.dumps(key, sort_keys=True)
    if skey not in _CHOICES:
        timings: dict[str, float] = {}
        try:
            entry = json.loads(_cache_path(key, kind).read_text())
            if entry.get("key") == key:
                timings = {str(k): float(v) for k, v in entry["seconds"].items()}
                timings.update({str(f): float("inf") for f in entry.get("unavailable", [])})
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass  # missing or corrupt: measure again
        _CHOICES[skey] = timings
    return _CHOICES[skey]


def save_timings(key: dict[str, Any], timings: dict[str, float], kind: str = "formats") -> None:
    """Keep ``timings`` for ``key`` on disk (inf = the candidate cannot run here)."""
    path = _cache_path(key, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"key": key, "seconds": {k: v for k, v in timings.items() if v != float("inf")},
                             "unavailable": sorted(k for k, v in timings.items() if v == float("inf"))})


def choose_format(linear: nn.Linear, x: torch.Tensor, formats: Sequence[str] = DEFAULT_FORMATS, *,
                  block: int = 16, margin: float = 1.1, repeats: int = 15) -> tuple[str, dict[str, float]]:
    """The fastest of ``formats`` for ``linear`` on inputs like ``x`` [batch, in], and the median
    seconds of each candidate. A sparse format wins only if ``margin`` times its time still beats
    dense; formats that cannot hold this weight here (e.g. 2:4 on CPU) are skipped."""
    if "dense" not in formats:
        raise ValueError(f"formats must include 'dense' (the baseline every choice is measured against), got {formats}")
    w, bias = linear.weight.detach(), None if linear.bias is None else linear.bias.detach()
    key = _key(w, x.shape[0], block)
    timings = load_timings(key)
    missing = [f for f in formats if f not in timings]
    if missing:
        fns: dict[str, Callable[[], Any]] = {}
        for fmt in dict.fromkeys(["dense", *missing]):
            try:
                sw = ops.to_sparse(w, fmt, block=block)
                fn = (lambda sw=sw: ops.sparse_linear(x, sw, bias))
                with torch.no_grad():
                    fn()  # a kernel may still refuse this shape or dtype (torch's 2:4 has limits)
            except (ValueError, RuntimeError, NotImplementedError):
                if fmt == "dense":
                    raise
                timings[fmt] = float("inf")
                continue
            fns[fmt] = fn
        with torch.no_grad():
            timings.update(time_interleaved(fns, repeats, x.device))
        save_timings(key, timings)
    dense = timings["dense"]
    best = min(formats, key=lambda f: timings[f])
    if best != "dense" and timings[best] * margin >= dense:
        best = "dense"
    return best, {f: timings[f] for f in formats}


@torch.no_grad()
def sparsify(model: nn.Module, example_input: torch.Tensor, formats: Sequence[str] = DEFAULT_FORMATS, *,
             block: int = 16, margin: float = 1.1, repeats: int = 15) -> nn.Module:
    """A copy of ``model`` for inference, each ``nn.Linear`` replaced by a ``SparseLinear`` in the
    format measured fastest on ``example_input`` (dense is kept where nothing beats it). The choice
    per layer is in ``model.sparsify_report``: {layer name: {"format", "seconds"}}."""
    inputs: dict[str, torch.Tensor] = {}
    hooks = [
        mod.register_forward_pre_hook(lambda m, args, name=name: inputs.setdefault(name, args[0].detach()))
        for name, mod in model.named_modules() if isinstance(mod, nn.Linear)
    ]
    try:
        model(example_input)
    finally:
        for h in hooks:
            h.remove()
    out = copy.deepcopy(model)
    report: dict[str, dict[str, Any]] = {}
    for name, x in inputs.items():
        linear = out.get_submodule(name)
        x2 = x.reshape(-1, linear.in_features).contiguous()
        fmt, seconds = choose_format(linear, x2, formats, block=block, margin=margin, repeats=repeats)
        report[name] = {"format": fmt, "seconds": seconds}
        if fmt == "dense":
            continue
        sparse = SparseLinear.from_linear(linear, fmt, block=block)
        if not name:  # the model is itself a Linear
            out = sparse
            continue
        out.set_submodule(name, sparse)
    out.sparsify_report = report
    return out


def inference_latency(model: nn.Module, example: torch.Tensor, repeats: int = 20) -> tuple[float, dict[str, Any]]:
    """The ``latency_ms`` objective: median milliseconds of ``sparsify(model)`` on ``example``
    (eval mode), and what it ran on: {"device", "formats": {layer: format}, "dense_ms"}.
    It is a measurement, not a pure function of the config: cached results keep the first one."""
    training = model.training
    model.eval()
    try:
        fast = sparsify(model, example)
        ms = 1e3 * measure_latency(fast, example, repeats)
        dense_ms = 1e3 * measure_latency(model, example, repeats)
    finally:
        model.train(training)
    formats = {name: r["format"] for name, r in fast.sparsify_report.items()}
    return ms, {"device": device_name(example.device), "formats": formats, "dense_ms": dense_ms}
