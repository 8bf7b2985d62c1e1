// magnitude.cpp -- global magnitude selection and pruning on |w| keys (keys.h), never a sort.
//
// float32 buffers: one bracketed pass (select_bracketed), about the cost of one read of memory.
//   sample   8 consecutive keys at each of 4096 evenly spaced places (one cache line each: the
//            sample costs 4096 memory accesses, not 32768), deterministic, gathered in parallel;
//   bracket  the sample's order statistics kSigmas standard deviations either side of rank k's
//            place give lo <= hi (narrow() of csrc/narrow.h on the sample); expected to hold the
//            k-th key except with probability ~1e-5 on random data (inputs below 2^15 keys skip
//            the sample: every key is a candidate);
//   pass     one parallel vector pass per chunk (AVX-512 where the CPU has it, else portable) counts
//            the keys <= L (L = lo - 1, or 0 when lo == 0: zeros, e.g. weights pruned before, are
//            counted rather than kept), tracks the largest key (NaN check: a NaN has a key above
//            the inf key) and compacts the keys in (L, hi] into the chunk's own candidate buffer
//            (~2-4% of the keys at sparsity 0.5, fewer at 0.99);
//   select   the candidate buffers, made contiguous in chunk order, are narrowed to the exact
//            r-th key (csrc/narrow.h: sampled brackets on data in cache, then counting).
// The k-th key falls outside (L, hi], or a chunk's buffer (twice the expected total) overflows, only
// when the sample misleads (all-equal or few-valued data, a period that matches the stride): then
// the selection falls back to the radix select below (counted: magnitude_fallbacks()).
//
// Radix select (float16/bfloat16 lists, mixed dtypes, and the fallback):
//   pass 1  histogram of the top digit of every key (16 bits of a 31-bit key, or all 15 bits of a
//           16-bit key) over all buffers, one histogram per chunk, merged; the bin holding rank k
//           fixes the top digit. NaNs show up as bins above the inf bin, at no extra cost.
//   pass 2  (31-bit keys only) histogram of the low 15 bits of the keys whose top digit matches:
//           fixes the key. The filter rarely matches (unless the data is full of ties), so this
//           pass runs at the speed of a plain read of memory.
//
// Ties: of the keys equal to the threshold t, the lowest global positions are pruned first. Each
// chunk's count of ties lets the fused prune pass (read key, write mask, zero weight; AVX-512 with
// streaming mask stores for float32) prune ties in position order in parallel. The bracketed pass
// gets the counts for free: every key == t is a candidate, in its chunk's run of the candidate
// buffer (or, for t == 0, the counted zeros); the radix select from its last histogram. So for
// float32: threshold = one read pass (+ the sample and in-cache work); prune = one read pass + one
// read-write pass. A NaN anywhere throws (naming the first tensor with one) before anything is
// written.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "keys.h"
#include "layout.h"
#include "magnitude.h"
#include "narrow.h"

namespace hpo_native {
namespace {

template <class Key>
struct Digits {  // how a key is split: top digit (pass 1) then low digit (pass 2, may be empty)
  static constexpr int kBits = sizeof(Key) == 4 ? 31 : 15;
  static constexpr int kTop = sizeof(Key) == 4 ? 16 : 15;
  static constexpr int kLow = kBits - kTop;
};

// The build flags are generic x86-64 (SSE2), but the passes are limited by instructions per
// element more than by memory on this class of machine: where the CPU has AVX2 they run a copy
// compiled for it (twice the vector width). The AVX2 copies hold nothing but a plain loop and
// always-inline helpers: no library template is instantiated for AVX2, so no AVX2 code can leak
// into the generic path through a shared (COMDAT) instantiation.
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define HPO_TARGET_AVX2 __attribute__((target("avx2")))
#define HPO_ALWAYS_INLINE inline __attribute__((always_inline))
bool cpu_has_avx2() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
  }();
  return has;
}
#else
#define HPO_TARGET_AVX2
#define HPO_ALWAYS_INLINE inline
bool cpu_has_avx2() { return false; }
#endif

// Calls f(reader, first element, count, first mask byte or nullptr) for each span of chunk c.
template <class Key, class F>
void visit_chunk(const Layout& L, int c, F&& f) {
  L.for_spans(c, [&](size_t s, int64_t off, int64_t cnt) {
    const Segment& seg = L.segs()[s];
    with_reader<Key>(seg.dtype, [&](auto rd) {
      using Raw = typename decltype(rd)::Raw;
      f(rd, static_cast<Raw*>(seg.data) + off, cnt, seg.mask ? seg.mask + off : nullptr);
    });
  });
}

