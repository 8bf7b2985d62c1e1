// spmm.cpp -- y = x @ W.T for a pruned W packed as CSR, BSR or bitmask (float32, OpenMP).
//
// A pruned product is only faster than dense if every nonzero costs about as little as one dense
// multiply-add. Two shapes of work make that true:
//
//   batch 1   a gather dot per row: y[r] = sum_k v_k * x[col_k], eight nonzeros per vector step.
//   batch > 1 x is transposed once into xT [cols, T] (T = batch tile, 8..64, zero padded), so one
//             nonzero feeds T/8 vector FMAs: acc[0:T] += v * xT[col, 0:T], the accumulators stay
//             in registers for the whole row, and each row's results are stored once per tile.
//
// The three formats differ only in how a row yields its (column, value) pairs (the *Rows structs
// below), so the two kernels are written once. Rows are cut into parts of equal nonzero count
// (several per thread) that threads take dynamically: balanced on a quiet machine, and one
// descheduled thread on a busy one does not hold the whole product back.
// The build flags are generic x86-64: where the CPU has AVX2+FMA the per-thread loops run a copy
// compiled for it (GCC vector extensions, so the same source vectorises on both paths).
#include "spmm.h"
#include "simd.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <vector>

namespace hpo_native {
namespace {

// Below this much work (multiply-adds) a second thread costs more than it saves.
constexpr int64_t kMinWorkPerThread = int64_t(1) << 15;
// Row parts per thread, and columns of x per transposition task.
constexpr int kPartsPerThread = 8;
constexpr int64_t kTransposeCols = 256;

// sum_k v[k] * x[c[k]] over k < n: eight independent lanes, then the tail.
template <class Idx>
SPMM_INLINE float gather_dot(const Idx* c, const float* v, int64_t n, const float* x) {
  v8 acc = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    const v8 xv = {x[c[k]],     x[c[k + 1]], x[c[k + 2]], x[c[k + 3]],
                   x[c[k + 4]], x[c[k + 5]], x[c[k + 6]], x[c[k + 7]]};
    acc += loadu(v + k) * xv;
  }
  float s = hsum(acc);
  for (; k < n; ++k) s += v[k] * x[c[k]];
  return s;
}

// ------------------------------------------------------------------ formats as row visitors
// Each yields row r's nonzeros to sink(col, value) (batch kernel), computes row r's dot with a
// dense vector x (batch-1 kernel), and gives cost(r): the work of the rows before r.

template <class Idx>
struct CsrRows {
  const int32_t* crow;
  const Idx* col;
  const float* values;
  int64_t cost(int64_t r) const { return crow[r] + r; }
  template <class Sink>
  SPMM_INLINE void row(int64_t r, Sink& sink) const {
    for (int64_t k = crow[r], e = crow[r + 1]; k < e; ++k) sink(col[k], values[k]);
  }
  SPMM_INLINE float dot(int64_t r, const float* x, int32_t*) const {
    return gather_dot(col + crow[r], values + crow[r], crow[r + 1] - crow[r], x);
  }
};

// CSR whose values are read through a permutation: values[perm[k]] (W.T's product over W's own
// values, in sparse training: csrc/sddmm.h).
template <class Idx>
struct CsrPermRows {
  const int32_t* crow;
  const Idx* col;
  const float* values;
  const int32_t* perm;
  int64_t cost(int64_t r) const { return crow[r] + r; }
  template <class Sink>
  SPMM_INLINE void row(int64_t r, Sink& sink) const {
    for (int64_t k = crow[r], e = crow[r + 1]; k < e; ++k) sink(col[k], values[perm[k]]);
  }
  SPMM_INLINE float dot(int64_t r, const float* x, int32_t*) const {
    float s = 0;
    for (int64_t k = crow[r], e = crow[r + 1]; k < e; ++k) s += values[perm[k]] * x[col[k]];
    return s;
  }
};

struct BitmaskRows {
  const uint8_t* bits;
  const int32_t* crow;
  const float* values;
  int64_t nbytes;  // bytes per row of bits
  int64_t cost(int64_t r) const { return crow[r] + r * (1 + nbytes / 8); }
  template <class Sink>
  SPMM_INLINE void row(int64_t r, Sink& sink) const {
    const uint8_t* b = bits + r * nbytes;
    int64_t k = crow[r];
    for (int64_t w = 0; w < nbytes; w += 8) {
      uint64_t m = 0;
      std::memcpy(&m, b + w, std::min<int64_t>(8, nbytes - w));  // little-endian: bit j = col w*8+j
      while (m) {
        sink(w * 8 + __builtin_ctzll(m), values[k++]);
        m &= m - 1;
      }
    }
  }
  // Decodes the row's columns into cols (>= row nnz entries), then a gather dot.
  SPMM_INLINE float dot(int64_t r, const float* x, int32_t* cols) const {
    struct Collect {
      int32_t* out;
      int64_t n;
      SPMM_INLINE void operator()(int64_t c, float) { out[n++] = int32_t(c); }
    } collect{cols, 0};
    row(r, collect);
    return gather_dot(cols, values + crow[r], crow[r + 1] - crow[r], x);
  }
};

struct BsrRows {
  const int32_t* crow;
  const int32_t* col;
  const float* values;
  int64_t bh, bw;
  int64_t cost(int64_t r) const {  // nonzero-block columns of the rows before r, times bw
    const int64_t R = r / bh, i = r % bh;
    return (crow[R] * bh + (i ? i * (crow[R + 1] - crow[R]) : 0)) * bw + r;
  }
  template <class Sink>
  SPMM_INLINE void row(int64_t r, Sink& sink) const {
    const int64_t R = r / bh, i = r % bh;
    for (int64_t k = crow[R], e = crow[R + 1]; k < e; ++k) {
      const float* v = values + (k * bh + i) * bw;
      const int64_t c0 = int64_t(col[k]) * bw;
      for (int64_t j = 0; j < bw; ++j) sink(c0 + j, v[j]);
    }
  }
  SPMM_INLINE float dot(int64_t r, const float* x, int32_t*) const {  // x padded to whole blocks
    const int64_t R = r / bh, i = r % bh;
    v8 acc = {0, 0, 0, 0, 0, 0, 0, 0};
    float s = 0;
    for (int64_t k = crow[R], e = crow[R + 1]; k < e; ++k) {
      const float* v = values + (k * bh + i) * bw;
      const float* xr = x + int64_t(col[k]) * bw;
      int64_t j = 0;
      for (; j + 8 <= bw; j += 8) acc += loadu(v + j) * loadu(xr + j);
      for (; j < bw; ++j) s += v[j] * xr[j];
    }
    return s + hsum(acc);
  }
};

// ------------------------------------------------------------------ kernels
template <int T>
struct TileSink {  // acc[0:T] += v * xT[col, 0:T]
  const float* xT;
  v8 acc[T / 8];
  SPMM_INLINE void operator()(int64_t c, float v) {
    const float* xr = xT + c * T;
    for (int q = 0; q < T / 8; ++q) acc[q] += v * *reinterpret_cast<const v8*>(xr + 8 * q);
  }
};

template <class Fmt>
struct Job {
  Fmt fmt;
  int64_t rows, cols;  // logical weight shape
  int64_t cols_p;      // columns of x as the kernel reads it (BSR: whole blocks)
  DenseOperands d;
  int tile;            // T; 0 for batch 1
  int64_t nchunks;     // batch tiles
  float* xT;           // [nchunks, cols_p, T], or x padded to cols_p (batch 1, BSR)
  int32_t* scratch;    // per thread: cols int32 (bitmask batch 1)
  std::vector<int64_t> bounds;  // rows of part p: [bounds[p], bounds[p+1])
};

template <int T, class Fmt>
SPMM_INLINE void tile_rows(const Job<Fmt>& j, int p) {
  const DenseOperands& d = j.d;
  for (int64_t c = 0; c < j.nchunks; ++c) {
    const int64_t b0 = c * T, bn = std::min<int64_t>(T, d.batch - b0);
    const float* xT = j.xT + c * j.cols_p * T;
    for (int64_t r = j.bounds[p]; r < j.bounds[p + 1]; ++r) {
      TileSink<T> sink{xT, {}};
      for (int q = 0; q < T / 8; ++q) sink.acc[q] = v8{0, 0, 0, 0, 0, 0, 0, 0};
      j.fmt.row(r, sink);
      float out[T];
      std::memcpy(out, sink.acc, sizeof out);
      const float bias = d.bias ? d.bias[r] : 0.0f;
      for (int64_t b = 0; b < bn; ++b) d.y[(b0 + b) * j.rows + r] = out[b] + bias;
    }
  }
}

template <class Fmt>
SPMM_INLINE void dot_rows(const Job<Fmt>& j, int p, int32_t* scratch) {
  const float* x = j.xT ? j.xT : j.d.x;
  for (int64_t r = j.bounds[p]; r < j.bounds[p + 1]; ++r)
    j.d.y[r] = j.fmt.dot(r, x, scratch) + (j.d.bias ? j.d.bias[r] : 0.0f);
}

// Row part p; scratch: this thread's cols int32 (bitmask, batch 1).
template <int T, class Fmt>
SPMM_AVX2 void work_avx2(const Job<Fmt>& j, int p, int32_t* scratch) {
  if constexpr (T == 0) dot_rows(j, p, scratch); else tile_rows<T>(j, p);
}
template <int T, class Fmt>
void work_generic(const Job<Fmt>& j, int p, int32_t* scratch) {
  if constexpr (T == 0) dot_rows(j, p, scratch); else tile_rows<T>(j, p);
}

template <class Fmt>
using WorkFn = void (*)(const Job<Fmt>&, int, int32_t*);

template <int T, class Fmt>
WorkFn<Fmt> pick() {
  return cpu_has_avx2_fma() ? &work_avx2<T, Fmt> : &work_generic<T, Fmt>;
}

// Task i of x [batch, cols] -> xT chunks [cols_p, T] (zero padded): one chunk, kTransposeCols
// columns, filled 64 columns at a time (a 64 x T block of xT stays in L1 while it is written).
template <class Fmt>
void transpose_task(const Job<Fmt>& j, int64_t i, int64_t tasks_per_chunk) {
  const int64_t T = j.tile, c = i / tasks_per_chunk;
  const int64_t lo = (i % tasks_per_chunk) * kTransposeCols;
  const int64_t hi = std::min(j.cols_p, lo + kTransposeCols);
  float* xT = j.xT + c * j.cols_p * T;
  for (int64_t k0 = lo; k0 < hi; k0 += 64) {
    const int64_t k1 = std::min(hi, k0 + 64);
    for (int64_t b = 0; b < T; ++b) {
      const int64_t bb = c * T + b;
      const float* xr = bb < j.d.batch ? j.d.x + bb * j.cols : nullptr;
      for (int64_t k = k0; k < k1; ++k) xT[k * T + b] = (xr && k < j.cols) ? xr[k] : 0.0f;
    }
  }
}

// Rows cut into n parts of about the same cost (Fmt::cost is nondecreasing in r).
template <class Fmt>
std::vector<int64_t> split_rows(const Fmt& f, int64_t rows, int n) {
  std::vector<int64_t> bounds(n + 1, rows);
  bounds[0] = 0;
  const int64_t total = f.cost(rows);
  for (int t = 1; t < n; ++t) {
    const int64_t target = total * t / n;
    int64_t lo = bounds[t - 1], hi = rows;  // first r with cost(r) >= target
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (f.cost(mid) < target) lo = mid + 1; else hi = mid;
    }
    bounds[t] = lo;
  }
  return bounds;
}

