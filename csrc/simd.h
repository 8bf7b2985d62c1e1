// simd.h -- what the float32 product kernels share (csrc/spmm.cpp, csrc/sddmm.cpp): an
// eight-float vector type, the AVX2+FMA function attribute with its run-time check, and a
// per-thread scratch buffer. Everything here lives in an anonymous namespace of each includer.
#pragma once

#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

namespace hpo_native {
namespace {

// Eight floats: one AVX register, or two SSE ones on the generic path. Values of this type never
// cross a non-inlined call, so GCC's note that their ABI differs between the two is moot.
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float v8 __attribute__((vector_size(32)));

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define SPMM_AVX2 __attribute__((target("avx2,fma")))
#define SPMM_INLINE inline __attribute__((always_inline))
bool cpu_has_avx2_fma() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return has;
}
#else
#define SPMM_AVX2
#define SPMM_INLINE inline
bool cpu_has_avx2_fma() { return false; }
#endif

SPMM_INLINE v8 loadu(const float* p) {
  v8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

SPMM_INLINE float hsum(v8 a) {
  return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

// Scratch memory of the calling thread, reused across calls (a fresh multi-MB buffer per call
// would cost page faults comparable to the product itself at small batch).
void* workspace(size_t bytes) {
  thread_local std::unique_ptr<void, FreeDeleter> buf;
  thread_local size_t cap = 0;
  if (bytes > cap) {
    buf.reset();
    cap = (bytes + 63) / 64 * 64;
    buf.reset(std::aligned_alloc(64, cap));
    if (!buf) {
      cap = 0;
      throw std::bad_alloc();
    }
  }
  return buf.get();
}

}  // namespace
}  // namespace hpo_native
