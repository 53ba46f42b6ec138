#pragma once
// The one bound that covers every queue between fetch and commit: a message
// holds its share (1 event slot, its byte size) from the moment it is fetched
// until it is acked or terminated. When the gate is full the fetch loop stops
// pulling and JetStream keeps the backlog.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace trail {

class inflight_gate {
 public:
  inflight_gate(int64_t max_events, int64_t max_bytes) : max_events_(max_events), max_bytes_(max_bytes) {}

  // Waits until at least one event slot is free and bytes are under the bound,
  // or `timeout` passes. Returns the number of free event slots (0 on timeout).
  int64_t wait_for_room(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return events_ < max_events_ && bytes_ < max_bytes_; });
    if (events_ >= max_events_ || bytes_ >= max_bytes_) return 0;
    return max_events_ - events_;
  }

  int64_t free_bytes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return max_bytes_ - bytes_;
  }

  void acquire(int64_t events, int64_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    events_ += events;
    bytes_ += bytes;
  }

  void release(int64_t events, int64_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      events_ -= events;
      bytes_ -= bytes;
    }
    cv_.notify_all();
  }

  // Waits until nothing is in flight, or the deadline passes; true if drained.
  bool wait_drained(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_until(lock, deadline, [&] { return events_ == 0; });
  }

  int64_t events() const {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }
  int64_t bytes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return bytes_;
  }

 private:
  const int64_t max_events_, max_bytes_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int64_t events_ = 0, bytes_ = 0;
};

}  // namespace trail
