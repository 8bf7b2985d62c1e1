// nm.cpp -- N:M pruning: in every group of m consecutive weights keep the n largest |w|.
//
// Pruned are the m - n smallest by (key, position): ties lose at the lowest position, the same rule
// as global pruning. Small groups (the usual 2:4, 4:8) rank each element against the others, which
// is branch-free and needs no scratch; large groups use nth_element on (key, position). Groups are
// independent, so the pass is parallel over groups. A NaN scan runs first so that a NaN leaves the
// tensor untouched.
#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "keys.h"
#include "magnitude.h"

namespace hpo_native {
namespace {

constexpr int kMaxRankedGroup = 32;  // above this, O(m^2) ranking loses to nth_element

// Rank of element i = its place in ascending (key, position) order; pruned if rank < n_prune.
// kM > 0 fixes m at compile time (the common 2:4, 4:8...) so both loops unroll; kM == 0 reads m.
template <class R, int kM>
void prune_group_small(typename R::Raw* w, uint8_t* mask, int m, int n_prune) {
  if constexpr (kM > 0) m = kM;
  typename R::Key keys[kMaxRankedGroup];
  for (int i = 0; i < m; ++i) keys[i] = R::key(w[i]);
  for (int i = 0; i < m; ++i) {
    int rank = 0;
    for (int j = 0; j < m; ++j) rank += (keys[j] < keys[i]) | ((keys[j] == keys[i]) & (j < i));
    mask[i] = rank >= n_prune;
  }
}

template <class R>
void prune_group_large(typename R::Raw* w, uint8_t* mask, int m, int n_prune,
                       std::vector<int>& order) {
  std::iota(order.begin(), order.end(), 0);
  auto less = [&](int a, int b) {
    const auto ka = R::key(w[a]), kb = R::key(w[b]);
    return ka < kb || (ka == kb && a < b);
  };
  if (n_prune < m) std::nth_element(order.begin(), order.begin() + n_prune, order.end(), less);
  std::fill(mask, mask + m, uint8_t(1));
  for (int i = 0; i < n_prune; ++i) mask[order[i]] = 0;
}

template <class R, int kM>
void prune_groups(typename R::Raw* w, uint8_t* mask, int64_t groups, int m, int n_prune,
                  int threads) {
  using Raw = typename R::Raw;
#pragma omp parallel num_threads(threads)
  {
    std::vector<int> order(m > kMaxRankedGroup ? m : 0);
#pragma omp for schedule(static)
    for (int64_t g = 0; g < groups; ++g) {
      Raw* gw = w + g * m;
      uint8_t* gm = mask + g * m;
      if (m <= kMaxRankedGroup) prune_group_small<R, kM>(gw, gm, m, n_prune);
      else prune_group_large<R>(gw, gm, m, n_prune, order);
      for (int i = 0; i < (kM ? kM : m); ++i) gw[i] &= static_cast<Raw>(Raw(0) - Raw(gm[i]));
    }
  }
}

template <class R>
void nm_prune_typed(const Segment& seg, int n, int m, int threads, typename R::Key inf_key) {
  using Raw = typename R::Raw;
  Raw* w = static_cast<Raw*>(seg.data);
  const int64_t groups = seg.n / m;
  const int n_prune = m - n;

  typename R::Key mx = 0;
#pragma omp parallel for schedule(static) num_threads(threads) reduction(max : mx)
  for (int64_t i = 0; i < seg.n; ++i) mx = std::max(mx, R::key(w[i]));
  if (mx > inf_key) throw std::domain_error("tensor contains NaN");

  switch (m) {  // compile-time group sizes for the usual patterns
    case 4: return prune_groups<R, 4>(w, seg.mask, groups, m, n_prune, threads);
    case 8: return prune_groups<R, 8>(w, seg.mask, groups, m, n_prune, threads);
    case 16: return prune_groups<R, 16>(w, seg.mask, groups, m, n_prune, threads);
    default: return prune_groups<R, 0>(w, seg.mask, groups, m, n_prune, threads);
  }
}

}  // namespace

void nm_prune(const Segment& seg, int n, int m, int threads) {
  if (m < 1 || n < 0 || n > m) throw std::invalid_argument("N:M pruning needs 0 <= n <= m, m >= 1");
  if (seg.n % m) throw std::invalid_argument("buffer size is not a multiple of m");
  // One buffer, one dtype: its own 16- or 32-bit keys order it.
  const int64_t useful = std::max<int64_t>(1, seg.n / (int64_t(1) << 16));
  threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, useful)));
  switch (seg.dtype) {
    case kF32: return nm_prune_typed<F32Reader>(seg, n, m, threads, kInfKey32);
    case kF16: return nm_prune_typed<Low15Reader>(seg, n, m, threads, kInfKeyF16);
    case kBF16: return nm_prune_typed<Low15Reader>(seg, n, m, threads, kInfKeyBF16);
    default: throw std::invalid_argument("unknown dtype code " + std::to_string(seg.dtype));
  }
}

}  // namespace hpo_native
