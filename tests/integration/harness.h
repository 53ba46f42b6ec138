#pragma once
// Test harness for integration and fault tests: the real nats-server and
// PostgreSQL that the `stack` ctest fixture started (scripts/stack.sh on free
// loopback ports), a fresh database per test, and traild as a real child
// process that can be stopped, killed and restarted.

#include <libpq-fe.h>
#include <nats/nats.h>
#include <sys/types.h>

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <string>
#include <vector>

#include "tests/integration/children.h"

namespace trail::test {

// Settings of the running test stack (build/test-stack/env).
struct stack_env {
  std::string nats_url;
  std::string pg_admin_dsn;  // the "trail" database, used to create others
  std::string pg_host_port;  // "127.0.0.1:PORT"
  std::string stack_dir;
};
const stack_env& stack();

// A fresh database (dropped first if it exists), migrated by `traild migrate`.
std::string fresh_database(const std::string& name);

// One libpq connection with tiny helpers that fail the test on error.
class db {
 public:
  explicit db(const std::string& dsn);
  ~db();
  std::vector<std::vector<std::string>> query(const std::string& sql);
  std::string scalar(const std::string& sql);
  int64_t count(const std::string& sql) { return std::stoll(scalar(sql)); }
  // For polls: an error is "not yet" (-1), not a failed test.
  int64_t count_or_error(const std::string& sql);

 private:
  PGconn* conn_;
};

// A NATS connection with a JetStream context.
class broker {
 public:
  broker();
  // Connected to `urls` (comma-separated) rather than the stack's server.
  explicit broker(const std::string& urls);
  ~broker();
  natsConnection* nc() const { return nc_; }
  jsCtx* js() const { return js_; }
  // Deletes Trail's streams so a test starts from nothing; AUDIT is created
  // again with `replicas` (a clustered JetStream takes 3).
  void reset_streams(int replicas = 1);
  // Asynchronous publish; `headers` may be empty. Fails the test on error.
  void publish(const std::string& subject, const std::string& body,
               const std::vector<std::pair<std::string, std::string>>& headers = {});
  void wait_published();
  uint64_t stream_messages(const std::string& stream);
  // num_pending and num_ack_pending of a durable consumer; fails the test if
  // the consumer does not exist.
  std::pair<uint64_t, uint64_t> consumer_backlog(const std::string& stream, const std::string& consumer);
  // The same for polls: nothing while the consumer does not exist (yet) or
  // the broker does not answer.
  std::optional<std::pair<uint64_t, uint64_t>> backlog_now(const std::string& stream, const std::string& consumer);
  // Every message of a stream, in order (data and headers): until `expected`
  // arrived, or nothing new for `timeout_ms`.
  struct stored {
    std::string subject;
    std::string data;
    std::map<std::string, std::string> headers;  // the first value of each
    std::vector<std::pair<std::string, std::string>> all_headers;  // every value, in order
  };
  std::vector<stored> read_stream(const std::string& stream, uint64_t expected, int timeout_ms = 30000);

 private:
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
};

// A 3-node nats-server cluster with JetStream, on free loopback ports, its
// state under the stack directory; nodes can be stopped and started again.
class nats_cluster {
 public:
  nats_cluster();
  ~nats_cluster();
  void start(int node);      // 0..2; waits until it accepts clients
  void stop(int node);       // SIGTERM, waits for the exit
  std::string urls() const;  // every node's client URL, comma-separated
  // Waits until JetStream has a meta leader and answers account requests.
  bool wait_ready(int timeout_ms);

