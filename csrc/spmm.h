// spmm.h -- CPU sparse x dense products for pruned inference (no Python, no torch).
//
// Every function computes y = x @ W.T (+ bias) in float32: x is [batch, cols] row-major, y is
// [batch, rows] row-major, W is [rows, cols] in one of the packed formats of hpo_bench.ops
// (hpo_bench/ops/formats.py documents the buffer layouts). Threads split the rows by
// nonzero count, not by row count, so a few dense rows cannot leave a thread idle.
#pragma once

#include <cstdint>

namespace hpo_native {

// The product's common operands. bias may be null.
struct DenseOperands {
  const float* x;
  int64_t batch;
  const float* bias;
  float* y;
};

// CSR: crow int32 [rows+1], col int16 (col_bytes 2) or int32 (col_bytes 4) [nnz], values [nnz];
// with perm (int32 [nnz], may be null) the k-th value is values[perm[k]].
void spmm_csr(const int32_t* crow, const void* col, int col_bytes, const float* values, int64_t rows,
              int64_t cols, const DenseOperands& d, int threads, const int32_t* perm = nullptr);

// BSR: blocks bh x bw; crow int32 [ceil(rows/bh)+1], col int32 [nnzb] (block columns),
// values [nnzb, bh, bw]; the padding beyond rows x cols holds zeros.
void spmm_bsr(const int32_t* crow, const int32_t* col, const float* values, int bh, int bw,
              int64_t rows, int64_t cols, const DenseOperands& d, int threads);

// Bitmask: bits uint8 [rows, ceil(cols/8)] (bit j%8 of byte j/8 = column j is nonzero),
// crow int32 [rows+1], values [nnz] in row-major order.
void spmm_bitmask(const uint8_t* bits, const int32_t* crow, const float* values, int64_t rows,
                  int64_t cols, const DenseOperands& d, int threads);

}  // namespace hpo_native
