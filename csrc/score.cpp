// score.cpp -- score-based pruning (score.h): global and per-tensor groups by the radix select of
// magnitude.cpp (select_mask), row groups by a per-row selection, parallel over rows.
//
// Row selection, never a sort. A row (4096-14336 scores in LLM layers) is read from memory once;
// everything after that runs on the row in L1/L2 or on a shrinking buffer of candidates:
//   1. bracket  32 scores sampled at a stride give two keys lo <= hi around the expected k-th key
//               (the sample's order statistics a few ranks either side of k's quantile);
//   2. pass     one vector pass over the row validates every score (NaN, negative), counts the keys
//               < lo and <= hi, and compacts the keys in [lo, hi] into a buffer (~30% of the row);
//               if the k-th key is outside the bracket (a few % of rows), a second pass compacts
//               the side that holds it. This pass also prefetches the next row into L2;
//   3. narrow   the same on the candidates (32-key samples, csrc/narrow.h) until at most 64 remain, each step
//               strictly smaller; a bracket that keeps every candidate falls back to a one-key split;
//   4. pick     the r-th smallest of <= 64 candidates by counting, per candidate, the keys below it;
//   5. apply    one vector pass writes the row's mask (streaming stores): keys < t pruned, and of the
//               keys == t the first `k - #(keys < t)` in column order (the tie rule of every op).
// Rows are handed to threads dynamically, in runs of ~64K scores. The weights are zeroed in a
// second, separate pass (zero_pruned, also dynamic), after every row's scores have been validated,
// so a NaN or negative score leaves every weight unchanged; it costs a re-read of the 1-byte masks,
// less than any other way to keep that promise. Passes 2-5 have an AVX-512 version (compress, masked
// compares) and a portable one; the AVX-512 one runs where the CPU has it. Per row, the work is a
// few passes over data in cache: ~1.3 us for 4096 fp32 scores on a Zen 4 core, so a 4096 x 4096
// layer is bound by memory (scores read once, masks written once and read once, weights read and
// written once).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "keys.h"
#include "layout.h"
#include "narrow.h"
#include "score.h"

