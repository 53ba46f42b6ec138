#include "sinks/writer_metrics.h"

namespace trail {

writer_metrics& writer_metrics::get() {
  static writer_metrics m;
  return m;
}

writer_metrics::writer_metrics()
    : committed(metrics::counter("trail_events_committed_total", "Events durably stored in audit.events")),
      duplicates(metrics::counter("trail_duplicates_skipped_total",
                                  "Events not stored again because an earlier delivery already stored them")),
      commits(metrics::counter("trail_commits_total", "COPY transactions committed")),
      batch_events(metrics::histogram("trail_transaction_events", "Events per committed transaction",
                                      {1, 10, 50, 100, 250, 500, 1000, 2000, 4000, 8000})),
      batch_bytes(metrics::histogram("trail_transaction_bytes", "COPY bytes per committed transaction",
                                     {1e3, 1e4, 1e5, 2.5e5, 5e5, 1e6, 2.5e6, 5e6, 1e7, 2e7})),
      flush_seconds(metrics::histogram("trail_transaction_seconds", "Time from BEGIN to COMMIT of one COPY transaction",
                                       {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5})),
      commit_seconds(metrics::histogram("trail_commit_seconds", "Latency of the COMMIT statement alone",
                                        {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25})),
      pg_connections_busy(metrics::gauge("trail_pg_connections", "PostgreSQL writer connections, by state", {{"state", "busy"}})),
      pg_connections_idle(metrics::gauge("trail_pg_connections", "PostgreSQL writer connections, by state", {{"state", "idle"}})),
      db_error_family_(metrics::counter_family(
          "trail_db_errors_total", "Failed database round trips, by SQLSTATE class (each is retried or bisected)")),
      known_tenants_family_(metrics::gauge_family(
          "trail_writer_known_tenants", "Tenants a writer remembers as having a head row (bound: pg.known_tenants_max)")) {
  for (const auto& c : db_error_classes()) db_error_family_.Add({{"class", c}});
}

prometheus::Counter& writer_metrics::db_error(const std::string& sqlstate) {
  std::string cls = "connection";
  if (sqlstate.size() == 5) cls = sqlstate.substr(0, 2);
  else if (!sqlstate.empty()) cls = sqlstate;
  return db_error_family_.Add({{"class", cls}});
}

prometheus::Gauge& writer_metrics::known_tenants(int index) {
  return known_tenants_family_.Add({{"writer", std::to_string(index)}});
}

const std::vector<std::string>& writer_metrics::db_error_classes() {
  // connection: lost, refused or timed out; 22/23/54: the data (bisected);
  // 40: serialization/deadlock; 53: resources; 55/57: object state, operator
  // intervention (shutdown, cancel, statement_timeout); 58/XX: system and
  // internal; ledger_invariant: a missing head row or a repeated sequence.
  static const std::vector<std::string> all = {"connection", "08", "22", "23", "40", "53", "54", "55", "57",
                                               "58", "XX", "ledger_invariant"};
  return all;
}

}  // namespace trail
