// narrow.h -- exact selection among candidate keys by sampled brackets, shared by csrc/score.cpp (per
// row) and csrc/magnitude.cpp (over the candidates of its one bracketed pass over all buffers).
//
// Keys are uint32 (magnitude or score keys, keys.h). Given M candidate keys and a rank r, narrow()
// finds the r-th smallest without sorting: 32 keys sampled at a stride give a bracket [lo, hi] around
// the expected place of rank r (bracket()); one vector pass (cand_pass) counts the keys < lo and <= hi
// and compacts the keys inside the bracket into a work buffer; the side that holds rank r is kept,
// and the step repeats until at most 64 keys remain, which are picked by counting (select_small). A
// bracket that keeps every candidate falls back to a split at one sampled key, so every step shrinks
// M. Each kernel has a portable version (CandPortable) and an AVX-512 one (CandAvx512: compress,
// masked compares) that runs where the CPU has it (cpu_has_avx512).
//
// Everything here has internal linkage (an unnamed namespace in a header): each .cpp that includes it
// gets its own copy, so no AVX-512 code is shared with generic code through a COMDAT.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>


#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define HPO_HAVE_AVX512_PATH 1
#define HPO_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,popcnt")))
#define HPO_INLINE inline __attribute__((always_inline))
#else
#define HPO_HAVE_AVX512_PATH 0
#endif

namespace hpo_native {
namespace {

struct Counts {
  int64_t lt;  // keys < lo
  int64_t le;  // keys <= hi
  int64_t m;   // keys in [lo, hi], compacted to the output buffer
};

struct Pick {
  uint32_t t;  // the r-th smallest key
  int64_t lt;  // keys < t
};

// The portable kernels: scalar, branch-free where it matters.
struct CandPortable {
  static constexpr int64_t kCountChunk = int64_t(1) << 30;

  static Counts cand_pass(const uint32_t* c, int64_t n, uint32_t lo, uint32_t hi, uint32_t* out) {
    int64_t lt = 0, le = 0;
    for (int64_t from = 0; from < n; from += kCountChunk) {
      const int64_t to = std::min(n, from + kCountChunk);
      uint32_t clt = 0, cle = 0;
      for (int64_t i = from; i < to; ++i) {
        clt += c[i] < lo;
        cle += c[i] <= hi;
      }
      lt += clt;
      le += cle;
    }
    int64_t m = 0;
    const uint32_t width = hi - lo;
    for (int64_t i = 0; i < n; ++i) {
      const uint32_t k = c[i];
      out[m] = k;
      m += (k - lo) <= width;
    }
    return {lt, le, m};
  }

  // The r-th smallest (1 <= r <= n) of c[0, n), n small: the first key with #below < r <= #below + #equal.
  static Pick select_small(const uint32_t* c, int64_t n, int64_t r) {
    for (int64_t i = 0; i < n; ++i) {
      int64_t lt = 0, eq = 0;
      for (int64_t j = 0; j < n; ++j) {
        lt += c[j] < c[i];
        eq += c[j] == c[i];
      }
      if (lt < r && r <= lt + eq) return {c[i], lt};
    }
    throw std::logic_error("select_small: rank out of range");
  }

  static void select_pair(const uint32_t* c, int64_t n, int64_t ra, int64_t rb, Pick& pa,
                          Pick& pb) {
    pa = select_small(c, n, ra);
    pb = select_small(c, n, rb);
  }
};

#if HPO_HAVE_AVX512_PATH
// The AVX-512 kernels (16 keys a step). The compacted output takes full 16-lane stores: out
// needs 16 slots of slack. Only intrinsics and plain arithmetic in here: no library template is
// instantiated for this target.
struct CandAvx512 {
  HPO_AVX512 HPO_INLINE static int64_t popcnt16(__mmask16 m) {
    return _mm_popcnt_u32(_cvtmask16_u32(m));  // a 32-bit popcnt: no false dependency
  }

  // Per-lane counters, summed once at the end: no mask leaves the vector unit per step except the
  // compacted count, which the next store's address needs.
  struct Acc {
    __m512i lt, le;
    int64_t m;
  };

