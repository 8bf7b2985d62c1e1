// sddmm.h -- the weight gradient of a pruned linear layer at its kept positions only (no Python,
// no torch): a sampled dense-dense product (SDDMM).
//
// For y = x @ W.T with W [rows, cols] packed as CSR (crow int32 [rows+1], col int16 or int32 [nnz]),
// g = dL/dy [batch, rows] and x [batch, cols] (row-major float32), writes
//     out[k] = sum_b g[b, r] * x[b, col[k]]      for every kept k of row r,
// i.e. (g.T @ x) sampled at the kept positions, in CSR order. Each out[k] is one thread's sum in a
// fixed order (batch tiles of 64 in order, 8 lanes each, then the lanes), so the result does not
// depend on the thread count.
#pragma once

#include <cstdint>

namespace hpo_native {

void sddmm_csr(const int32_t* crow, const void* col, int col_bytes, int64_t rows, int64_t cols,
               const float* g, const float* x, int64_t batch, float* out, int threads);

}  // namespace hpo_native