namespace hpo_native {
namespace {

// ------------------------------------------------------------------ score readers
// A raw storage word is a valid score unless it is a NaN or negative (other than -0.0); its key is
// the word with the sign cleared, in the dtype's own width (16-bit keys fit a uint32 as well).
struct F32Score {
  using Raw = uint32_t;
  static constexpr uint32_t kInf = 0x7f800000u, kNeg0 = 0x80000000u, kAbs = 0x7fffffffu;
  static float value(uint32_t key) { return bits_to_float(key); }
};
struct BF16Score {
  using Raw = uint16_t;
  static constexpr uint32_t kInf = kInfKeyBF16, kNeg0 = 0x8000u, kAbs = 0x7fffu;
  static float value(uint32_t key) { return bits_to_float(key << 16); }
};
struct F16Score {
  using Raw = uint16_t;
  static constexpr uint32_t kInf = kInfKeyF16, kNeg0 = 0x8000u, kAbs = 0x7fffu;
  static float value(uint32_t key) { return bits_to_float(f16_key_to_f32_bits(uint16_t(key))); }
};

template <class F>
void with_score(int dtype, F&& f) {
  if (dtype == kF32) f(F32Score{});
  else if (dtype == kF16) f(F16Score{});
  else if (dtype == kBF16) f(BF16Score{});
  else throw std::invalid_argument("unknown dtype code " + std::to_string(dtype));
}

// Error path only: names the first tensor holding a NaN or a negative score.
[[noreturn]] void throw_bad(const std::vector<const void*>& data, const std::vector<int64_t>& n,
                            const std::vector<int>& dtypes) {
  for (size_t s = 0; s < data.size(); ++s) {
    bool nan = false, neg = false;
    with_score(dtypes[s], [&](auto sc) {
      using S = decltype(sc);
      const auto* p = static_cast<const typename S::Raw*>(data[s]);
      for (int64_t i = 0; i < n[s]; ++i) {
        const uint32_t r = p[i];
        nan |= (r & S::kAbs) > S::kInf;
        neg |= r > S::kNeg0 && (r & S::kAbs) <= S::kInf;
      }
    });
    if (nan) throw std::domain_error("scores of tensor " + std::to_string(s) + " contain NaN");
    if (neg)
      throw std::domain_error("scores of tensor " + std::to_string(s) +
                              " contain a negative value (scores must be >= 0)");
  }
  throw std::domain_error("scores contain NaN or a negative value");
}

[[noreturn]] void throw_bad(const std::vector<ScoredTensor>& ts) {
  std::vector<const void*> data;
  std::vector<int64_t> n;
  std::vector<int> dtypes;
  for (const ScoredTensor& t : ts) {
    data.push_back(t.score);
    n.push_back(t.n);
    dtypes.push_back(t.score_dtype);
  }
  throw_bad(data, n, dtypes);
}

// ------------------------------------------------------------------ row kernels

// The portable kernels: scalar, branch-free where it matters.
struct Portable : CandPortable {
  // Validates p[0, n) (bad |= 1 on a NaN or negative score), counts keys < lo and <= hi, compacts
  // the keys in [lo, hi] to out (n slots; lo > hi makes it a pure validation pass).
  // Counting and validation in one loop the compiler vectorizes, compaction in a second, scalar
  // one over the same (now cached) data: together cheaper than one loop doing both.
  template <class S>
  static Counts row_pass(const typename S::Raw* p, int64_t n, uint32_t lo, uint32_t hi,
                         uint32_t* out, uint32_t& bad, const char* pf = nullptr) {
    (void)pf;
    int64_t lt = 0, le = 0;
    uint32_t max_key = 0, max_raw = 0;
    for (int64_t from = 0; from < n; from += kCountChunk) {  // 32-bit counters vectorize
      const int64_t to = std::min(n, from + kCountChunk);
      uint32_t clt = 0, cle = 0;
      for (int64_t i = from; i < to; ++i) {
        const uint32_t r = p[i], k = r & S::kAbs;
        max_raw = std::max(max_raw, r);
        max_key = std::max(max_key, k);
        clt += k < lo;
        cle += k <= hi;
      }
      lt += clt;
      le += cle;
    }
    bad |= uint32_t(max_key > S::kInf) | uint32_t(max_raw > S::kNeg0);
    if (lo > hi) return {lt, le, 0};  // a validation pass
    int64_t m = 0;
    const uint32_t width = hi - lo;  // k in [lo, hi]  <=>  k - lo <= hi - lo (unsigned)
    for (int64_t i = 0; i < n; ++i) {
      const uint32_t k = p[i] & S::kAbs;
      out[m] = k;
      m += (k - lo) <= width;
    }
    return {lt, le, m};
  }

