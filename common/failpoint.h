#pragma once
// Test-only fault injection, inert unless TRAIL_FAILPOINTS is set, e.g.
//   TRAIL_FAILPOINTS="crash_after_commit=3,commit_delay_ms=40,commit_delay_for_s=60"
// - crash_after_commit=N: the writer kills the process with SIGKILL right
//   after its N-th COMMIT, before anything is acked or republished;
// - commit_delay_ms=D (+ commit_delay_for_s=S): every transaction waits D ms
//   before COMMIT (during the first S seconds only, when given): a slow sink.

#include <cstdint>

namespace trail::failpoint {

struct settings {
  int64_t crash_after_commit = 0;
  int64_t commit_delay_ms = 0;
  int64_t commit_delay_for_s = 0;
};

const settings& get();

// Called by writers after each COMMIT.
void after_commit();
// Called by writers before each COMMIT.
void before_commit();

}  // namespace trail::failpoint