// ------------------------------------------------------------------ histogram passes
template <class R>
HPO_ALWAYS_INLINE void hist_top_body(const typename R::Raw* p, int64_t n, int shift, uint32_t* h) {
  // Bins of 8 elements first, increments after: the loads and shifts vectorize, and increments of
  // one bin (frequent: weights cluster) are not chained behind the next load.
  constexpr int kU = 8;
  int64_t i = 0;
  for (; i + kU <= n; i += kU) {
    uint32_t bin[kU];
    for (int j = 0; j < kU; ++j) bin[j] = uint32_t(R::key(p[i + j])) >> shift;
    for (int j = 0; j < kU; ++j) ++h[bin[j]];
  }
  for (; i < n; ++i) ++h[uint32_t(R::key(p[i])) >> shift];
}

template <class R>
HPO_TARGET_AVX2 void hist_top_avx2(const typename R::Raw* p, int64_t n, int shift, uint32_t* h) {
  hist_top_body<R>(p, n, shift, h);
}

template <class R>
void hist_top_loop(const typename R::Raw* p, int64_t n, int shift, uint32_t* h) {
  if (cpu_has_avx2()) hist_top_avx2<R>(p, n, shift, h);
  else hist_top_body<R>(p, n, shift, h);
}

template <class R>
HPO_ALWAYS_INLINE void hist_low_body(const typename R::Raw* p, int64_t n, uint32_t top,
                                     int low_bits, uint32_t* h) {
  // Few keys match the top digit (about 1 in 1000 for trained weights): test a block of 64 with a
  // vectorized range compare (lo <= key <= hi; keys fit int32, and SSE2 compares signed), and walk
  // only the blocks that hold a match. The pass then runs near the speed of a plain read.
  constexpr int kB = 64;
  const uint32_t low_mask = (1u << low_bits) - 1;
  const int32_t lo = static_cast<int32_t>(top << low_bits);
  const int32_t hi = static_cast<int32_t>(lo + (int64_t(1) << low_bits) - 1);  // inclusive
  auto walk = [&](int64_t from, int64_t to) {
    for (int64_t i = from; i < to; ++i) {
      const uint32_t k = R::key(p[i]);
      if ((k >> low_bits) == top) ++h[k & low_mask];
    }
  };
  int64_t i = 0;
  for (; i + kB <= n; i += kB) {
    int32_t any = 0;
    for (int j = 0; j < kB; ++j) {
      const int32_t k = static_cast<int32_t>(R::key(p[i + j]));
      any |= (k >= lo) & (k <= hi);
    }
    if (any) walk(i, i + kB);
  }
  walk(i, n);
}

template <class R>
HPO_TARGET_AVX2 void hist_low_avx2(const typename R::Raw* p, int64_t n, uint32_t top,
                                   int low_bits, uint32_t* h) {
  hist_low_body<R>(p, n, top, low_bits, h);
}

template <class R>
void hist_low_loop(const typename R::Raw* p, int64_t n, uint32_t top, int low_bits, uint32_t* h) {
  if (cpu_has_avx2()) hist_low_avx2<R>(p, n, top, low_bits, h);
  else hist_low_body<R>(p, n, top, low_bits, h);
}

// Per-chunk histograms (nchunks x bins) of key >> shift over all elements.
template <class Key>
std::vector<uint32_t> histogram_top(const Layout& L, int bins, int shift) {
  std::vector<uint32_t> hists(size_t(L.nchunks()) * bins);
  L.parallel_chunks([&](int c) {
    uint32_t* h = hists.data() + size_t(c) * bins;
    visit_chunk<Key>(L, c, [&](auto rd, auto* p, int64_t n, uint8_t*) {
      hist_top_loop<decltype(rd)>(p, n, shift, h);
    });
  });
  return hists;
}

// Per-chunk histograms of the low `low_bits` bits of the keys whose top digit equals `top`.
template <class Key>
std::vector<uint32_t> histogram_low(const Layout& L, uint32_t top, int low_bits) {
  const int bins = 1 << low_bits;
  std::vector<uint32_t> hists(size_t(L.nchunks()) * bins);
  L.parallel_chunks([&](int c) {
    uint32_t* h = hists.data() + size_t(c) * bins;
    visit_chunk<Key>(L, c, [&](auto rd, auto* p, int64_t n, uint8_t*) {
      hist_low_loop<decltype(rd)>(p, n, top, low_bits, h);
    });
  });
  return hists;
}

std::vector<int64_t> merge(const std::vector<uint32_t>& hists, int nchunks, int bins) {
  std::vector<int64_t> merged(hists.begin(), hists.begin() + bins);
  for (int c = 1; c < nchunks; ++c)
    for (int b = 0; b < bins; ++b) merged[b] += hists[size_t(c) * bins + b];
  return merged;
}