  // mask[i] = 0 for keys < t and for the first `need` keys == t, else 1.
  template <class S>
  static void apply(const typename S::Raw* p, int64_t n, uint32_t t, int64_t need, uint8_t* mask) {
    int64_t i = 0;
    for (; i < n && need > 0; ++i) {
      const uint32_t k = p[i] & S::kAbs;
      bool keep = k > t;
      if (k == t) --need;
      mask[i] = keep;
    }
    for (; i < n; ++i) mask[i] = (p[i] & S::kAbs) >= t;
  }
};

#if HPO_HAVE_AVX512_PATH
// The AVX-512 kernels (16 keys a step; 16-bit scores are widened to 32-bit lanes). The compacted
// output takes full 16-lane stores: out needs 16 slots of slack. Only intrinsics and plain
// arithmetic in here: no library template is instantiated for this target.
struct Avx512 : CandAvx512 {
  template <class S>
  HPO_AVX512 HPO_INLINE static __m512i load(const typename S::Raw* p) {
    if constexpr (sizeof(typename S::Raw) == 4)
      return _mm512_loadu_si512(static_cast<const void*>(p));
    else
      return _mm512_maskz_cvtepu16_epi32(__mmask16(0xffff),
                                         _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  template <class S>
  HPO_AVX512 HPO_INLINE static __m512i load_tail(const typename S::Raw* p, __mmask16 m) {
    if constexpr (sizeof(typename S::Raw) == 4)
      return _mm512_maskz_loadu_epi32(m, p);
    else
      return _mm512_maskz_cvtepu16_epi32(m, _mm256_maskz_loadu_epi16(m, p));
  }

  template <class S>
  HPO_AVX512 static Counts row_pass(const typename S::Raw* p, int64_t n, uint32_t lo, uint32_t hi,
                                    uint32_t* out, uint32_t& bad, const char* pf = nullptr) {
    // Validation by two running maxima: a NaN has a key above the inf key; a negative score other
    // than -0.0 has a raw word above the -0.0 word. (A masked-off lane loads as +0.0.)
    const __m512i vabs = _mm512_set1_epi32(int(S::kAbs));
    const __m512i vlo = _mm512_set1_epi32(int(lo)), vhi = _mm512_set1_epi32(int(hi));
    Acc a{_mm512_setzero_si512(), _mm512_setzero_si512(), 0};
    __m512i max_key = _mm512_setzero_si512(), max_raw = _mm512_setzero_si512();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
      if (pf) _mm_prefetch(pf + i * int64_t(sizeof(typename S::Raw)), _MM_HINT_T1);
      const __m512i raw = load<S>(p + i), key = _mm512_and_si512(raw, vabs);
      max_raw = _mm512_maskz_max_epu32(__mmask16(0xffff), max_raw, raw);
      max_key = _mm512_maskz_max_epu32(__mmask16(0xffff), max_key, key);
      count_step(key, 0xffff, vlo, vhi, out, a);
    }
    if (i < n) {
      const __mmask16 tm = __mmask16((1u << (n - i)) - 1);
      const __m512i raw = load_tail<S>(p + i, tm), key = _mm512_and_si512(raw, vabs);
      max_raw = _mm512_maskz_max_epu32(__mmask16(0xffff), max_raw, raw);
      max_key = _mm512_maskz_max_epu32(__mmask16(0xffff), max_key, key);
      count_step(key, tm, vlo, vhi, out, a);
    }
    bad |= uint32_t(max_lane(max_key) > S::kInf) | uint32_t(max_lane(max_raw) > S::kNeg0);
    return counts(a);
  }

  // Mask bytes of 16 keys: pruned are keys < t and, while `need` > 0, keys == t (lowest first).
  HPO_AVX512 HPO_INLINE static __m128i apply_step(__m512i key, __mmask16 tm, __m512i vt,
                                                  int64_t& need) {
    unsigned prune = _mm512_mask_cmplt_epu32_mask(tm, key, vt);
    if (need > 0) {
      unsigned eq = _mm512_mask_cmpeq_epu32_mask(tm, key, vt);
      const int c = __builtin_popcount(eq);
      if (c <= need) {
        prune |= eq;
        need -= c;
      } else {  // the quota runs out here: the lowest `need` ties of the 16
        for (int64_t j = 0; j < need; ++j) {
          const unsigned low = eq & (0u - eq);
          prune |= low;
          eq ^= low;
        }
        need = 0;
      }
    }
    return _mm_maskz_mov_epi8(__mmask16(~prune & tm), _mm_set1_epi8(1));
  }

  template <class S>
  HPO_AVX512 static void apply(const typename S::Raw* p, int64_t n, uint32_t t, int64_t need,
                               uint8_t* mask) {
    const __m512i vabs = _mm512_set1_epi32(int(S::kAbs)), vt = _mm512_set1_epi32(int(t));
    int64_t i = 0;
    if ((reinterpret_cast<uintptr_t>(mask) & 15) == 0) {
      // Streaming stores: the mask is not read here, so its lines need not be fetched first.
      for (; i + 16 <= n; i += 16) {
        const __m512i key = _mm512_and_si512(load<S>(p + i), vabs);
        _mm_stream_si128(reinterpret_cast<__m128i*>(mask + i), apply_step(key, 0xffff, vt, need));
      }
    }
    for (; i + 16 <= n; i += 16) {
      const __m512i key = _mm512_and_si512(load<S>(p + i), vabs);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(mask + i), apply_step(key, 0xffff, vt, need));
    }
    if (i < n) {
      const __mmask16 tm = __mmask16((1u << (n - i)) - 1);
      const __m512i key = _mm512_and_si512(load_tail<S>(p + i, tm), vabs);
      _mm_mask_storeu_epi8(mask + i, tm, apply_step(key, tm, vt, need));
    }
  }
};
#endif

// ------------------------------------------------------------------ row selection driver
constexpr int64_t kSampleRow = 32;  // keys sampled from a row for the first bracket
constexpr int64_t kSpreadRow = 4;   // sample ranks either side of the target (about 1.5 sigma)

struct Scratch {
  explicit Scratch(int64_t cols) : a(size_t(cols) + 32), b(size_t(cols) + 32) {}
  std::vector<uint32_t> a, b;
  uint32_t sample[kSmall];
};

// The k-th smallest key t of the row p[0, n) (1 <= k <= n) and the number of keys < t. False if the
// row holds a NaN or negative score.
template <class Ops, class S>
bool select_row(const typename S::Raw* p, int64_t n, int64_t k, Scratch& sc, Pick& out,
                const char* pf) {
  constexpr uint32_t kMax = std::numeric_limits<uint32_t>::max();
  uint32_t* A = sc.a.data();
  uint32_t* B = sc.b.data();
  uint32_t bad = 0, ignored = 0;
  int64_t r = k, base = 0, M = 0;
  if (n <= kSmall) {
    M = Ops::template row_pass<S>(p, n, 0, kMax, A, bad).m;
    if (bad) return false;
  } else {
    for (int64_t j = 0; j < kSampleRow; ++j)
      sc.sample[j] = uint32_t(p[(2 * j + 1) * n / (2 * kSampleRow)]) & S::kAbs;
    uint32_t lo, hi;
    bracket<Ops>(sc.sample, kSampleRow, r, n, kSpreadRow, lo, hi);
    const Counts c = Ops::template row_pass<S>(p, n, lo, hi, A, bad, pf);
    if (bad) return false;
    if (r <= c.lt) {  // below the bracket (then lo > 0)
      M = Ops::template row_pass<S>(p, n, 0, lo - 1, A, ignored).m;
    } else if (r > c.le) {  // above it (then hi < kMax)
      M = Ops::template row_pass<S>(p, n, hi + 1, kMax, A, ignored).m;
      base = c.le;
      r -= c.le;
    } else {
      M = c.m;
      base = c.lt;
      r -= c.lt;
    }
  }
  // The answer is the r-th smallest of A[0, M), and `base` keys of the row lie below all of A.
  const Pick pk = narrow<Ops>(A, M, r, B, A);
  out = {pk.t, base + pk.lt};
  return true;
}

struct RowJob {
  const void* score;
  int dtype;
  int64_t rows, cols, k;
  uint8_t* mask;  // or nullptr
  float* kth;     // or nullptr
};

template <class Ops, class S>
bool run_row(const RowJob& job, int64_t row, Scratch& sc) {
  using Raw = typename S::Raw;
  const Raw* p = static_cast<const Raw*>(job.score) + row * job.cols;
  const int64_t n = job.cols;
  uint8_t* mask = job.mask ? job.mask + row * n : nullptr;
  if (job.k == 0) {
    uint32_t bad = 0;
    Ops::template row_pass<S>(p, n, 1, 0, sc.a.data(), bad);  // lo > hi: validation only
    if (bad) return false;
    if (mask) std::memset(mask, 1, size_t(n));
    if (job.kth) job.kth[row] = -std::numeric_limits<float>::infinity();
    return true;
  }
  // The first pass over this row also prefetches the next one into L2 (most often this thread's
  // next row): the rest of the selection runs on cached data and would leave memory idle.
  const char* pf = row + 1 < job.rows ? reinterpret_cast<const char*>(p + n) : nullptr;
  Pick pk;
  if (!select_row<Ops, S>(p, n, job.k, sc, pk, pf)) return false;
  if (mask) Ops::template apply<S>(p, n, pk.t, job.k - pk.lt, mask);
  if (job.kth) job.kth[row] = S::value(pk.t);
  return true;
}

template <class Ops>
bool rows_impl(const std::vector<RowJob>& jobs, int threads) {
  std::vector<int64_t> start(jobs.size() + 1, 0);
  int64_t max_cols = 0, total = 0;
  for (size_t i = 0; i < jobs.size(); ++i) {
    start[i + 1] = start[i] + jobs[i].rows;
    max_cols = std::max(max_cols, jobs[i].rows ? jobs[i].cols : int64_t(0));
    total += jobs[i].rows * jobs[i].cols;
  }
  const int64_t total_rows = start.back();
  const int64_t useful = std::max<int64_t>(1, total / Layout::kMinPerThread);
  threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, useful)));
  // Rows are handed out in runs of about 64K scores: each thread streams through memory in order.
  const int64_t run = std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, max_cols));
  std::atomic<bool> bad{false};
  std::exception_ptr error;  // an exception must not leave an OpenMP region (std::terminate)
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    Scratch sc(max_cols);
#pragma omp for schedule(dynamic, run)
    for (int64_t g = 0; g < total_rows; ++g) {
      const size_t j = size_t(std::upper_bound(start.begin(), start.end(), g) - start.begin()) - 1;
      const RowJob& job = jobs[j];
      bool ok = true;
      try {
        with_score(job.dtype, [&](auto s) { ok = run_row<Ops, decltype(s)>(job, g - start[j], sc); });
      } catch (...) {
#pragma omp critical(hpo_score_error)
        if (!error) error = std::current_exception();
      }
      if (!ok) bad.store(true, std::memory_order_relaxed);
    }
