// sddmm.cpp -- out[k] = sum_b g[b, row_k] * x[b, col_k] over the kept positions of a CSR weight
// (sddmm.h): the weight gradient of sparse training, at 1/density less work than g.T @ x.
//
// Shape of the work: g and x are transposed once into gT [rows, B] and xT [cols, B] (B = batch
// rounded up to 8, zero padded), so that a kept position is a dot product of two contiguous runs.
// A row's run of gT (one batch tile of up to 64 floats: 8 vectors) is loaded into registers once
// and reused for every kept position of the row; each position then costs 8 vector loads and FMAs
// per tile. Rows are cut into parts of equal nonzero count, taken dynamically by threads (as in
// spmm.cpp); every out[k] is computed by one thread in one order, so the result is the same for
// any thread count.
#include "sddmm.h"
#include "simd.h"

#include <omp.h>

#include <algorithm>
#include <stdexcept>
#include <vector>

namespace hpo_native {
namespace {

constexpr int64_t kMinWorkPerThread = int64_t(1) << 15;  // multiply-adds
constexpr int kPartsPerThread = 8;
constexpr int64_t kTile = 64;       // batch floats held in registers per row
constexpr int64_t kTransposeRows = 64;

template <class Idx>
struct Job {
  const int32_t* crow;
  const Idx* col;
  int64_t rows, cols, batch, bp;  // bp: batch rounded up to 8
  const float* gT;                // [rows, bp]
  const float* xT;                // [cols, bp]
  float* out;
  std::vector<int64_t> bounds;    // rows of part p: [bounds[p], bounds[p+1])
};

// One batch tile of NV vectors (8 * NV floats from t0) of rows [r0, r1): first = the tile that
// starts at 0 (stores), later tiles add.
template <int NV, class Idx>
SPMM_INLINE void tile(const Job<Idx>& j, int64_t r0, int64_t r1, int64_t t0, bool first) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* gr = j.gT + r * j.bp + t0;
    v8 a[NV];
    for (int q = 0; q < NV; ++q) a[q] = loadu(gr + 8 * q);
    for (int64_t k = j.crow[r], e = j.crow[r + 1]; k < e; ++k) {
      const float* xr = j.xT + int64_t(j.col[k]) * j.bp + t0;
      v8 acc = a[0] * loadu(xr);
      for (int q = 1; q < NV; ++q) acc += a[q] * loadu(xr + 8 * q);
      const float s = hsum(acc);
      j.out[k] = first ? s : j.out[k] + s;
    }
  }
}

template <class Idx>
SPMM_INLINE void part(const Job<Idx>& j, int p) {
  const int64_t r0 = j.bounds[p], r1 = j.bounds[p + 1];
  for (int64_t t0 = 0; t0 < j.bp; t0 += kTile) {
    const bool first = t0 == 0;
    switch (std::min<int64_t>(kTile, j.bp - t0) / 8) {
      case 1: tile<1>(j, r0, r1, t0, first); break;
      case 2: tile<2>(j, r0, r1, t0, first); break;
      case 3: tile<3>(j, r0, r1, t0, first); break;
      case 4: tile<4>(j, r0, r1, t0, first); break;
      case 5: tile<5>(j, r0, r1, t0, first); break;
      case 6: tile<6>(j, r0, r1, t0, first); break;
      case 7: tile<7>(j, r0, r1, t0, first); break;
      default: tile<8>(j, r0, r1, t0, first); break;
    }
  }
}

template <class Idx>
SPMM_AVX2 void part_avx2(const Job<Idx>& j, int p) { part(j, p); }
template <class Idx>
void part_generic(const Job<Idx>& j, int p) { part(j, p); }

// a [batch, n] row-major -> aT [n, bp] (zero padded), rows [lo, hi) of aT; 64 of them at a time
// so the block being written stays in L1.
void transpose(const float* a, int64_t batch, int64_t n, int64_t bp, float* aT, int64_t lo, int64_t hi) {
  for (int64_t b = 0; b < bp; ++b) {
    const float* ar = b < batch ? a + b * n : nullptr;
    for (int64_t i = lo; i < hi; ++i) aT[i * bp + b] = ar ? ar[i] : 0.0f;
  }
}

template <class Idx>
void run(const int32_t* crow, const Idx* col, int64_t rows, int64_t cols, const float* g,
         const float* x, int64_t batch, float* out, int threads) {
  const int64_t nnz = crow[rows];
  if (nnz == 0) return;
  if (batch == 0) {
    std::fill(out, out + nnz, 0.0f);
    return;
  }
  const int64_t bp = (batch + 7) / 8 * 8;
  float* ws = static_cast<float*>(workspace(size_t(rows + cols) * bp * sizeof(float)));
  Job<Idx> j{crow, col, rows, cols, batch, bp, ws, ws + rows * bp, out, {}};
  const int64_t work = (nnz + rows) * bp;
  const int n = int(std::max<int64_t>(1, std::min<int64_t>(threads, work / kMinWorkPerThread)));
  const int parts = n == 1 ? 1 : n * kPartsPerThread;
  j.bounds.assign(parts + 1, rows);
  j.bounds[0] = 0;
  for (int t = 1; t < parts; ++t) {  // first r with crow[r] + r >= t/parts of the total
    const int64_t target = (nnz + rows) * t / parts;
    int64_t lo = j.bounds[t - 1], hi = rows;
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (crow[mid] + mid < target) lo = mid + 1; else hi = mid;
    }
    j.bounds[t] = lo;
  }
  void (*fn)(const Job<Idx>&, int) = cpu_has_avx2_fma() ? &part_avx2<Idx> : &part_generic<Idx>;
  const int64_t gtasks = (rows + kTransposeRows - 1) / kTransposeRows;
  const int64_t xtasks = (cols + kTransposeRows - 1) / kTransposeRows;
  float* gT = ws;
  float* xT = ws + rows * bp;
#pragma omp parallel num_threads(n) if (n > 1)
  {
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < gtasks + xtasks; ++i) {
      if (i < gtasks)
        transpose(g, batch, rows, bp, gT, i * kTransposeRows, std::min(rows, (i + 1) * kTransposeRows));
      else {
        const int64_t c = i - gtasks;
        transpose(x, batch, cols, bp, xT, c * kTransposeRows, std::min(cols, (c + 1) * kTransposeRows));
      }
    }  // (the implicit barrier: gT and xT are complete)
#pragma omp for schedule(dynamic, 1)
    for (int p = 0; p < parts; ++p) fn(j, p);
  }
}

}  // namespace

void sddmm_csr(const int32_t* crow, const void* col, int col_bytes, int64_t rows, int64_t cols,
               const float* g, const float* x, int64_t batch, float* out, int threads) {
  if (col_bytes == 2)
    run(crow, static_cast<const int16_t*>(col), rows, cols, g, x, batch, out, threads);
  else if (col_bytes == 4)
    run(crow, static_cast<const int32_t*>(col), rows, cols, g, x, batch, out, threads);
  else
    throw std::invalid_argument("CSR column indices must be int16 or int32");
}

}  // namespace hpo_native