 private:
  int client_port_[3], cluster_port_[3];
  pid_t pid_[3] = {-1, -1, -1};
  std::string dir_;
};

// `dsn` (a postgresql://postgres@… URL of the test stack) as another role.
std::string as_role(const std::string& dsn, const std::string& role);

// What traild_process::start waits for.
enum class start_wait {
  ready,      // /readyz answers 200: connected to NATS, the durable consumer
              // bound and fetching, every PostgreSQL writer connected
  listening,  // /healthz answers: for a traild that cannot become ready (a
              // server is down on purpose) but must serve HTTP
  nothing,    // a process meant to exit at once
};

// traild as a child process (children.h: it dies with the test), configured
// through TRAIL_* variables. It connects to PostgreSQL as trail_ingest, as a
// deployment does.
class traild_process {
 public:
  traild_process(const std::string& pg_dsn, std::map<std::string, std::string> extra_env = {});
  ~traild_process();
  // Spawns traild and waits as told; fails the test, with the reason and
  // the end of traild's log, if it exits first or the wait times out.
  void start(start_wait wait = start_wait::ready);
  // Waits until /readyz answers 200 (at most `timeout_ms`), as start does.
  void wait_ready(int timeout_ms = 90000);
  // SIGTERM and wait; returns the exit status (or -1 on timeout, after SIGKILL).
  int stop(int timeout_ms = 30000);
  void kill9();
  bool running();
  // The last lines of its log (at most 8 KiB), for failure messages.
  std::string log_tail() const;
  int http_port() const { return http_port_; }
  int metrics_port() const { return metrics_port_; }
  pid_t pid() const { return pid_; }
  // A counter or gauge from /metrics (summed over its label sets); -1 if unreachable.
  double metric(const std::string& name);
  // Peak resident memory of the process (VmHWM), in bytes.
  int64_t peak_rss_bytes();
  // Resident memory now (VmRSS), in bytes; -1 if it is not running.
  int64_t rss_bytes();
  std::string log_path() const { return log_path_; }

 private:
  std::map<std::string, std::string> env_;
  pid_t pid_ = -1;
  int exit_status_ = -1;  // of the last run, once reaped
  int http_port_ = 0;
  int metrics_port_ = 0;
  std::string log_path_;
};

// Events stored in a database (audit.events); -1 when the database does not
// answer, so that polls may call it while PostgreSQL restarts.
int64_t stored_events(const std::string& dsn);
// One count(*)-like scalar for polls: -1 when the database does not answer
// or the statement fails (say, during a restart).
int64_t count_now(const std::string& dsn, const std::string& sql);
// Follows every tenant's hash chain in the database (integrity/verify.h):
// "" when each tenant's events are 1..N, each link recomputes, and the
// tenant's head holds the last link; otherwise what is wrong, first tenant first.
std::string chain_problem(const std::string& dsn);
// A whole file (a traild log), or "" if it cannot be read.
std::string file_text(const std::string& path);

int free_port();

// A TCP relay on a free loopback port to 127.0.0.1:`target_port`, to cut one
// client's connection (say trailctl's to NATS) while everything else runs:
// cut() closes every relayed connection and refuses new ones until restore().
class tcp_proxy {
 public:
  explicit tcp_proxy(int target_port);
  ~tcp_proxy();
  int port() const { return port_; }
  void cut();
  void restore();

 private:
  void relay(int client);
  int target_port_;
  int port_ = 0;
  int listen_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<bool> down_{false};
  std::mutex mu_;
  std::vector<int> open_;  // relayed sockets, both sides
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};
std::string http_get(int port, const std::string& path, int* status = nullptr);
// A new checkpoint signing key (`traild keygen`) under the stack directory; its path.
std::string new_signing_key(const std::string& name);
// traild's environment for a read-side test: the API reads as trail_reader,
// takes HS256 tokens signed with `secret`, and, given a key name, a new key
// signs checkpoints every second.
std::map<std::string, std::string> read_side_env(const std::string& dsn, const std::string& secret,
                                                 const std::string& key_name = "");
// The pinned Node test tools (scripts/node-tools.sh, fetched on first use):
// their directory, and the Node 22 binary.
std::string node_tools_dir();
std::string node_binary();
// Runs scripts/stack.sh with an action on the test stack (stop-pg, start-pg, restart-nats, …).
void stack_action(const std::string& action);

// A server taken away for a scenario (stop-pg, freeze-pg, stop-nats) and put
// back by restore(), or by the destructor if the test fails first, so that
// one failed scenario never leaves the next one without its servers.
class stack_outage {
 public:
  stack_outage(const std::string& take, std::string restore_action);
  ~stack_outage();
  void restore();

 private:
  std::string restore_action_;
  bool restored_ = false;
};

// Polls `done` every 100 ms until it is true or `timeout_ms` passes. `done`
// must not assert (a REQUIRE that throws inside a poll turns "not yet" into
// "failed"): use the *_now / *_or_error helpers, which answer "not yet".
bool wait_until(const std::function<bool()>& done, int timeout_ms);

}  // namespace trail::test