// The bin holding the element of rank `rank` (1-based); rank becomes the rank inside that bin.
uint32_t pick_bin(const std::vector<int64_t>& merged, int64_t& rank) {
  for (size_t b = 0; b < merged.size(); ++b) {
    if (rank <= merged[b]) return static_cast<uint32_t>(b);
    rank -= merged[b];
  }
  throw std::logic_error("radix select: rank beyond the number of elements");
}

// ------------------------------------------------------------------ NaN
template <class Key>
Key max_key(const Layout& L) {
  std::vector<Key> per_chunk(L.nchunks(), 0);
  L.parallel_chunks([&](int c) {
    Key m = 0;
    visit_chunk<Key>(L, c, [&](auto rd, auto* p, int64_t n, uint8_t*) {
      for (int64_t i = 0; i < n; ++i) m = std::max<Key>(m, decltype(rd)::key(p[i]));
    });
    per_chunk[c] = m;
  });
  return *std::max_element(per_chunk.begin(), per_chunk.end());
}

// Names the first buffer holding a NaN (error path only: a serial scan is fine).
template <class Key>
[[noreturn]] void throw_nan(const Layout& L, Key inf_key) {
  const auto& segs = L.segs();
  for (size_t s = 0; s < segs.size(); ++s) {
    bool nan = false;
    with_reader<Key>(segs[s].dtype, [&](auto rd) {
      using R = decltype(rd);
      const auto* p = static_cast<const typename R::Raw*>(segs[s].data);
      for (int64_t i = 0; i < segs[s].n && !nan; ++i) nan = R::key(p[i]) > inf_key;
    });
    if (nan) throw std::domain_error("tensor " + std::to_string(s) + " contains NaN");
  }
  throw std::domain_error("input contains NaN");
}

template <class Key>
void check_no_nan_scan(const Layout& L, Key inf_key) {
  if (max_key<Key>(L) > inf_key) throw_nan<Key>(L, inf_key);
}

// From the pass-1 histogram: a bin above the inf bin is all NaN. The inf bin itself also holds
// NaNs when the digit is not the whole key; only then (the data holds inf) is a scan needed.
template <class Key>
void check_no_nan(const Layout& L, const std::vector<int64_t>& merged, int shift, Key inf_key) {
  const uint32_t inf_bin = uint32_t(inf_key) >> shift;
  for (size_t b = inf_bin + 1; b < merged.size(); ++b)
    if (merged[b]) throw_nan<Key>(L, inf_key);
  if (shift > 0 && merged[inf_bin]) check_no_nan_scan<Key>(L, inf_key);
}

// ------------------------------------------------------------------ selection
template <class Key>
struct Selection {
  Key key = 0;                     // the k-th smallest key
  int64_t ties_to_prune = 0;       // k - #(keys < key): how many elements equal to key are pruned
  std::vector<int64_t> ties;       // per chunk: #(keys == key)
};

template <class Key>
Selection<Key> select_kth(const Layout& L, int64_t k, Key inf_key) {
  using D = Digits<Key>;
  const int top_bins = 1 << D::kTop;
  const std::vector<uint32_t> top_h = histogram_top<Key>(L, top_bins, D::kLow);
  const std::vector<int64_t> top_m = merge(top_h, L.nchunks(), top_bins);
  check_no_nan<Key>(L, top_m, D::kLow, inf_key);

  Selection<Key> s;
  int64_t rank = k;
  const uint32_t top = pick_bin(top_m, rank);
  s.ties.resize(L.nchunks());
  if constexpr (D::kLow == 0) {
    s.key = static_cast<Key>(top);
    for (int c = 0; c < L.nchunks(); ++c) s.ties[c] = top_h[size_t(c) * top_bins + top];
  } else {
    const int low_bins = 1 << D::kLow;
    const std::vector<uint32_t> low_h = histogram_low<Key>(L, top, D::kLow);
    const uint32_t low = pick_bin(merge(low_h, L.nchunks(), low_bins), rank);
    s.key = static_cast<Key>((top << D::kLow) | low);
    for (int c = 0; c < L.nchunks(); ++c) s.ties[c] = low_h[size_t(c) * low_bins + low];
  }
  s.ties_to_prune = rank;
  return s;
}

// ------------------------------------------------------------------ bracketed select (float32)
// Test hooks (magnitude.h): which path selects, and how often the bracket missed.
std::atomic<int> g_path{kPathAuto};
std::atomic<int64_t> g_fallbacks{0};

constexpr int64_t kGroups = 4096;         // sampled places (each 8 consecutive keys: one cache line)
constexpr int64_t kGroupKeys = 8;
constexpr int64_t kNoSampleBelow = 1 << 15;  // smaller inputs: every key is a candidate
constexpr double kSigmas = 4.5;           // bracket half-width, in standard deviations of the sample
constexpr int64_t kScanBlock = 1024;      // the compacting scan checks its buffer's room per block

