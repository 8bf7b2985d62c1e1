// score.h -- pruning by a score tensor (Wanda: |W| * ||X_j||, Taylor: |W * dL/dW|, ...): the weights
// whose *scores* are smallest are zeroed, in groups: over all tensors, per tensor, or per row.
//
// Scores are compared by value; they must be non-negative numbers (-0.0 == 0.0 is allowed, +inf is
// the largest score; a NaN or a negative score throws std::domain_error naming the first tensor, and
// then no weight has been changed). Within a group, ties are broken by position exactly as in global
// magnitude pruning: the lowest position (tensors in list order, each row-major) is pruned first. A
// score's key is its bit pattern with the sign cleared (keys.h), in the width of its own dtype for a
// row or a single tensor, in the float32 space for a list of mixed dtypes.
#pragma once

#include <cstdint>
#include <vector>

#include "magnitude.h"

namespace hpo_native {

enum ScoreGroup : int { kGroupGlobal = 0, kGroupTensor = 1, kGroupRow = 2 };

// One weight and its score tensor (same number of elements; dtypes may differ).
struct ScoredTensor {
  void* weight;         // written by score_prune (pruned elements set to +0.0)
  int weight_dtype;     // DType
  const void* score;    // read only
  int score_dtype;      // DType
  int64_t n;            // elements of each
  int64_t rows;         // kGroupRow: the tensor is rows x (n / rows), row-major; else unused
  uint8_t* mask;        // n bytes, written (1 = kept); score_kth: unused
  float* kth;           // score_kth: rows floats (kGroupRow) or 1 float; else unused
};

// Prunes, in each group, the k smallest scores' weights: k = ks[0] for kGroupGlobal (over all
// tensors), ks[i] for tensor i otherwise (per tensor, or per row of tensor i). Writes every mask;
// the weights are zeroed only after every score has been validated. `simd`: use the AVX-512 row
// kernels where the CPU has them (false: the portable code; both give identical results).
void score_prune(const std::vector<ScoredTensor>& ts, int group, const std::vector<int64_t>& ks,
                 int threads, bool simd);

// The k-th smallest score of each group (the largest one score_prune removes), -inf where k == 0,
// written to each tensor's `kth` (one float per row for kGroupRow, else one float, the same for
// every tensor under kGroupGlobal). Validates the scores as score_prune does.
void score_kth(const std::vector<ScoredTensor>& ts, int group, const std::vector<int64_t>& ks,
               int threads, bool simd);

}  // namespace hpo_native