  // One step of a counting pass: keys < lo and <= hi counted, keys in [lo, hi] appended to out.
  HPO_AVX512 HPO_INLINE static void count_step(__m512i key, __mmask16 tm, __m512i vlo, __m512i vhi,
                                               uint32_t* out, Acc& a) {
    const __m512i one = _mm512_set1_epi32(1);
    const __mmask16 mlt = _mm512_mask_cmplt_epu32_mask(tm, key, vlo);
    const __mmask16 mle = _mm512_mask_cmple_epu32_mask(tm, key, vhi);
    a.lt = _mm512_mask_add_epi32(a.lt, mlt, a.lt, one);
    a.le = _mm512_mask_add_epi32(a.le, mle, a.le, one);
    const __mmask16 in = _kandn_mask16(mlt, mle);
    _mm512_storeu_si512(static_cast<void*>(out + a.m), _mm512_maskz_compress_epi32(in, key));
    a.m += popcnt16(in);
  }

  HPO_AVX512 HPO_INLINE static Counts counts(const Acc& a) {
    alignas(64) uint32_t lt[16], le[16];
    _mm512_store_si512(static_cast<void*>(lt), a.lt);
    _mm512_store_si512(static_cast<void*>(le), a.le);
    Counts c{0, 0, a.m};
    for (int j = 0; j < 16; ++j) {
      c.lt += lt[j];
      c.le += le[j];
    }
    return c;
  }

  HPO_AVX512 HPO_INLINE static uint32_t max_lane(__m512i v) {
    alignas(64) uint32_t x[16];
    _mm512_store_si512(static_cast<void*>(x), v);
    uint32_t m = 0;
    for (int j = 0; j < 16; ++j) m = x[j] > m ? x[j] : m;
    return m;
  }