// Work buffers kept by the calling thread between calls, grown when too small, never initialized: a
// fresh buffer would cost a page fault per 4 KiB on first touch, as much as the rest of the
// selection. Pages are only touched where candidates land, so what stays resident is about the
// largest candidate set seen (a few % of that call's data).
struct ScratchBuf {
  std::unique_ptr<uint32_t[]> p;
  size_t n = 0;
  uint32_t* get(size_t need) {
    if (need > n) {
      p.reset();
      p.reset(new uint32_t[need]);
      n = need;
    }
    return p.get();
  }
};
thread_local ScratchBuf t_pool, t_work1, t_work2;

// Per-chunk result of the bracketed pass over keys, for a bracket (L, hi].
struct Scan {
  int64_t le = 0;    // keys <= L
  int64_t m = 0;     // keys in (L, hi], compacted to the chunk's buffer
  uint32_t max = 0;  // the largest key (NaN check)
};

// The scan kernels: count keys <= L, track the largest key and (kCompact) append the keys in
// (L, hi] to buf at buf[s.m]. The compacting scan works in blocks of kScanBlock keys and stops
// before a block that might not fit in cap slots (16 of slack for the vector stores); it returns
// how many keys it consumed (all unless it stopped). L < hi.
struct BracketPortable : CandPortable {
  template <bool kCompact>
  static int64_t scan(const uint32_t* p, int64_t n, uint32_t L, uint32_t hi, uint32_t* buf,
                      int64_t cap, Scan& s) {
    int64_t i = 0;
    for (; i < n; i += kScanBlock) {
      const int64_t end = std::min(n, i + kScanBlock);
      if (kCompact && s.m + (end - i) + 16 > cap) break;
      uint32_t le = 0, mx = s.max;
      for (int64_t j = i; j < end; ++j) {  // vectorizes
        const uint32_t k = p[j] & 0x7fffffffu;
        le += k <= L;
        mx = std::max(mx, k);
      }
      s.le += le;
      s.max = mx;
      if (kCompact) {  // a second loop over the same (cached) block: branch-free appends
        const uint32_t width = hi - L - 1;  // k in (L, hi]  <=>  k - (L + 1) <= width (unsigned)
        int64_t m = s.m;
        for (int64_t j = i; j < end; ++j) {
          const uint32_t k = p[j] & 0x7fffffffu;
          buf[m] = k;
          m += (k - L - 1) <= width;
        }
        s.m = m;
      }
    }
    return std::min(i, n);
  }
};

#if HPO_HAVE_AVX512_PATH
struct BracketAvx512 : CandAvx512 {
  // One step: 2 compares, a masked add, a max, a compress and a store per 16 keys. (Counting keys
  // < lo as well would let ties at any lo pass without a fallback, at ~4% more time; only ties at
  // zero, the common case of weights already pruned, are counted: L = 0.)
  template <bool kCompact>
  HPO_AVX512 HPO_INLINE static void scan_step(__m512i key, __mmask16 tm, __m512i vL, __m512i vhi,
                                              __m512i& le, __m512i& mx, uint32_t* buf, int64_t& m) {
    const __mmask16 mle = _mm512_mask_cmple_epu32_mask(tm, key, vL);
    le = _mm512_mask_add_epi32(le, mle, le, _mm512_set1_epi32(1));
    mx = _mm512_maskz_max_epu32(__mmask16(0xffff), mx, key);  // masked-off lanes load as 0
    if constexpr (kCompact) {
      const __mmask16 in = _kandn_mask16(mle, _mm512_mask_cmple_epu32_mask(tm, key, vhi));
      _mm512_storeu_si512(static_cast<void*>(buf + m), _mm512_maskz_compress_epi32(in, key));
      m += popcnt16(in);
    }
  }

  HPO_AVX512 HPO_INLINE static uint64_t sum_lanes(__m512i v) {
    alignas(64) uint32_t x[16];
    _mm512_store_si512(static_cast<void*>(x), v);
    uint64_t s = 0;
    for (int j = 0; j < 16; ++j) s += x[j];
    return s;
  }

  template <bool kCompact>
  HPO_AVX512 static int64_t scan(const uint32_t* p, int64_t n, uint32_t L, uint32_t hi,
                                 uint32_t* buf, int64_t cap, Scan& s) {
    const __m512i vabs = _mm512_set1_epi32(0x7fffffff);
    const __m512i vL = _mm512_set1_epi32(int(L)), vhi = _mm512_set1_epi32(int(hi));
    __m512i le = _mm512_setzero_si512(), mx = _mm512_set1_epi32(int(s.max));
    int64_t m = s.m, i = 0;
    while (i < n) {
      const int64_t end = i + kScanBlock < n ? i + kScanBlock : n;
      if (kCompact && m + (end - i) + 16 > cap) break;
      for (; i + 16 <= end; i += 16) {
        const __m512i key =
            _mm512_and_si512(_mm512_loadu_si512(static_cast<const void*>(p + i)), vabs);
        scan_step<kCompact>(key, 0xffff, vL, vhi, le, mx, buf, m);
      }
      if (i < end) {
        const __mmask16 tm = __mmask16((1u << (end - i)) - 1);
        const __m512i key = _mm512_and_si512(_mm512_maskz_loadu_epi32(tm, p + i), vabs);
        scan_step<kCompact>(key, tm, vL, vhi, le, mx, buf, m);
        i = end;
      }
    }
    s.le += int64_t(sum_lanes(le));
    s.max = max_lane(mx);
    s.m = m;
    return i;
  }
};
#endif

