// layout.h -- a list of buffers seen as one virtual array, cut into equal chunks for OpenMP.
//
// Work is split by element count over the whole list, not per buffer, so 50 small tensors balance
// across threads as well as one big one. Chunks are contiguous ranges of global position, chunk c
// before chunk c+1: per-chunk counts plus a prefix sum therefore give global position order (the
// tie-break rule) without any thread ever looking at another chunk's data.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "magnitude.h"

namespace hpo_native {

class Layout {
 public:
  // Below this many elements per thread, threading costs more than it saves.
  static constexpr int64_t kMinPerThread = int64_t(1) << 16;
  // Histogram counters are uint32: no chunk may hold 2^32 elements.
  static constexpr int64_t kMaxChunk = int64_t(1) << 31;

  Layout(const std::vector<Segment>& segs, int threads) : segs_(segs) {
    start_.reserve(segs.size() + 1);
    int64_t total = 0;
    for (const Segment& s : segs) {
      start_.push_back(total);
      total += s.n;
    }
    start_.push_back(total);
    total_ = total;
    const int64_t useful = std::max<int64_t>(1, total / kMinPerThread);
    threads_ = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, useful)));
    nchunks_ = static_cast<int>(std::max<int64_t>(threads_, (total + kMaxChunk - 1) / kMaxChunk));
  }

  const std::vector<Segment>& segs() const { return segs_; }
  int64_t total() const { return total_; }
  int nchunks() const { return nchunks_; }

  // Global position where chunk c begins (c == nchunks gives the end).
  int64_t chunk_begin(int c) const {
    const int64_t base = total_ / nchunks_, extra = total_ % nchunks_;
    return base * c + std::min<int64_t>(c, extra);
  }

  // Calls f(segment index, offset in segment, count) for each piece of chunk c, in order.
  template <class F>
  void for_spans(int c, F&& f) const {
    int64_t lo = chunk_begin(c);
    const int64_t hi = chunk_begin(c + 1);
    if (lo >= hi) return;
    // Last segment starting at or before lo; it cannot be empty (see the loop below).
    size_t i = std::upper_bound(start_.begin(), start_.end() - 1, lo) - start_.begin() - 1;
    while (lo < hi) {
      while (start_[i + 1] <= lo) ++i;  // skip empty segments
      const int64_t cnt = std::min(hi, start_[i + 1]) - lo;
      f(i, lo - start_[i], cnt);
      lo += cnt;
      ++i;
    }
  }

  // Runs f(c) for every chunk, in parallel.
  template <class F>
  void parallel_chunks(F&& f) const {
#pragma omp parallel for schedule(static) num_threads(threads_) if (threads_ > 1)
    for (int c = 0; c < nchunks_; ++c) f(c);
  }

 private:
  const std::vector<Segment>& segs_;
  std::vector<int64_t> start_;  // start_[i]: global position of segment i; back() == total
  int64_t total_ = 0;
  int threads_ = 1;
  int nchunks_ = 1;
};

}  // namespace hpo_native
