// keys.h -- magnitude keys: |w| of a float32/float16/bfloat16 weight as an unsigned integer.
//
// For a non-negative IEEE float, the bit pattern read as an unsigned integer orders exactly like
// the value. Clearing the sign bit therefore turns |w| into an integer key whose order is the order
// of |w|: -0.0 and +0.0 both become key 0 (the smallest), +-inf becomes the largest non-NaN key,
// and every NaN has a key above the inf key. All selection is done on keys, never on floats.
//
// Two key spaces exist:
//   * 16-bit keys (15 significant bits), used when every buffer is float16, or every one bfloat16;
//   * 32-bit keys (31 significant bits) = the float32 bit pattern of |w|, used for float32 and for
//     lists that mix dtypes (a float16/bfloat16 weight converts exactly to float32).
// A "reader" below maps the raw storage word of one dtype to a key of one space.
#pragma once

#include <cstdint>
#include <cstring>

namespace hpo_native {

enum DType : int { kF32 = 0, kF16 = 1, kBF16 = 2 };

constexpr uint32_t kInfKey32 = 0x7f800000u;  // float32 +inf
constexpr uint16_t kInfKeyF16 = 0x7c00u;     // float16 +inf
constexpr uint16_t kInfKeyBF16 = 0x7f80u;    // bfloat16 +inf

inline float bits_to_float(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline uint32_t float_to_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}

// float16 magnitude key (15 bits) -> float32 bit pattern of the same value (exact).
inline uint32_t f16_key_to_f32_bits(uint16_t key) {
  const uint32_t exp = key >> 10, mant = key & 0x3ffu;
  if (exp == 0x1f) return kInfKey32 | (mant << 13);  // inf stays inf, NaN stays NaN
  if (exp == 0) return float_to_bits(static_cast<float>(mant) * 0x1p-24f);  // zero / subnormal
  return ((exp + 112u) << 23) | (mant << 13);  // rebias 15 -> 127
}

// ---- readers: struct { using Raw; using Key; static Key key(Raw); }
struct F32Reader {
  using Raw = uint32_t;
  using Key = uint32_t;
  static Key key(Raw r) { return r & 0x7fffffffu; }
};

struct Low15Reader {  // float16 or bfloat16 in the 16-bit key space
  using Raw = uint16_t;
  using Key = uint16_t;
  static Key key(Raw r) { return static_cast<Key>(r & 0x7fffu); }
};

struct BF16As32Reader {  // bfloat16 is the top half of a float32
  using Raw = uint16_t;
  using Key = uint32_t;
  static Key key(Raw r) { return static_cast<Key>(r & 0x7fffu) << 16; }
};

struct F16As32Reader {
  using Raw = uint16_t;
  using Key = uint32_t;
  static Key key(Raw r) { return f16_key_to_f32_bits(static_cast<uint16_t>(r & 0x7fffu)); }
};

// Calls f(Reader{}) with the reader of `dtype` for key type Key. 16-bit keys are only used for
// float16/bfloat16 buffers (the caller guarantees it), so float32 never meets a 16-bit key.
template <class Key, class F>
inline void with_reader(int dtype, F&& f) {
  if constexpr (sizeof(Key) == 4) {
    if (dtype == kF32) f(F32Reader{});
    else if (dtype == kF16) f(F16As32Reader{});
    else f(BF16As32Reader{});
  } else {
    (void)dtype;
    f(Low15Reader{});
  }
}

}  // namespace hpo_native