bool all_float32(const std::vector<Segment>& segs) {
  for (const Segment& s : segs)
    if (s.dtype != kF32) return false;
  return true;
}

// A sample of s = groups * kGroupKeys keys: kGroupKeys consecutive keys at each of `groups` evenly
// spaced places (one memory access each: a sample costs its number of places, not of keys).
// Deterministic; gathered in parallel. Needs N >= 2 * kGroupKeys * groups.
std::vector<uint32_t> sample_keys(const Layout& L, int64_t groups) {
  const int64_t N = L.total(), s = groups * kGroupKeys;
  std::vector<uint32_t> out(static_cast<size_t>(s));
  auto pos = [&](int64_t j) {  // increasing in j, below N
    return (2 * (j / kGroupKeys) + 1) * N / (2 * groups) + j % kGroupKeys;
  };
  auto first_j = [&](int64_t at) {  // the first j with pos(j) >= at
    int64_t a = 0, b = s;
    while (a < b) {
      const int64_t mid = (a + b) / 2;
      if (pos(mid) < at) a = mid + 1;
      else b = mid;
    }
    return a;
  };
  L.parallel_chunks([&](int c) {
    int64_t j = first_j(L.chunk_begin(c)), g = L.chunk_begin(c);
    L.for_spans(c, [&](size_t seg, int64_t off, int64_t cnt) {
      const uint32_t* p = static_cast<const uint32_t*>(L.segs()[seg].data) + off;
      for (; j < s && pos(j) < g + cnt; ++j) {
        // Every place is a cache (and TLB) miss: ask for the one 4 places ahead meanwhile.
        const int64_t ahead = j + 4 * kGroupKeys;
        if (j % kGroupKeys == 0 && ahead < s && pos(ahead) < g + cnt)
          __builtin_prefetch(p + (pos(ahead) - g));
        out[size_t(j)] = p[pos(j) - g] & 0x7fffffffu;
      }
      g += cnt;
    });
  });
  return out;
}

