// bindings.cpp -- the only file that knows Python: exposes csrc/magnitude.h (magnitude and N:M
// pruning), csrc/score.h (pruning by scores) and csrc/spmm.h (sparse x dense products) as
// hpo_bench._native, which the native
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
#include "score.h"
#include "sddmm.h"
#include "spmm.h"

namespace py = pybind11;
using hpo_native::ScoredTensor;
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

// One ScoredTensor per tensor; `outs` are the masks (score_prune) or the k-th values (score_kth).
std::vector<ScoredTensor> scored(const std::vector<uintptr_t>& weights,
                                 const std::vector<uintptr_t>& scores,
                                 const std::vector<int64_t>& sizes, const std::vector<int>& wdtypes,
                                 const std::vector<int>& sdtypes, const std::vector<int64_t>& rows,
                                 const std::vector<uintptr_t>& outs, bool outs_are_masks) {
  const size_t n = scores.size();
  if ((!weights.empty() && weights.size() != n) || sizes.size() != n ||
      (!wdtypes.empty() && wdtypes.size() != n) || sdtypes.size() != n || rows.size() != n ||
      outs.size() != n)
    throw std::invalid_argument("one entry per tensor in every list");
  std::vector<ScoredTensor> ts(n);
  for (size_t i = 0; i < n; ++i) {
    ts[i] = ScoredTensor{weights.empty() ? nullptr : reinterpret_cast<void*>(weights[i]),
                         wdtypes.empty() ? sdtypes[i] : wdtypes[i],
                         reinterpret_cast<const void*>(scores[i]), sdtypes[i], sizes[i], rows[i],
                         outs_are_masks ? reinterpret_cast<uint8_t*>(outs[i]) : nullptr,
                         outs_are_masks ? nullptr : reinterpret_cast<float*>(outs[i])};
  }
  return ts;
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

  m.def("_set_magnitude_path", &hpo_native::set_magnitude_path, py::arg("path"),
        "Test hook: 0 auto (bracketed select), 1 bracketed with portable kernels, 2 radix only.");
  m.def("_magnitude_fallbacks", &hpo_native::magnitude_fallbacks,
        "Test hook: how many magnitude selections fell back from the bracket to radix select.");

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

  // Pruning by scores (csrc/score.h). group: 0 global (ks = [k]), 1 per tensor, 2 per row (ks[i]
  // per row of tensor i, which is rows[i] x (sizes[i] / rows[i])).
  m.def(
      "score_prune",
      [](const std::vector<uintptr_t>& weights, const std::vector<uintptr_t>& scores,
         const std::vector<int64_t>& sizes, const std::vector<int>& wdtypes,
         const std::vector<int>& sdtypes, const std::vector<uintptr_t>& masks,
         const std::vector<int64_t>& rows, int group, const std::vector<int64_t>& ks, int threads,
         bool simd) {
        if (weights.size() != scores.size() || wdtypes.size() != scores.size())
          throw std::invalid_argument("one weight per score tensor");
        const auto ts = scored(weights, scores, sizes, wdtypes, sdtypes, rows, masks, true);
        py::gil_scoped_release nogil;
        hpo_native::score_prune(ts, group, ks, threads, simd);
      },
      py::arg("weights"), py::arg("scores"), py::arg("sizes"), py::arg("wdtypes"),
      py::arg("sdtypes"), py::arg("masks"), py::arg("rows"), py::arg("group"), py::arg("ks"),
      py::arg("threads"), py::arg("simd") = true,
      "Zero the weights of the k smallest scores of each group (ties: lowest position first); "
      "write uint8 masks. ValueError on a NaN or negative score (then no weight is changed).");

  m.def(
      "score_kth",
      [](const std::vector<uintptr_t>& scores, const std::vector<int64_t>& sizes,
         const std::vector<int>& sdtypes, const std::vector<uintptr_t>& outs,
         const std::vector<int64_t>& rows, int group, const std::vector<int64_t>& ks, int threads,
         bool simd) {
        const auto ts = scored({}, scores, sizes, {}, sdtypes, rows, outs, false);
        py::gil_scoped_release nogil;
        hpo_native::score_kth(ts, group, ks, threads, simd);
      },
      py::arg("scores"), py::arg("sizes"), py::arg("sdtypes"), py::arg("outs"), py::arg("rows"),
      py::arg("group"), py::arg("ks"), py::arg("threads"), py::arg("simd") = true,
      "The k-th smallest score of each group as float32 (-inf where k == 0): one per row for "
      "group 2, else one per tensor.");

  // Sparse inference (csrc/spmm.h): float32 y[batch, rows] = x[batch, cols] @ W.T (+ bias, 0 = none).
  m.def(
      "spmm_csr",
      [](uintptr_t crow, uintptr_t col, int col_bytes, uintptr_t values, int64_t rows, int64_t cols,
         uintptr_t x, int64_t batch, uintptr_t bias, uintptr_t y, int threads, uintptr_t perm) {
        py::gil_scoped_release nogil;
        hpo_native::spmm_csr(reinterpret_cast<const int32_t*>(crow), reinterpret_cast<const void*>(col),
                             col_bytes, reinterpret_cast<const float*>(values), rows, cols,
                             {reinterpret_cast<const float*>(x), batch,
                              reinterpret_cast<const float*>(bias), reinterpret_cast<float*>(y)},
                             threads, reinterpret_cast<const int32_t*>(perm));
      },
      py::arg("crow"), py::arg("col"), py::arg("col_bytes"), py::arg("values"), py::arg("rows"),
      py::arg("cols"), py::arg("x"), py::arg("batch"), py::arg("bias"), py::arg("y"), py::arg("threads"),
      py::arg("perm") = 0,
      "CSR (int16 or int32 columns) times dense; perm (int32 [nnz], 0 = none): value k is values[perm[k]].");

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

  // Sparse training (csrc/sddmm.h): out[k] = sum_b g[b, row_k] * x[b, col_k] at the kept positions.
  m.def(
      "sddmm_csr",
      [](uintptr_t crow, uintptr_t col, int col_bytes, int64_t rows, int64_t cols, uintptr_t g,
         uintptr_t x, int64_t batch, uintptr_t out, int threads) {
        py::gil_scoped_release nogil;
        hpo_native::sddmm_csr(reinterpret_cast<const int32_t*>(crow), reinterpret_cast<const void*>(col),
                              col_bytes, rows, cols, reinterpret_cast<const float*>(g),
                              reinterpret_cast<const float*>(x), batch, reinterpret_cast<float*>(out),
                              threads);
      },
      py::arg("crow"), py::arg("col"), py::arg("col_bytes"), py::arg("rows"), py::arg("cols"),
      py::arg("g"), py::arg("x"), py::arg("batch"), py::arg("out"), py::arg("threads"),
      "The weight gradient of y = x @ W.T at W's kept (CSR) positions: (g.T @ x) sampled there.");
}
