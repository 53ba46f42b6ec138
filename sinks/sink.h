#pragma once
// The seams around the database sink (see sinks/README.md).
//
//   batcher actors --batch_sink::submit--> writers --commit_observer--> finalizer
//          ^------------- ready (after each transaction) ----'
//
// A test can replace either side here and only here.

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/record.h"

namespace trail {

// Independent writers ("lanes"), each asking for its next transaction when it
// has finished the last one. A tenant always maps to the same lane, so its
// sequence numbers are assigned in one place.
// The writer lane of a tenant among `lanes`: fixed for a tenant.
inline size_t lane_for(std::string_view tenant, size_t lanes) { return std::hash<std::string_view>{}(tenant) % lanes; }

class batch_sink {
 public:
  virtual ~batch_sink() = default;
  virtual size_t lanes() const = 0;
  virtual size_t lane_of(std::string_view tenant) const = 0;
  // One transaction's worth for the lane's writer, grouped by tenant. Called
  // only after the lane said it was ready; never blocks.
  virtual void submit(size_t lane, record_batch&& batch) = 0;
  // `ready` runs on the lane's writer thread each time the writer has
  // finished a batch and can take the next one. Set before the writers start;
  // a lane starts out ready.
  virtual void on_ready(size_t lane, std::function<void()> ready) = 0;
};

// Told what became of each record. Called on writer threads.
class commit_observer {
 public:
  virtual ~commit_observer() = default;
  // The records are durably stored (or were already: `duplicate`), with
  // `sequence` and `recorded_at_us` set.
  virtual void committed(std::vector<audit_record>&& records) = 0;
  // PostgreSQL refused this record on its own (found by bisecting its batch).
  virtual void refused(audit_record&& record, dlq_reason code, std::string message) = 0;
};

}  // namespace trail