#if HPO_HAVE_AVX512_PATH
    _mm_sfence();  // the streaming mask stores are visible before anyone reads the masks
#endif
  }
  if (error) std::rethrow_exception(error);
  return !bad.load();
}

bool use_avx512(bool simd) { return simd && cpu_has_avx512(); }

bool score_rows(const std::vector<RowJob>& jobs, int threads, bool simd) {
#if HPO_HAVE_AVX512_PATH
  if (use_avx512(simd)) return rows_impl<Avx512>(jobs, threads);
#endif
  (void)simd;
  return rows_impl<Portable>(jobs, threads);
}

// ------------------------------------------------------------------ whole tensors
std::vector<Segment> score_segments(const std::vector<ScoredTensor>& ts, bool with_masks) {
  std::vector<Segment> segs;
  for (const ScoredTensor& t : ts)
    segs.push_back(Segment{const_cast<void*>(t.score), t.n, t.score_dtype,
                           with_masks ? t.mask : nullptr});
  return segs;
}

// Throws unless every score is a non-negative number (one parallel read).
void check_scores(const std::vector<ScoredTensor>& ts, int threads) {
  const std::vector<Segment> segs = score_segments(ts, false);
  const Layout L(segs, threads);
  std::vector<uint32_t> bad(L.nchunks(), 0);
  L.parallel_chunks([&](int c) {
    uint32_t b = 0;
    L.for_spans(c, [&](size_t s, int64_t off, int64_t cnt) {
      with_score(segs[s].dtype, [&](auto sc) {
        using S = decltype(sc);
        const auto* p = static_cast<const typename S::Raw*>(segs[s].data) + off;
        for (int64_t i = 0; i < cnt; ++i) {
          const uint32_t r = p[i];
          b |= uint32_t(r > S::kInf) & uint32_t(r != S::kNeg0);
        }
      });
    });
    bad[c] = b;
  });
  for (uint32_t b : bad)
    if (b) throw_bad(ts);
}