// Selection of the k-th key by one bracketed pass (see the header comment). False when the
// bracket missed (the caller then runs the radix select); `ties`: fill Selection::ties.
template <class Ops>
bool select_bracketed(const Layout& L, int64_t k, bool ties, Selection<uint32_t>& sel) {
  constexpr uint32_t kMax = std::numeric_limits<uint32_t>::max();
  const int64_t N = L.total();
  const int nch = L.nchunks();
  uint32_t lo = 0, hi = kMax;
  int64_t expect = N;  // candidates expected
  if (N >= kNoSampleBelow) {
    const int64_t groups = std::min<int64_t>(kGroups, N / (16 * kGroupKeys)), s = groups * kGroupKeys;
    std::vector<uint32_t> sample = sample_keys(L, groups);
    uint32_t* w1 = t_work1.get(size_t(s) + 16);
    uint32_t* w2 = t_work2.get(size_t(s) + 16);
    const double p = (double(k) - 0.5) / double(N);
    const int64_t spread = int64_t(std::ceil(kSigmas * std::sqrt(double(s) * p * (1 - p)))) + 2;
    const double at = p * double(s);  // 0-based place of rank k in the sorted sample
    const int64_t a = int64_t(std::floor(at)) - spread, b = int64_t(std::ceil(at)) + spread;
    if (a >= 0) lo = narrow<Ops>(sample.data(), s, a + 1, w1, w2).t;
    if (b < s) hi = narrow<Ops>(sample.data(), s, b + 1, w1, w2).t;
    expect = std::min<int64_t>(N, (std::min(b, s - 1) - std::max<int64_t>(a, 0) + 1) * (N / s + 1));
  }
  // Keys <= L are counted, keys in (L, hi] compacted. L = lo - 1 (keys < lo counted), except that
  // for lo == 0 the zeros are counted, so that weights pruned before (many zeros) are no candidates.
  const uint32_t Lb = lo == 0 ? 0 : lo - 1;
  if (hi <= Lb) hi = Lb + 1;  // lo == hi == 0: the bracket (0, 1] is as good as empty

  // Per-chunk candidate buffers in one allocation: a chunk may hold up to twice the expected total
  // (skewed data: sorted, or one layer of large weights), pages touched only where keys land.
  std::vector<int64_t> cap(nch), at(nch + 1, 0);
  for (int c = 0; c < nch; ++c) {
    const int64_t n = L.chunk_begin(c + 1) - L.chunk_begin(c);
    cap[c] = std::min(n, 2 * expect + 4 * kScanBlock) + kScanBlock + 16;
    at[c + 1] = at[c] + cap[c];
  }
  uint32_t* const pool = t_pool.get(size_t(at[nch]));
  std::vector<Scan> scans(nch);
  std::vector<char> overflow(nch, 0);
  L.parallel_chunks([&](int c) {
    Scan s;
    uint32_t* buf = pool + at[c];
    bool full = false;
    L.for_spans(c, [&](size_t seg, int64_t off, int64_t cnt) {
      const uint32_t* p = static_cast<const uint32_t*>(L.segs()[seg].data) + off;
      int64_t done = 0;
      if (!full) {
        done = Ops::template scan<true>(p, cnt, Lb, hi, buf, cap[c], s);
        full = done < cnt;
      }
      if (done < cnt) Ops::template scan<false>(p + done, cnt - done, Lb, hi, nullptr, 0, s);
    });
    scans[c] = s;
    overflow[c] = full;
  });

  int64_t le = 0, M = 0;
  bool full = false;
  uint32_t mx = 0;
  for (int c = 0; c < nch; ++c) {
    le += scans[c].le;
    M += scans[c].m;
    full |= overflow[c] != 0;
    mx = std::max(mx, scans[c].max);
  }
  if (mx > kInfKey32) throw_nan<uint32_t>(L, kInfKey32);
  sel.ties.assign(nch, 0);
  if (k <= le && Lb == 0) {  // the k-th key is 0 (every key counted is a zero)
    sel.key = 0;
    sel.ties_to_prune = k;
    for (int c = 0; c < nch; ++c) sel.ties[c] = scans[c].le;
    return true;
  }
  if (full || k <= le || k > le + M) return false;  // the bracket missed

  // The candidates, made contiguous (chunk order kept), then narrowed to the r-th.
  for (int c = 1; c < nch; ++c) {
    const int64_t to = at[c - 1] + scans[c - 1].m;
    if (to != at[c]) std::memmove(pool + to, pool + at[c], size_t(scans[c].m) * sizeof(uint32_t));
    at[c] = to;
  }
  const int64_t r = k - le;
  // narrow may overwrite the candidates unless the ties are still to be counted in them.
  uint32_t* const w1 = t_work1.get(size_t(M) + 16);
  uint32_t* const w2 = ties && nch > 1 ? t_work2.get(size_t(M) + 16) : pool;
  const Pick pk = narrow<Ops>(pool, M, r, w1, w2);
  sel.key = pk.t;
  sel.ties_to_prune = r - pk.lt;
  if (ties) {
    // Every key == t is a candidate, each chunk's in its own run of the buffer. The last chunk's
    // count is not needed: it prunes whatever quota is left (at most its ties).
    for (int c = 0; c + 1 < nch; ++c) {
      const uint32_t* q = pool + at[c];
      int64_t e = 0;
      for (int64_t i = 0; i < scans[c].m; ++i) e += q[i] == pk.t;
      sel.ties[c] = e;
    }
    sel.ties[nch - 1] = sel.ties_to_prune;
  }
  return true;
}

// The bracketed select where it applies (float32 buffers), else (or when it misses) radix select.
template <class Key>
Selection<Key> select(const Layout& L, int64_t k, Key inf_key, bool ties) {
  if constexpr (sizeof(Key) == 4) {
    const int path = g_path.load(std::memory_order_relaxed);
    if (path != kPathRadix && all_float32(L.segs())) {
      Selection<uint32_t> sel;
      bool ok;
#if HPO_HAVE_AVX512_PATH
      if (path == kPathAuto && cpu_has_avx512()) ok = select_bracketed<BracketAvx512>(L, k, ties, sel);
      else
#endif
        ok = select_bracketed<BracketPortable>(L, k, ties, sel);
      if (ok) return sel;
      g_fallbacks.fetch_add(1, std::memory_order_relaxed);
    }
  }
  return select_kth<Key>(L, k, inf_key);
}

// ------------------------------------------------------------------ fused prune pass
// Keeps keys > t (kPruneTies) or keys >= t, writes the mask, zeroes the rest (kZero; else the
// buffer is only read: select_mask). Branch-free, so it vectorizes.
template <class R, bool kPruneTies, bool kZero>
HPO_ALWAYS_INLINE void apply_body(typename R::Raw* p, uint8_t* mask, int64_t n, typename R::Key t) {
  using Raw = typename R::Raw;
  for (int64_t i = 0; i < n; ++i) {
    const auto k = R::key(p[i]);
    const bool keep = kPruneTies ? k > t : k >= t;
    mask[i] = keep;
    if constexpr (kZero) p[i] &= static_cast<Raw>(Raw(0) - Raw(keep));  // all ones if kept, else +0.0
  }
}

