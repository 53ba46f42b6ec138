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
#include <thread>
#include <string>
#include <vector>

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
  // num_pending and num_ack_pending of a durable consumer.
  std::pair<uint64_t, uint64_t> consumer_backlog(const std::string& stream, const std::string& consumer);
  // Every message of a stream, in order (data and headers).
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

// traild as a child process, configured through TRAIL_* variables. It
// connects to PostgreSQL as trail_ingest, as a deployment does.
class traild_process {
 public:
  traild_process(const std::string& pg_dsn, std::map<std::string, std::string> extra_env = {});
  ~traild_process();
  // Spawns traild; waits for /healthz unless told not to (a process meant to crash).
  void start(bool wait_healthy = true);
  // SIGTERM and wait; returns the exit status (or -1 on timeout, after SIGKILL).
  int stop(int timeout_ms = 30000);
  void kill9();
  bool running();
  int http_port() const { return http_port_; }
  int metrics_port() const { return metrics_port_; }
  pid_t pid() const { return pid_; }
  // A counter or gauge from /metrics (summed over its label sets); -1 if unreachable.
  double metric(const std::string& name);
  // Peak resident memory of the process (VmHWM), in bytes.
  int64_t peak_rss_bytes();
  std::string log_path() const { return log_path_; }

 private:
  std::map<std::string, std::string> env_;
  pid_t pid_ = -1;
  int http_port_ = 0;
  int metrics_port_ = 0;
  std::string log_path_;
};

// Events stored in a database (audit.events).
int64_t stored_events(const std::string& dsn);
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
// A shell command's exit status and its output (stdout and stderr together).
struct command_result {
  int status;
  std::string out;
};
command_result run_command(const std::string& cmd);
// The pinned Node test tools (scripts/node-tools.sh, fetched on first use):
// their directory, and the Node 22 binary.
std::string node_tools_dir();
std::string node_binary();
// Runs scripts/stack.sh with an action on the test stack (stop-pg, start-pg, restart-nats, …).
void stack_action(const std::string& action);
// Polls `done` every 100 ms until it is true or `timeout_ms` passes.
bool wait_until(const std::function<bool()>& done, int timeout_ms);

}  // namespace trail::test
