// bindings.cpp -- the only file that knows Python: exposes csrc/magnitude.h (magnitude and N:M
// pruning) and csrc/spmm.h (sparse x dense products) as hpo_bench._native, which the native
// backend hpo_bench/ops/native.py wraps (typed in hpo_bench/_native.pyi).
//
// Tensors cross as plain integers (tensor.data_ptr(), numel) plus a dtype code (0 float32,
// 1 float16, 2 bfloat16), so the build needs no torch headers. The GIL is released while a kernel
// runs. std::domain_error (NaN) and std::invalid_argument reach Python as ValueError.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <vector>

#include "magnitude.h"
#include "spmm.h"

namespace py = pybind11;
using hpo_native::Segment;

namespace {

std::vector<Segment> segments(const std::vector<uintptr_t>& ptrs, const std::vector<int64_t>& sizes,
                              const std::vector<int>& dtypes, const std::vector<uintptr_t>& masks) {
  if (ptrs.size() != sizes.size() || ptrs.size() != dtypes.size() ||
      (!masks.empty() && masks.size() != ptrs.size()))
    throw std::invalid_argument("ptrs, sizes, dtypes (and masks) must have the same length");
  std::vector<Segment> segs(ptrs.size());
  for (size_t i = 0; i < ptrs.size(); ++i) {
    if (sizes[i] < 0) throw std::invalid_argument("negative buffer size");
    segs[i] = Segment{reinterpret_cast<void*>(ptrs[i]), sizes[i], dtypes[i],
                      masks.empty() ? nullptr : reinterpret_cast<uint8_t*>(masks[i])};
  }
  return segs;
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "hpo_bench native kernels (C++17 + OpenMP): pruning and sparse products, raw buffers";

  m.def(
      "kth_magnitude",
      [](const std::vector<uintptr_t>& ptrs, const std::vector<int64_t>& sizes,
         const std::vector<int>& dtypes, int64_t k, int threads) {
        const auto segs = segments(ptrs, sizes, dtypes, {});
        py::gil_scoped_release nogil;
        return hpo_native::kth_magnitude(segs, k, threads);
      },
      py::arg("ptrs"), py::arg("sizes"), py::arg("dtypes"), py::arg("k"), py::arg("threads"),
      "k-th smallest |w| (1 <= k <= N) over the buffers; ValueError on NaN.");

  m.def(
      "prune",
      [](const std::vector<uintptr_t>& ptrs, const std::vector<int64_t>& sizes,
         const std::vector<int>& dtypes, const std::vector<uintptr_t>& masks, int64_t k,
         int threads) {
        if (masks.size() != ptrs.size()) throw std::invalid_argument("one mask per buffer");
        const auto segs = segments(ptrs, sizes, dtypes, masks);
        py::gil_scoped_release nogil;
        hpo_native::prune(segs, k, threads);
      },
      py::arg("ptrs"), py::arg("sizes"), py::arg("dtypes"), py::arg("masks"), py::arg("k"),
      py::arg("threads"),
      "Prune the k smallest |w| in place (ties: lowest position first); write uint8 masks.");

  m.def(
      "nm_prune",
      [](uintptr_t ptr, int64_t size, int dtype, uintptr_t mask, int n, int m_, int threads) {
        const auto segs = segments({ptr}, {size}, {dtype}, {mask});
        py::gil_scoped_release nogil;
        hpo_native::nm_prune(segs[0], n, m_, threads);
      },
      py::arg("ptr"), py::arg("size"), py::arg("dtype"), py::arg("mask"), py::arg("n"),
      py::arg("m"), py::arg("threads"),
      "N:M pruning in place: keep the n largest |w| of every m consecutive; write the uint8 mask.");

  // Sparse inference (csrc/spmm.h): float32 y[batch, rows] = x[batch, cols] @ W.T (+ bias, 0 = none).
  m.def(
      "spmm_csr",
      [](uintptr_t crow, uintptr_t col, int col_bytes, uintptr_t values, int64_t rows, int64_t cols,
         uintptr_t x, int64_t batch, uintptr_t bias, uintptr_t y, int threads) {
        py::gil_scoped_release nogil;
        hpo_native::spmm_csr(reinterpret_cast<const int32_t*>(crow), reinterpret_cast<const void*>(col),
                             col_bytes, reinterpret_cast<const float*>(values), rows, cols,
                             {reinterpret_cast<const float*>(x), batch,
                              reinterpret_cast<const float*>(bias), reinterpret_cast<float*>(y)},
                             threads);
      },
      py::arg("crow"), py::arg("col"), py::arg("col_bytes"), py::arg("values"), py::arg("rows"),
      py::arg("cols"), py::arg("x"), py::arg("batch"), py::arg("bias"), py::arg("y"), py::arg("threads"),
      "CSR (int16 or int32 columns) times dense.");

  m.def(
      "spmm_bsr",
      [](uintptr_t crow, uintptr_t col, uintptr_t values, int bh, int bw, int64_t rows, int64_t cols,
         uintptr_t x, int64_t batch, uintptr_t bias, uintptr_t y, int threads) {
        py::gil_scoped_release nogil;
        hpo_native::spmm_bsr(reinterpret_cast<const int32_t*>(crow), reinterpret_cast<const int32_t*>(col),
                             reinterpret_cast<const float*>(values), bh, bw, rows, cols,
                             {reinterpret_cast<const float*>(x), batch,
                              reinterpret_cast<const float*>(bias), reinterpret_cast<float*>(y)},
                             threads);
      },
      py::arg("crow"), py::arg("col"), py::arg("values"), py::arg("bh"), py::arg("bw"), py::arg("rows"),
      py::arg("cols"), py::arg("x"), py::arg("batch"), py::arg("bias"), py::arg("y"), py::arg("threads"),
      "BSR (bh x bw blocks, zero padded) times dense.");

  m.def(
      "spmm_bitmask",
      [](uintptr_t bits, uintptr_t crow, uintptr_t values, int64_t rows, int64_t cols, uintptr_t x,
         int64_t batch, uintptr_t bias, uintptr_t y, int threads) {
        py::gil_scoped_release nogil;
        hpo_native::spmm_bitmask(reinterpret_cast<const uint8_t*>(bits), reinterpret_cast<const int32_t*>(crow),
                                 reinterpret_cast<const float*>(values), rows, cols,
                                 {reinterpret_cast<const float*>(x), batch,
                                  reinterpret_cast<const float*>(bias), reinterpret_cast<float*>(y)},
                                 threads);
      },
      py::arg("bits"), py::arg("crow"), py::arg("values"), py::arg("rows"), py::arg("cols"), py::arg("x"),
      py::arg("batch"), py::arg("bias"), py::arg("y"), py::arg("threads"),
      "Bitmask (bit per weight + packed values) times dense.");
}
