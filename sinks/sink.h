#pragma once
// The seams around the database sink (see sinks/README.md).
//
//   tenant batchers --batch_sink::submit--> writers --commit_observer--> finalizer
//
// A test can replace either side here and only here.

#include <string>
#include <vector>

#include "common/record.h"

namespace trail {

// Accepts a tenant's batch for writing. Never blocks: the in-flight gate at the
// fetch loop bounds how much can be queued behind it.
class batch_sink {
 public:
  virtual ~batch_sink() = default;
  virtual void submit(record_batch&& batch) = 0;
};

// Told what became of each record. Called on writer threads.
class commit_observer {
 public:
  virtual ~commit_observer() = default;
  // The records are durably stored (or were already: `duplicate`), with
  // `sequence` and `recorded_at_us` set.
  virtual void committed(std::vector<audit_record>&& records) = 0;
  // PostgreSQL refused this record on its own (found by bisecting its batch).
  virtual void refused(audit_record&& record, std::string code, std::string message) = 0;
};

}  // namespace trail