  HPO_AVX512 static Counts cand_pass(const uint32_t* c, int64_t n, uint32_t lo, uint32_t hi,
                                     uint32_t* out) {
    const __m512i vlo = _mm512_set1_epi32(int(lo)), vhi = _mm512_set1_epi32(int(hi));
    Acc a{_mm512_setzero_si512(), _mm512_setzero_si512(), 0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
      count_step(_mm512_loadu_si512(static_cast<const void*>(c + i)), 0xffff, vlo, vhi, out, a);
    if (i < n) {
      const __mmask16 tm = __mmask16((1u << (n - i)) - 1);
      count_step(_mm512_maskz_loadu_epi32(tm, c + i), tm, vlo, vhi, out, a);
    }
    return counts(a);
  }

  // The ra-th and rb-th smallest (1 <= ra <= rb <= n) of c[0, n), n <= 64, in one sweep: each key
  // is counted against all of them (4 registers) until both ranks are found.
  HPO_AVX512 static void select_pair(const uint32_t* c, int64_t n, int64_t ra, int64_t rb,
                                     Pick& pa, Pick& pb) {
    __m512i v[4];
    __mmask16 tm[4];
    const int nv = int((n + 15) / 16);
    for (int j = 0; j < 4; ++j) {
      const int64_t left = n - 16 * j;
      tm[j] = left >= 16 ? __mmask16(0xffff) : left > 0 ? __mmask16((1u << left) - 1) : __mmask16(0);
      v[j] = _mm512_maskz_loadu_epi32(tm[j], c + 16 * j);
    }
    bool found_a = false, found_b = false;
    for (int64_t i = 0; i < n && !(found_a && found_b); ++i) {
      const __m512i x = _mm512_set1_epi32(int(c[i]));
      int64_t lt = 0, eq = 0;
      for (int j = 0; j < nv; ++j) {
        lt += popcnt16(_mm512_mask_cmplt_epu32_mask(tm[j], v[j], x));
        eq += popcnt16(_mm512_mask_cmpeq_epu32_mask(tm[j], v[j], x));
      }
      if (!found_a && lt < ra && ra <= lt + eq) {
        pa = {c[i], lt};
        found_a = true;
      }
      if (!found_b && lt < rb && rb <= lt + eq) {
        pb = {c[i], lt};
        found_b = true;
      }
    }
    if (!(found_a && found_b)) pa.lt = pb.lt = -1;  // unreachable for valid ranks; callers check
  }

  HPO_AVX512 static Pick select_small(const uint32_t* c, int64_t n, int64_t r) {
    Pick p, q;
    select_pair(c, n, r, r, p, q);
    return p;
  }
};

bool cpu_has_avx512() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("popcnt");
  }();
  return has;
}
#else
bool cpu_has_avx512() { return false; }
#endif

// ------------------------------------------------------------------ narrowing driver
constexpr int64_t kSmall = 64;   // candidates picked directly (select_small) at or below this
constexpr int64_t kSample = 32;  // keys sampled from the candidates for each bracket
constexpr int64_t kSpread = 4;   // sample ranks either side of the target (about 1.5 sigma)

// The expected place of rank r (of n) in a sorted sample of s keys, widened by `spread` sample ranks
// each side: lo, hi are the sample's order statistics there (0 / UINT32_MAX past either end).
template <class Ops>
void bracket(const uint32_t* sample, int64_t s, int64_t r, int64_t n, int64_t spread, uint32_t& lo,
             uint32_t& hi) {
  const double pos = (double(r) - 0.5) * double(s) / double(n);  // 0-based index in the sample
  const int64_t a = int64_t(std::floor(pos)) - spread, b = int64_t(std::ceil(pos)) + spread;
  Pick pa{0, 0}, pb{std::numeric_limits<uint32_t>::max(), 0};
  if (a > 0 && b < s - 1) Ops::select_pair(sample, s, a + 1, b + 1, pa, pb);
  else if (a > 0) pa = Ops::select_small(sample, s, a + 1);
  else if (b < s - 1) pb = Ops::select_small(sample, s, b + 1);
  if (pa.lt < 0 || pb.lt < 0) throw std::logic_error("bracket: sample rank out of range");
  lo = pa.t;
  hi = pb.t;
}

// The r-th smallest key t of src[0, M) (1 <= r <= M) and the number of keys of src below t. src is
// only read; w1 and w2 are work buffers of M + 16 slots each (w2 may be src itself when src may be
// overwritten).
template <class Ops>
Pick narrow(const uint32_t* src, int64_t M, int64_t r, uint32_t* w1, uint32_t* w2) {
  constexpr uint32_t kMax = std::numeric_limits<uint32_t>::max();
  const uint32_t* A = src;
  uint32_t* bufs[2] = {w1, w2};
  int next = 0;
  int64_t base = 0;
  uint32_t sample[kSample];
  while (M > kSmall) {
    for (int64_t j = 0; j < kSample; ++j) sample[j] = A[(2 * j + 1) * M / (2 * kSample)];
    uint32_t lo, hi;
    bracket<Ops>(sample, kSample, r, M, kSpread, lo, hi);
    Counts c = Ops::cand_pass(A, M, lo, hi, bufs[next]);
    if (r > c.lt && r <= c.le) {
      if (lo == hi) {  // every candidate in the bracket equals lo
        return {lo, base + c.lt};
      }
      if (c.m == M) {
        // No progress (the sample spans every candidate): split at one sampled key instead; the
        // sides then exclude at least that key, so every step below shrinks M.
        const double pos = (double(r) - 0.5) * double(kSample) / double(M);
        const int64_t at = std::min<int64_t>(kSample - 1, std::max<int64_t>(0, int64_t(pos)));
        lo = hi = Ops::select_small(sample, kSample, at + 1).t;
        c = Ops::cand_pass(A, M, lo, hi, bufs[next]);
        if (r > c.lt && r <= c.le) {
          return {lo, base + c.lt};
        }
      }
    }
    if (r <= c.lt) {
      M = Ops::cand_pass(A, M, 0, lo - 1, bufs[next]).m;
    } else if (r > c.le) {
      M = Ops::cand_pass(A, M, hi + 1, kMax, bufs[next]).m;
      base += c.le;
      r -= c.le;
    } else {
      M = c.m;
      base += c.lt;
      r -= c.lt;
    }
    A = bufs[next];
    next ^= 1;
  }
  const Pick pk = Ops::select_small(A, M, r);
  if (pk.lt < 0) throw std::logic_error("narrow: rank out of range");
  return {pk.t, base + pk.lt};
}

}  // namespace
}  // namespace hpo_native
