// magnitude.cpp -- global magnitude selection and pruning by radix select on |w| keys (keys.h).
//
// Selection of the k-th smallest key, never a sort:
//   pass 1  histogram of the top digit of every key (16 bits of a 31-bit key, or all 15 bits of a
//           16-bit key) over all buffers, one histogram per chunk, merged; the bin holding rank k
//           fixes the top digit. NaNs show up as bins above the inf bin, at no extra cost.
//   pass 2  (31-bit keys only) histogram of the low 15 bits of the keys whose top digit matches:
//           fixes the key. The filter rarely matches (unless the data is full of ties), so this
//           pass runs at the speed of a plain read of memory.
// The last pass's per-chunk count of the threshold's bin is each chunk's count of ties, which lets
// the fused prune pass (read key, write mask, zero weight) prune ties in global position order in
// parallel. So: kth_magnitude reads memory twice, prune three times (the last one also writes).
#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "keys.h"
#include "layout.h"
#include "magnitude.h"

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

template <class R, bool kPruneTies, bool kZero>
void apply_span(typename R::Raw* p, uint8_t* mask, int64_t n, typename R::Key t) {
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
    const Key key = select_kth<Key>(L, k, static_cast<Key>(inf_key)).key;
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
    apply_prune<Key, true>(L, select_kth<Key>(L, k, static_cast<Key>(inf_key)));
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
    apply_prune<Key, false>(L, select_kth<Key>(L, k, static_cast<Key>(inf_key)));
  });
}

}  // namespace hpo_native