template <class Fmt>
void run(const Fmt& fmt, int64_t rows, int64_t cols, int64_t cols_p, const DenseOperands& d,
         int threads, bool needs_scratch) {
  if (rows == 0 || d.batch == 0) return;
  Job<Fmt> j{fmt, rows, cols, cols_p, d, 0, 0, nullptr, nullptr, {}};
  j.tile = d.batch == 1 ? 0 : d.batch <= 8 ? 8 : d.batch <= 16 ? 16 : d.batch <= 32 ? 32 : 64;
  const int64_t work = fmt.cost(rows) * std::max(1, j.tile);
  const int n = int(std::max<int64_t>(1, std::min<int64_t>(threads, work / kMinWorkPerThread)));
  const int parts = n == 1 ? 1 : n * kPartsPerThread;
  j.bounds = split_rows(fmt, rows, parts);

  WorkFn<Fmt> work_fn;
  size_t floats = 0;
  if (j.tile == 0) {
    if (cols_p != cols) floats = cols_p;
    work_fn = pick<0, Fmt>();
  } else {
    j.nchunks = (d.batch + j.tile - 1) / j.tile;
    floats = j.nchunks * cols_p * j.tile;
    work_fn = j.tile == 8 ? pick<8, Fmt>() : j.tile == 16 ? pick<16, Fmt>()
              : j.tile == 32 ? pick<32, Fmt>() : pick<64, Fmt>();
  }
  const size_t scratch_ints = needs_scratch && j.tile == 0 ? size_t(n) * cols : 0;
  if (floats + scratch_ints) {
    char* ws = static_cast<char*>(workspace((floats + scratch_ints) * 4));
    if (floats) j.xT = reinterpret_cast<float*>(ws);
    if (scratch_ints) j.scratch = reinterpret_cast<int32_t*>(ws + floats * 4);
  }
  if (j.tile == 0 && j.xT) {  // batch 1, BSR with a partial last block column: pad x
    std::memcpy(j.xT, d.x, cols * sizeof(float));
    std::fill(j.xT + cols, j.xT + cols_p, 0.0f);
  }
  const int64_t tasks_per_chunk = (cols_p + kTransposeCols - 1) / kTransposeCols;
#pragma omp parallel num_threads(n) if (n > 1)
  {
    if (j.tile) {
#pragma omp for schedule(dynamic, 1)
      for (int64_t i = 0; i < j.nchunks * tasks_per_chunk; ++i) transpose_task(j, i, tasks_per_chunk);
    }  // (the implicit barrier: xT is complete)
    int32_t* scratch = j.scratch ? j.scratch + omp_get_thread_num() * cols : nullptr;
#pragma omp for schedule(dynamic, 1)
    for (int p = 0; p < parts; ++p) work_fn(j, p, scratch);
  }
}

}  // namespace