template <class R, bool kPruneTies, bool kZero>
HPO_TARGET_AVX2 void apply_avx2(typename R::Raw* p, uint8_t* mask, int64_t n, typename R::Key t) {
  apply_body<R, kPruneTies, kZero>(p, mask, n, t);
}

#if HPO_HAVE_AVX512_PATH
// float32 with AVX-512: 16 keys a step; the mask bytes go out as streaming stores once the mask
// pointer is 16-byte aligned (the mask is only written: its lines need not be read first).
template <bool kPruneTies, bool kZero>
HPO_AVX512 void apply_f32_avx512(uint32_t* p, uint8_t* mask, int64_t n, uint32_t t) {
  const __m512i vabs = _mm512_set1_epi32(0x7fffffff), vt = _mm512_set1_epi32(int(t));
  const __m128i ones = _mm_set1_epi8(1);
  int64_t i = 0;
  const int64_t head = std::min<int64_t>(n, (16 - (reinterpret_cast<uintptr_t>(mask) & 15)) & 15);
  bool streamed = false;
  for (int64_t todo = head; i < n;) {
    const int64_t len = std::min<int64_t>(16, todo ? todo : n - i);
    const __mmask16 tm = __mmask16(len == 16 ? 0xffff : (1u << len) - 1);
    const __m512i raw = len == 16 ? _mm512_loadu_si512(static_cast<const void*>(p + i))
                                  : _mm512_maskz_loadu_epi32(tm, p + i);
    const __m512i key = _mm512_and_si512(raw, vabs);
    const __mmask16 keep = kPruneTies ? _mm512_mask_cmpgt_epu32_mask(tm, key, vt)
                                      : _mm512_mask_cmpge_epu32_mask(tm, key, vt);
    if constexpr (kZero) _mm512_mask_storeu_epi32(p + i, tm, _mm512_maskz_mov_epi32(keep, raw));
    const __m128i bytes = _mm_maskz_mov_epi8(keep, ones);
    if (len == 16 && todo == 0) {
      _mm_stream_si128(reinterpret_cast<__m128i*>(mask + i), bytes);
      streamed = true;
    } else {
      _mm_mask_storeu_epi8(mask + i, tm, bytes);
    }
    i += len;
    if (todo) todo -= len;
  }
  if (streamed) _mm_sfence();  // the masks are complete before anyone else reads them
}
#endif

template <class R, bool kPruneTies, bool kZero>
void apply_span(typename R::Raw* p, uint8_t* mask, int64_t n, typename R::Key t) {
#if HPO_HAVE_AVX512_PATH
  if constexpr (std::is_same_v<R, F32Reader>) {
    if (cpu_has_avx512() && g_path.load(std::memory_order_relaxed) == kPathAuto) {
      apply_f32_avx512<kPruneTies, kZero>(p, mask, n, t);
      return;
    }
  }
#endif
  if (cpu_has_avx2()) apply_avx2<R, kPruneTies, kZero>(p, mask, n, t);
  else apply_body<R, kPruneTies, kZero>(p, mask, n, t);
}

// Element by element: prunes keys < t and the first `ties` keys == t; returns the ties left.
template <class R, bool kZero>
int64_t apply_scalar(typename R::Raw* p, uint8_t* mask, int64_t n, typename R::Key t,
                     int64_t ties) {
  using Raw = typename R::Raw;
  for (int64_t i = 0; i < n; ++i) {
    const auto k = R::key(p[i]);
    bool keep = k > t;
    if (k == t) {
      keep = ties == 0;
      ties -= !keep;
    }
    mask[i] = keep;
    if constexpr (kZero) p[i] &= static_cast<Raw>(Raw(0) - Raw(keep));
  }
  return ties;
}

// Prunes keys < t and the first `ties` keys == t; returns how many ties are left to prune. Ties are
// few, so it works by blocks: a block holding no more ties than are left prunes them all, the one
// block where the quota runs out goes element by element, and the rest keeps every tie.
template <class R, bool kZero>
int64_t apply_loop(typename R::Raw* p, uint8_t* mask, int64_t n, typename R::Key t, int64_t ties) {
  constexpr int64_t kBlock = 512;
  int64_t i = 0;
  for (; ties > 0 && i < n; i += kBlock) {
    const int64_t len = std::min(kBlock, n - i);
    int64_t eq = 0;
    for (int64_t j = i; j < i + len; ++j) eq += R::key(p[j]) == t;
    if (eq <= ties) {
      apply_span<R, true, kZero>(p + i, mask + i, len, t);
      ties -= eq;
      continue;
    }
    ties = apply_scalar<R, kZero>(p + i, mask + i, len, t, ties);
  }
  if (i < n) apply_span<R, false, kZero>(p + i, mask + i, n - i, t);
  return ties;
}

