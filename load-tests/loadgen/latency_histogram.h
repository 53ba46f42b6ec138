// Log-linear latency histogram: 64 linear sub-buckets per power of two, so a
// reported percentile is within 1/64 (1.6%) above the true value; exact below
// 64 units. Fixed size (3,776 counters), O(1) record, mergeable. Not
// thread-safe: one owner, or merge copies.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>

namespace trail::loadgen {

class latency_histogram {
 public:
  static constexpr int kSubBits = 6;
  static constexpr uint64_t kSub = uint64_t{1} << kSubBits;
  static constexpr size_t kBuckets = (64 - kSubBits + 1) * kSub;

  void record(uint64_t v) {
    ++counts_[index(v)];
    ++total_;
    max_ = std::max(max_, v);
    min_ = std::min(min_, v);
    sum_ += v;
  }

  void merge(const latency_histogram& o) {
    for (size_t i = 0; i < kBuckets; ++i) counts_[i] += o.counts_[i];
    total_ += o.total_;
    max_ = std::max(max_, o.max_);
    min_ = std::min(min_, o.min_);
    sum_ += o.sum_;
  }

  void reset() { *this = latency_histogram(); }

  uint64_t count() const { return total_; }
  uint64_t max() const { return total_ ? max_ : 0; }
  uint64_t min() const { return total_ ? min_ : 0; }
  double mean() const { return total_ ? static_cast<double>(sum_) / static_cast<double>(total_) : 0.0; }

  // The smallest bucket upper bound at or above the q-quantile (q in [0, 1]),
  // never more than the largest value recorded; 0 when empty.
  uint64_t percentile(double q) const {
    if (total_ == 0) return 0;
    q = std::clamp(q, 0.0, 1.0);
    auto rank = static_cast<uint64_t>(q * static_cast<double>(total_) + 0.999999);
    rank = std::clamp<uint64_t>(rank, 1, total_);
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min(upper_bound(i), max_);
    }
    return max_;
  }

  static size_t index(uint64_t v) {
    if (v < kSub) return static_cast<size_t>(v);
    const int e = 63 - std::countl_zero(v);  // v in [2^e, 2^(e+1)), e >= kSubBits
    const uint64_t m = v >> (e - kSubBits);  // in [kSub, 2 * kSub)
    return static_cast<size_t>(e - kSubBits + 1) * kSub + static_cast<size_t>(m - kSub);
  }

  // The largest value that lands in bucket i.
  static uint64_t upper_bound(size_t i) {
    if (i < kSub) return i;
    const size_t group = i / kSub;  // >= 1
    const int shift = static_cast<int>(group) - 1;
    const uint64_t m = kSub + i % kSub;
    return ((m + 1) << shift) - 1;
  }

 private:
  std::array<uint64_t, kBuckets> counts_{};
  uint64_t total_ = 0;
  uint64_t max_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t sum_ = 0;
};

}  // namespace trail::loadgen