template <class Raw>
void zero_span(Raw* p, const uint8_t* mask, int64_t n) {
  for (int64_t i = 0; i < n; ++i) p[i] &= static_cast<Raw>(Raw(0) - Raw(mask[i]));  // +0.0 if pruned
}

// Zeroes every weight whose mask byte is 0 (the masks are read only). Blocks of 64K weights are
// handed out dynamically, like the rows: a thread that shares its core with another process then
// does less of the work instead of holding up the end (a static split waits for the slowest half).
void zero_pruned(const std::vector<ScoredTensor>& ts, int threads) {
  constexpr int64_t kBlock = int64_t(1) << 16;
  std::vector<std::pair<size_t, int64_t>> blocks;  // (tensor, first element)
  int64_t total = 0;
  for (size_t i = 0; i < ts.size(); ++i) {
    for (int64_t off = 0; off < ts[i].n; off += kBlock) blocks.emplace_back(i, off);
    total += ts[i].n;
  }
  const int64_t useful = std::max<int64_t>(1, total / Layout::kMinPerThread);
  threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, useful)));
  const int64_t nblocks = static_cast<int64_t>(blocks.size());
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
  for (int64_t b = 0; b < nblocks; ++b) {
    const ScoredTensor& t = ts[blocks[b].first];
    const int64_t off = blocks[b].second, cnt = std::min(kBlock, t.n - off);
    if (t.weight_dtype == kF32) zero_span(static_cast<uint32_t*>(t.weight) + off, t.mask + off, cnt);
    else zero_span(static_cast<uint16_t*>(t.weight) + off, t.mask + off, cnt);
  }
}