void spmm_csr(const int32_t* crow, const void* col, int col_bytes, const float* values, int64_t rows,
              int64_t cols, const DenseOperands& d, int threads, const int32_t* perm) {
  if (perm != nullptr) {
    if (col_bytes == 2)
      run(CsrPermRows<int16_t>{crow, static_cast<const int16_t*>(col), values, perm}, rows, cols, cols, d,
          threads, false);
    else if (col_bytes == 4)
      run(CsrPermRows<int32_t>{crow, static_cast<const int32_t*>(col), values, perm}, rows, cols, cols, d,
          threads, false);
    else
      throw std::invalid_argument("CSR column indices must be int16 or int32");
    return;
  }
  if (col_bytes == 2)
    run(CsrRows<int16_t>{crow, static_cast<const int16_t*>(col), values}, rows, cols, cols, d,
        threads, false);
  else if (col_bytes == 4)
    run(CsrRows<int32_t>{crow, static_cast<const int32_t*>(col), values}, rows, cols, cols, d,
        threads, false);
  else
    throw std::invalid_argument("CSR column indices must be int16 or int32");
}

void spmm_bsr(const int32_t* crow, const int32_t* col, const float* values, int bh, int bw,
              int64_t rows, int64_t cols, const DenseOperands& d, int threads) {
  if (bh < 1 || bw < 1) throw std::invalid_argument("BSR block sizes must be >= 1");
  const int64_t cols_p = (cols + bw - 1) / bw * bw;
  run(BsrRows{crow, col, values, bh, bw}, rows, cols, cols_p, d, threads, false);
}

void spmm_bitmask(const uint8_t* bits, const int32_t* crow, const float* values, int64_t rows,
                  int64_t cols, const DenseOperands& d, int threads) {
  run(BitmaskRows{bits, crow, values, (cols + 7) / 8}, rows, cols, cols, d, threads, true);
}

}  // namespace hpo_native