template <class Key, bool kZero>
void apply_prune(const Layout& L, const Selection<Key>& s) {
  // Ties are pruned lowest position first: chunk c prunes what its predecessors left over.
  std::vector<int64_t> quota(L.nchunks());
  int64_t left = s.ties_to_prune;
  for (int c = 0; c < L.nchunks(); ++c) {
    quota[c] = std::min(left, s.ties[c]);
    left -= quota[c];
  }
  L.parallel_chunks([&](int c) {
    int64_t ties = quota[c];
    visit_chunk<Key>(L, c, [&](auto rd, auto* p, int64_t n, uint8_t* mask) {
      ties = apply_loop<decltype(rd), kZero>(p, mask, n, s.key, ties);
    });
  });
}

void keep_all(const Layout& L) {
  L.parallel_chunks([&](int c) {
    visit_chunk<uint32_t>(L, c, [&](auto, auto*, int64_t n, uint8_t* mask) {
      std::fill(mask, mask + n, uint8_t(1));
    });
  });
}

// ------------------------------------------------------------------ key space dispatch
// 16-bit keys when every buffer is float16 (or every one bfloat16), else 32-bit keys.
int common_dtype(const std::vector<Segment>& segs) {
  for (const Segment& s : segs)
    if (s.dtype != segs[0].dtype) return -1;
  return segs[0].dtype;
}

void check_args(const std::vector<Segment>& segs, int64_t k, int64_t k_min, int64_t total) {
  if (segs.empty()) throw std::invalid_argument("expected at least one buffer");
  for (const Segment& s : segs)
    if (s.dtype != kF32 && s.dtype != kF16 && s.dtype != kBF16)
      throw std::invalid_argument("unknown dtype code " + std::to_string(s.dtype));
  if (k < k_min || k > total)
    throw std::invalid_argument("k=" + std::to_string(k) + " out of range for N=" +
                                std::to_string(total));
}

int64_t total_of(const std::vector<Segment>& segs) {
  int64_t n = 0;
  for (const Segment& s : segs) n += s.n;
  return n;
}

template <class F>
void dispatch(const std::vector<Segment>& segs, F&& f) {
  const int dt = common_dtype(segs);
  if (dt == kF16) f(uint16_t{}, kInfKeyF16);
  else if (dt == kBF16) f(uint16_t{}, kInfKeyBF16);
  else f(uint32_t{}, kInfKey32);
}

}  // namespace

double kth_magnitude(const std::vector<Segment>& segs, int64_t k, int threads) {
  check_args(segs, k, 1, total_of(segs));
  const Layout L(segs, threads);
  double value = 0;
  dispatch(segs, [&](auto key0, auto inf_key) {
    using Key = decltype(key0);
    const Key key = select<Key>(L, k, static_cast<Key>(inf_key), false).key;
    if constexpr (sizeof(Key) == 4) value = bits_to_float(key);
    else if (segs[0].dtype == kF16) value = bits_to_float(f16_key_to_f32_bits(key));
    else value = bits_to_float(uint32_t(key) << 16);
  });
  return value;
}

void prune(const std::vector<Segment>& segs, int64_t k, int threads) {
  check_args(segs, k, 0, total_of(segs));
  const Layout L(segs, threads);
  dispatch(segs, [&](auto key0, auto inf_key) {
    using Key = decltype(key0);
    if (k == 0) {  // nothing to select, but a NaN must still raise
      check_no_nan_scan<Key>(L, static_cast<Key>(inf_key));
      keep_all(L);
      return;
    }
    apply_prune<Key, true>(L, select<Key>(L, k, static_cast<Key>(inf_key), true));
  });
}

void select_mask(const std::vector<Segment>& segs, int64_t k, int threads) {
  check_args(segs, k, 0, total_of(segs));
  const Layout L(segs, threads);
  dispatch(segs, [&](auto key0, auto inf_key) {
    using Key = decltype(key0);
    if (k == 0) {
      check_no_nan_scan<Key>(L, static_cast<Key>(inf_key));
      keep_all(L);
      return;
    }
    apply_prune<Key, false>(L, select<Key>(L, k, static_cast<Key>(inf_key), true));
  });
}

void set_magnitude_path(int path) {
  if (path != kPathAuto && path != kPathPortable && path != kPathRadix)
    throw std::invalid_argument("unknown magnitude path " + std::to_string(path));
  g_path.store(path);
}

int64_t magnitude_fallbacks() { return g_fallbacks.load(); }

}  // namespace hpo_native