std::vector<RowJob> row_jobs(const std::vector<ScoredTensor>& ts, const std::vector<int64_t>& ks,
                             bool masks, bool kth) {
  std::vector<RowJob> jobs;
  for (size_t i = 0; i < ts.size(); ++i) {
    const ScoredTensor& t = ts[i];
    if (t.rows < 0 || (t.rows == 0 && t.n != 0) || (t.rows > 0 && t.n % t.rows))
      throw std::invalid_argument("tensor " + std::to_string(i) + ": " + std::to_string(t.n) +
                                  " elements do not make " + std::to_string(t.rows) + " rows");
    const int64_t cols = t.rows ? t.n / t.rows : 0;
    if (ks[i] < 0 || (t.rows > 0 && ks[i] > cols))  // no rows: nothing to select
      throw std::invalid_argument("k=" + std::to_string(ks[i]) + " out of range for rows of " +
                                  std::to_string(cols));
    jobs.push_back(RowJob{t.score, t.score_dtype, t.rows, cols, ks[i], masks ? t.mask : nullptr,
                          kth ? t.kth : nullptr});
  }
  return jobs;
}

void check_call(const std::vector<ScoredTensor>& ts, int group, const std::vector<int64_t>& ks) {
  if (ts.empty()) throw std::invalid_argument("expected at least one tensor");
  if (group != kGroupGlobal && group != kGroupTensor && group != kGroupRow)
    throw std::invalid_argument("unknown group code " + std::to_string(group));
  if (ks.size() != (group == kGroupGlobal ? size_t(1) : ts.size()))
    throw std::invalid_argument("one k for the global group, else one per tensor");
  for (const ScoredTensor& t : ts) {
    if (t.n < 0) throw std::invalid_argument("negative buffer size");
    with_score(t.score_dtype, [](auto) {});   // throws on an unknown code
    with_score(t.weight_dtype, [](auto) {});
  }
}

}  // namespace

void score_prune(const std::vector<ScoredTensor>& ts, int group, const std::vector<int64_t>& ks,
                 int threads, bool simd) {
  check_call(ts, group, ks);
  if (group == kGroupRow) {
    if (!score_rows(row_jobs(ts, ks, true, false), threads, simd)) throw_bad(ts);
  } else {
    check_scores(ts, threads);  // NaN and negative scores, before anything is selected
    if (group == kGroupGlobal) {
      select_mask(score_segments(ts, true), ks[0], threads);
    } else {
      const std::vector<Segment> segs = score_segments(ts, true);
      for (size_t i = 0; i < segs.size(); ++i) select_mask({segs[i]}, ks[i], threads);
    }
  }
  zero_pruned(ts, threads);  // every score was valid: only now are the weights written
}

void score_kth(const std::vector<ScoredTensor>& ts, int group, const std::vector<int64_t>& ks,
               int threads, bool simd) {
  check_call(ts, group, ks);
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  if (group == kGroupRow) {
    if (!score_rows(row_jobs(ts, ks, false, true), threads, simd)) throw_bad(ts);
    return;
  }
  check_scores(ts, threads);
  const std::vector<Segment> segs = score_segments(ts, false);
  if (group == kGroupGlobal) {
    const float v = ks[0] == 0 ? kNegInf : float(kth_magnitude(segs, ks[0], threads));
    for (const ScoredTensor& t : ts) *t.kth = v;
  } else {
    for (size_t i = 0; i < ts.size(); ++i)
      *ts[i].kth = ks[i] == 0 ? kNegInf : float(kth_magnitude({segs[i]}, ks[i], threads));
  }
}

}  // namespace hpo_native
