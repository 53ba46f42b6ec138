#pragma once
// The PostgreSQL writers' metrics (registered in common/metrics.h's registry
// on first use; traild touches them at start).

#include <string>
#include <vector>

#include "common/metrics.h"

namespace trail {

struct writer_metrics {
  static writer_metrics& get();

  prometheus::Counter& committed;   // events durably stored
  prometheus::Counter& duplicates;  // not stored again: an earlier delivery stored them
  prometheus::Counter& commits;
  prometheus::Histogram& batch_events;
  prometheus::Histogram& batch_bytes;
  prometheus::Histogram& flush_seconds;
  prometheus::Histogram& commit_seconds;
  prometheus::Gauge& pg_connections_busy;
  prometheus::Gauge& pg_connections_idle;
  // `sqlstate` may be empty (connection lost or timed out): counted as class
  // "connection"; a word (not a SQLSTATE) is its own class, e.g. "ledger_invariant".
  prometheus::Counter& db_error(const std::string& sqlstate);
  // Tenants writer `index` remembers as having a head row.
  prometheus::Gauge& known_tenants(int index);
  // The classes exported at 0 from the start, so that rate() and absence
  // alerts work before the first occurrence.
  static const std::vector<std::string>& db_error_classes();

 private:
  writer_metrics();
  prometheus::Family<prometheus::Counter>& db_error_family_;
  prometheus::Family<prometheus::Gauge>& known_tenants_family_;
};

}  // namespace trail
