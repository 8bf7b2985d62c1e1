// magnitude.h -- CPU magnitude-pruning kernels over raw buffers (no Python, no torch).
//
// A "list of tensors" is a list of Segments: contiguous buffers of one dtype each (DType in
// keys.h), seen as one virtual array in list order (the order that breaks ties). No concatenated
// copy is ever made. All functions throw std::domain_error whose message contains "NaN" if any
// weight is NaN (and then leave every buffer untouched), std::invalid_argument on bad arguments.
#pragma once

#include <cstdint>
#include <vector>

namespace hpo_native {

struct Segment {
  void* data;     // float32 / float16 / bfloat16 storage, contiguous
  int64_t n;      // number of elements (may be 0)
  int dtype;      // DType
  uint8_t* mask;  // bool mask (1 = kept) written by prune(); unused elsewhere
};

// The k-th smallest |w| (1 <= k <= N) over all segments, as a double (exact for every dtype).
double kth_magnitude(const std::vector<Segment>& segs, int64_t k, int threads);

// Prunes exactly k (0 <= k <= N) weights in place: the k smallest |w|, ties at the threshold broken
// by lowest global position first. Writes each segment's mask (1 = kept) and zeroes pruned weights.
void prune(const std::vector<Segment>& segs, int64_t k, int threads);

// The masks prune() would write, without changing the buffers (selection by the keys of the
// buffers, e.g. scores, whose masks then prune other buffers: csrc/score.cpp).
void select_mask(const std::vector<Segment>& segs, int64_t k, int threads);

// Test hooks. set_magnitude_path: how later calls select (kPathAuto: the bracketed pass, with its
// AVX-512 kernels where the CPU has them; kPathPortable: the bracketed pass, portable kernels;
// kPathRadix: the radix select only). magnitude_fallbacks: how many selections so far fell back
// from the bracketed pass to the radix select (the bracket missed the k-th key, or overflowed).
enum MagnitudePath : int { kPathAuto = 0, kPathPortable = 1, kPathRadix = 2 };
void set_magnitude_path(int path);
int64_t magnitude_fallbacks();

// N:M pruning of one buffer: in each group of m consecutive elements keep the n largest |w| (ties:
// lowest positions pruned first); writes the mask and zeroes the rest. seg.n % m == 0.
void nm_prune(const Segment& seg, int n, int m, int threads);

}  // namespace hpo_native
