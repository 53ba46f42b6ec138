#include "tests/integration/harness.h"

#include "ingest/jetstream.h"
#include "integrity/verify.h"
#include "sinks/event_reader.h"

#include <arpa/inet.h>
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace trail::test {

const stack_env& stack() {
  static const stack_env env = [] {
    stack_env e;
    e.stack_dir = TRAIL_TEST_STACK_DIR;
    std::ifstream in(e.stack_dir + "/env");
    if (!in.good()) FAIL("the test stack is not running: " << e.stack_dir << "/env is missing (run through ctest)");
    for (std::string line; std::getline(in, line);) {
      const auto eq = line.find('=');
      if (eq == std::string::npos) continue;
      const auto k = line.substr(0, eq), v = line.substr(eq + 1);
      if (k == "TRAIL_NATS_URL") e.nats_url = v;
      if (k == "TRAIL_PG_DSN") e.pg_admin_dsn = v;
      if (k == "DEV_PG_PORT") e.pg_host_port = "127.0.0.1:" + v;
    }
    return e;
  }();
  return env;
}

std::string fresh_database(const std::string& name) {
  {
    db admin(stack().pg_admin_dsn);
    admin.query("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)");
    admin.query("CREATE DATABASE " + name);
  }
  const std::string dsn = "postgresql://postgres@" + stack().pg_host_port + "/" + name;
  const std::string cmd = std::string("TRAIL_PG_DSN='") + dsn + "' " + TRAIL_BIN_DIR + "/traild --log-level warn migrate";
  REQUIRE(std::system(cmd.c_str()) == 0);
  return dsn;
}

// ---- db ----

int64_t count_now(const std::string& dsn, const std::string& sql) {
  PGconn* c = PQconnectdb(dsn.c_str());
  int64_t n = -1;
  if (PQstatus(c) == CONNECTION_OK) {
    PGresult* r = PQexec(c, sql.c_str());
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQnfields(r) == 1 && !PQgetisnull(r, 0, 0))
      n = std::strtoll(PQgetvalue(r, 0, 0), nullptr, 10);
    PQclear(r);
  }
  PQfinish(c);
  return n;
}

db::db(const std::string& dsn) : conn_(PQconnectdb(dsn.c_str())) {
  if (PQstatus(conn_) != CONNECTION_OK) FAIL("cannot connect to " << dsn << ": " << PQerrorMessage(conn_));
  PQclear(PQexec(conn_, "SET client_min_messages = warning"));
}
db::~db() { PQfinish(conn_); }

std::vector<std::vector<std::string>> db::query(const std::string& sql) {
  PGresult* r = PQexec(conn_, sql.c_str());
  const auto st = PQresultStatus(r);
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
    std::string err = PQresultErrorMessage(r);
    PQclear(r);
    FAIL("SQL failed: " << sql << ": " << err);
  }
  std::vector<std::vector<std::string>> rows;
  for (int i = 0; i < PQntuples(r); ++i) {
    std::vector<std::string> row;
    for (int j = 0; j < PQnfields(r); ++j) row.emplace_back(PQgetisnull(r, i, j) ? "<null>" : PQgetvalue(r, i, j));
    rows.push_back(std::move(row));
  }
  PQclear(r);
  return rows;
}

int64_t db::count_or_error(const std::string& sql) {
  PGresult* r = PQexec(conn_, sql.c_str());
  int64_t n = -1;
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQnfields(r) == 1 && !PQgetisnull(r, 0, 0))
    n = std::strtoll(PQgetvalue(r, 0, 0), nullptr, 10);
  PQclear(r);
  return n;
}

std::string db::scalar(const std::string& sql) {
  auto rows = query(sql);
  REQUIRE(rows.size() == 1);
  REQUIRE(rows[0].size() == 1);
  return rows[0][0];
}

// ---- broker ----

broker::broker() : broker(stack().nats_url) {}

broker::broker(const std::string& urls) {
  natsOptions* o = nullptr;
  natsOptions_Create(&o);
  std::vector<std::string> servers;
  for (size_t at = 0; at <= urls.size();) {
    const size_t comma = std::min(urls.find(',', at), urls.size());
    servers.push_back(urls.substr(at, comma - at));
    at = comma + 1;
  }
  std::vector<const char*> list;
  for (const auto& u : servers) list.push_back(u.c_str());
  natsOptions_SetServers(o, list.data(), static_cast<int>(list.size()));
  natsOptions_SetMaxReconnect(o, -1);
  natsOptions_SetReconnectWait(o, 100);
  natsOptions_SetReconnectBufSize(o, 64 * 1024 * 1024);
  REQUIRE(natsConnection_Connect(&nc_, o) == NATS_OK);
  natsOptions_Destroy(o);
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.PublishAsync.MaxPending = 16384;
  jo.Wait = 10000;
  REQUIRE(natsConnection_JetStream(&js_, nc_, &jo) == NATS_OK);
}

broker::~broker() {
  jsCtx_Destroy(js_);
  natsConnection_Destroy(nc_);
}

void broker::reset_streams(int replicas) {
  for (const char* s : {"AUDIT", "AUDIT_DLQ", "AUDIT_COMMITTED", "AUDIT_CHECKPOINTS"}) js_DeleteStream(js_, s, nullptr, nullptr);
  // The test publishes before traild starts: the stream must exist already.
  const char* subjects[] = {"audit.events", "audit.events.>"};
  jsStreamConfig sc;
  jsStreamConfig_Init(&sc);
  sc.Name = "AUDIT";
  sc.Subjects = subjects;
  sc.SubjectsLen = 2;
  sc.Storage = js_FileStorage;
  sc.Duplicates = 120LL * 1000000000LL;
  sc.Replicas = replicas;
  // A cluster just formed may not have every peer yet: retried for a while.
  jsErrCode jerr = static_cast<jsErrCode>(0);
  REQUIRE(wait_until([&] { return js_AddStream(nullptr, js_, &sc, nullptr, &jerr) == NATS_OK; }, 30000));
}

void broker::publish(const std::string& subject, const std::string& body,
                     const std::vector<std::pair<std::string, std::string>>& headers) {
  natsMsg* m = nullptr;
  REQUIRE(natsMsg_Create(&m, subject.c_str(), nullptr, body.data(), static_cast<int>(body.size())) == NATS_OK);
  for (const auto& [k, v] : headers) natsMsgHeader_Add(m, k.c_str(), v.c_str());
  natsStatus s;
  while ((s = js_PublishMsgAsync(js_, &m, nullptr)) == NATS_TIMEOUT) {
  }
  if (s != NATS_OK) {
    natsMsg_Destroy(m);
    FAIL("publish failed: " << natsStatus_GetText(s));
  }
}

void broker::wait_published() {
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 60000;
  REQUIRE(js_PublishAsyncComplete(js_, &po) == NATS_OK);
  natsMsgList pending{nullptr, 0};
  REQUIRE(js_PublishAsyncGetPendingList(&pending, js_) == NATS_NOT_FOUND);
}

uint64_t broker::stream_messages(const std::string& stream) {
  jsStreamInfo* si = nullptr;
  if (js_GetStreamInfo(&si, js_, stream.c_str(), nullptr, nullptr) != NATS_OK) return 0;
  const uint64_t n = si->State.Msgs;
  jsStreamInfo_Destroy(si);
  return n;
}

std::pair<uint64_t, uint64_t> broker::consumer_backlog(const std::string& stream, const std::string& consumer) {
  const auto backlog = backlog_now(stream, consumer);
  if (!backlog) FAIL("the consumer " << stream << "/" << consumer << " does not exist, or the broker does not answer");
  return *backlog;
}

std::optional<std::pair<uint64_t, uint64_t>> broker::backlog_now(const std::string& stream, const std::string& consumer) {
  jsConsumerInfo* ci = nullptr;
  if (js_GetConsumerInfo(&ci, js_, stream.c_str(), consumer.c_str(), nullptr, nullptr) != NATS_OK) return std::nullopt;
  std::pair<uint64_t, uint64_t> out{ci->NumPending, static_cast<uint64_t>(ci->NumAckPending)};
  jsConsumerInfo_Destroy(ci);
  return out;
}

std::vector<broker::stored> broker::read_stream(const std::string& stream, uint64_t expected, int timeout_ms) {
  const std::string durable = "verify_" + std::to_string(getpid()) + "_" + std::to_string(rand());
  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = durable.c_str();
  cc.AckPolicy = js_AckNone;
  cc.DeliverPolicy = js_DeliverAll;
  REQUIRE(js_AddConsumer(nullptr, js_, stream.c_str(), &cc, nullptr, nullptr) == NATS_OK);
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream.c_str();
  so.Consumer = durable.c_str();
  natsSubscription* sub = nullptr;
  REQUIRE(js_PullSubscribe(&sub, js_, nullptr, durable.c_str(), nullptr, &so, nullptr) == NATS_OK);
  std::vector<stored> out;
  auto take = [&](natsMsgList& list) {
    for (int i = 0; i < list.Count; ++i) {
      natsMsg* m = list.Msgs[i];
      stored st{natsMsg_GetSubject(m), std::string(natsMsg_GetData(m), natsMsg_GetDataLength(m)), {}, {}};
      trail::read_headers(m, st.all_headers);
      for (const auto& [k, v] : st.all_headers) st.headers.emplace(k, v);  // the first value of each
      out.push_back(std::move(st));
    }
  };
  // The deadline moves with every message that arrives: a big stream read
  // from a busy cluster may take minutes, and stops only when nothing new
  // came for `timeout_ms`.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (out.size() < expected && std::chrono::steady_clock::now() < deadline) {
    natsMsgList list{nullptr, 0};
    const size_t before = out.size();
    if (natsSubscription_Fetch(&list, sub, 1000, 1000, nullptr) == NATS_OK) take(list);
    natsMsgList_Destroy(&list);
    if (out.size() > before) deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  }
  // Anything beyond `expected` would be a duplicate: look for it briefly.
  natsMsgList extra{nullptr, 0};
  if (natsSubscription_Fetch(&extra, sub, 100, 500, nullptr) == NATS_OK) take(extra);
  natsMsgList_Destroy(&extra);
  natsSubscription_Destroy(sub);
  js_DeleteConsumer(js_, stream.c_str(), durable.c_str(), nullptr, nullptr);
  return out;
}

int64_t stored_events(const std::string& dsn) { return count_now(dsn, "SELECT count(*) FROM audit.events"); }

std::string file_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// ---- traild_process ----

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

std::string new_signing_key(const std::string& name) {
  std::string file = name;
  for (char& c : file)
    if (c == '/') c = '-';
  const std::string path = stack().stack_dir + "/" + file + "-key";
  REQUIRE(std::system(("rm -f " + path + " " + path + ".pub && " + TRAIL_BIN_DIR + "/traild keygen --name " + name +
                       " --out " + path + " >/dev/null").c_str()) == 0);
  return path;
}

std::map<std::string, std::string> read_side_env(const std::string& dsn, const std::string& secret,
                                                 const std::string& key_name) {
  std::map<std::string, std::string> env = {{"TRAIL_API_PG_DSN", as_role(dsn, "trail_reader")},
                                            {"TRAIL_API_JWT_HS256_SECRET", secret}};
  if (!key_name.empty()) {
    env.emplace("TRAIL_INTEGRITY_SIGNING_KEY_FILE", new_signing_key(key_name));
    env.emplace("TRAIL_INTEGRITY_CHECKPOINT_INTERVAL_S", "1");
  }
  return env;
}

std::string node_tools_dir() { return std::string(TRAIL_BIN_DIR) + "/../tools/node-tests"; }

std::string node_binary() {
  static const std::string node = [] {
    const auto r = run_command("NODE_TOOLS='" + node_tools_dir() + "' " + TRAIL_SOURCE_DIR + "/scripts/node-tools.sh");
    INFO(r.out);
    REQUIRE(r.status == 0);
    // The script's last line is the binary's path.
    std::string out = r.out;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out.substr(out.rfind('\n') == std::string::npos ? 0 : out.rfind('\n') + 1);
  }();
  return node;
}

tcp_proxy::tcp_proxy(int target_port) : target_port_(target_port) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(listen_fd_ >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(listen(listen_fd_, 16) == 0);
  socklen_t len = sizeof a;
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  acceptor_ = std::thread([this] {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      const int client = accept(listen_fd_, nullptr, nullptr);
      if (client < 0) continue;
      if (down_) {
        close(client);
        continue;
      }
      std::lock_guard<std::mutex> lock(mu_);
      threads_.emplace_back([this, client] { relay(client); });
    }
  });
}

tcp_proxy::~tcp_proxy() {
  stop_ = true;
  cut();
  if (acceptor_.joinable()) acceptor_.join();
  for (auto& t : threads_) t.join();
  close(listen_fd_);
}

void tcp_proxy::relay(int client) {
  const int server = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(target_port_));
  if (connect(server, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(server);
    close(client);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    open_.push_back(client);
    open_.push_back(server);
  }
  char buf[16384];
  while (!stop_ && !down_) {
    pollfd p[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
    if (poll(p, 2, 100) <= 0) continue;
    bool closed = false;
    for (int i = 0; i < 2 && !closed; ++i) {
      if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t n = read(p[i].fd, buf, sizeof buf);
      if (n <= 0) {
        closed = true;
        break;
      }
      const int to = i == 0 ? server : client;
      for (ssize_t off = 0; off < n;) {
        const ssize_t w = write(to, buf + off, static_cast<size_t>(n - off));
        if (w <= 0) {
          closed = true;
          break;
        }
        off += w;
      }
    }
    if (closed) break;
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (int fd : {client, server}) {
    open_.erase(std::remove(open_.begin(), open_.end(), fd), open_.end());
    close(fd);
  }
}

void tcp_proxy::cut() {
  down_ = true;
  std::lock_guard<std::mutex> lock(mu_);
  for (int fd : open_) shutdown(fd, SHUT_RDWR);
}

void tcp_proxy::restore() { down_ = false; }

std::string as_role(const std::string& dsn, const std::string& role) {
  static const std::string kAdmin = "postgresql://postgres@";
  if (dsn.rfind(kAdmin, 0) != 0) return dsn;
  return "postgresql://" + role + "@" + dsn.substr(kAdmin.size());
}

traild_process::traild_process(const std::string& pg_dsn, std::map<std::string, std::string> extra_env)
    : env_(std::move(extra_env)) {
  http_port_ = free_port();
  env_.emplace("TRAIL_NATS_URL", stack().nats_url);
  // traild writes as the role production gives it (migration 0005): every
  // test then proves that its grants are enough, and no more is used.
  env_.emplace("TRAIL_PG_DSN", as_role(pg_dsn, "trail_ingest"));
  env_.emplace("TRAIL_HTTP_ADDR", "127.0.0.1:" + std::to_string(http_port_));
  metrics_port_ = free_port();
  env_.emplace("TRAIL_METRICS_ADDR", "127.0.0.1:" + std::to_string(metrics_port_));
  env_.emplace("TRAIL_LOG_LEVEL", std::getenv("TRAIL_TEST_LOG_LEVEL") ? std::getenv("TRAIL_TEST_LOG_LEVEL") : "warn");
  log_path_ = stack().stack_dir + "/traild-" + std::to_string(http_port_) + ".log";
}

traild_process::~traild_process() {
  // During unwinding from a failed assertion too: never leave it running.
  if (running()) stop();
}

void traild_process::start(start_wait wait) {
  REQUIRE_FALSE(running());
  spawn_options opt;
  for (char** e = environ; *e; ++e)
    if (std::string(*e).rfind("TRAIL_", 0) != 0) opt.env.emplace_back(*e);
  for (const auto& [k, v] : env_) opt.env.push_back(k + "=" + v);
  opt.argv = {std::string(TRAIL_BIN_DIR) + "/traild", "run"};
  opt.stderr_path = log_path_;
  exit_status_ = -1;
  pid_ = spawn_child(opt);
  switch (wait) {
    case start_wait::ready:
      wait_ready();
      break;
    case start_wait::listening: {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      while (http_get(http_port_, "/healthz").empty()) {
        if (!running()) FAIL("traild exited (status " << exit_status_ << ") before it listened; its log ends:\n" << log_tail());
        if (std::chrono::steady_clock::now() > deadline)
          FAIL("traild's /healthz did not answer within 60 s; its log ends:\n" << log_tail());
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      break;
    }
    case start_wait::nothing:
      break;
  }
}

void traild_process::wait_ready(int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  std::string said = "(no answer)";
  for (;;) {
    if (!running()) FAIL("traild exited (status " << exit_status_ << ") before it was ready; its log ends:\n" << log_tail());
    int status = 0;
    const std::string body = http_get(http_port_, "/readyz", &status);
    if (status == 200) return;
    if (!body.empty()) said = body;
    if (std::chrono::steady_clock::now() > deadline)
      FAIL("traild was not ready within " << timeout_ms / 1000 << " s (waited for /readyz 200: NATS connected, the "
           "consumer fetching, every writer connected); /readyz last said " << said << "; its log ends:\n" << log_tail());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

std::string traild_process::log_tail() const {
  std::string text = file_text(log_path_);
  if (text.size() > 8192) text = "…" + text.substr(text.size() - 8192);
  return text;
}

bool traild_process::running() {
  if (pid_ <= 0) return false;
  const int code = reap_child(pid_);
  if (code < 0) return true;
  exit_status_ = code;
  pid_ = -1;
  return false;
}

int traild_process::stop(int timeout_ms) {
  if (pid_ <= 0) return -1;
  const int code = end_child(pid_, timeout_ms);
  pid_ = -1;
  return code;
}

void traild_process::kill9() {
  if (pid_ <= 0) return;
  kill_child(pid_);
  pid_ = -1;
}

std::string http_get(int port, const std::string& path, int* status) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_connection_timeout(1, 0);
  cli.set_read_timeout(5, 0);
  auto res = cli.Get(path.c_str());
  if (!res) return {};
  if (status) *status = res->status;
  return res->body;
}

double traild_process::metric(const std::string& name) {
  // A busy machine may be slow to answer: a few tries before "unreachable".
  std::string body;
  for (int attempt = 0; attempt < 3 && body.empty(); ++attempt) {
    if (attempt) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    body = http_get(metrics_port_, "/metrics");
  }
  if (body.empty()) return -1;
  double total = 0;
  size_t pos = 0;
  while ((pos = body.find(name, pos)) != std::string::npos) {
    const bool line_start = pos == 0 || body[pos - 1] == '\n';
    const size_t end = body.find('\n', pos);
    const std::string line = body.substr(pos, end - pos);
    pos = end;
    if (!line_start || line.size() <= name.size() || (line[name.size()] != ' ' && line[name.size()] != '{')) continue;
    total += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return total;
}

namespace {
int64_t status_kib(pid_t pid, const char* field) {
  if (pid <= 0) return -1;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  const std::string prefix = std::string(field) + ":";
  for (std::string line; std::getline(in, line);)
    if (line.rfind(prefix, 0) == 0) return std::stoll(line.substr(prefix.size())) * 1024;
  return -1;
}
}  // namespace

int64_t traild_process::peak_rss_bytes() { return status_kib(pid_, "VmHWM"); }

int64_t traild_process::rss_bytes() { return status_kib(pid_, "VmRSS"); }

namespace {
int run_stack_action(const std::string& action) {
  const std::string cmd = "STACK_DIR='" + stack().stack_dir + "' " + TRAIL_SOURCE_DIR + "/scripts/stack.sh " + action + " 2>/dev/null";
  return std::system(cmd.c_str());
}
}  // namespace

void stack_action(const std::string& action) { REQUIRE(run_stack_action(action) == 0); }

stack_outage::stack_outage(const std::string& take, std::string restore_action)
    : restore_action_(std::move(restore_action)) {
  stack_action(take);
}

stack_outage::~stack_outage() {
  if (!restored_) run_stack_action(restore_action_);  // no assertion while unwinding
}

void stack_outage::restore() {
  restored_ = true;
  stack_action(restore_action_);
}

bool wait_until(const std::function<bool()>& done, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return done();
}

std::string chain_problem(const std::string& dsn) {
  PGconn* c = PQconnectdb(dsn.c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    PQfinish(c);
    return "cannot connect";
  }
  const std::string sql = std::string("SELECT ") + trail::kStoredEventWithLinksColumns +
                          " FROM audit.events e ORDER BY e.tenant_id, e.sequence";
  PGresult* r = PQexec(c, sql.c_str());
  std::string problem;
  std::map<std::string, trail::chain_hash> heads;
  if (PQresultStatus(r) != PGRES_TUPLES_OK) problem = PQresultErrorMessage(r);
  std::string tenant, canonical, error;
  std::unique_ptr<trail::integrity::chain_verifier> v;
  int64_t last = 0;
  auto close_tenant = [&] {
    if (v && !v->finish(last) && problem.empty()) problem = "tenant " + tenant + ": " + v->broken()->reason;
    if (v) heads[tenant] = v->head();
  };
  for (int i = 0; problem.empty() && i < PQntuples(r); ++i) {
    trail::stored_event ev;
    if (!trail::read_stored_event(r, i, ev, &error)) {
      problem = error;
      break;
    }
    const std::string t(ev.event.get(trail::event_field::tenant_id));
    if (t != tenant) {
      close_tenant();
      tenant = t;
      v = std::make_unique<trail::integrity::chain_verifier>(1);
    }
    canonical.clear();
    trail::append_canonical_event(ev.event, ev.sequence, ev.recorded_at_us, canonical);
    v->add(ev.sequence, ev.prev_hash, ev.hash, canonical);
    last = ev.sequence;
  }
  if (problem.empty()) close_tenant();
  PQclear(r);
  if (problem.empty()) {
    r = PQexec(c, "SELECT tenant_id, encode(head_hash, 'hex') FROM audit.tenant_heads WHERE last_sequence > 0");
    for (int i = 0; problem.empty() && i < PQntuples(r); ++i) {
      const auto it = heads.find(PQgetvalue(r, i, 0));
      if (it == heads.end() || trail::to_hex(it->second) != PQgetvalue(r, i, 1))
        problem = std::string("tenant ") + PQgetvalue(r, i, 0) + ": its head does not hold its last link";
    }
    PQclear(r);
  }
  PQfinish(c);
  return problem;
}

nats_cluster::nats_cluster() : dir_(stack().stack_dir + "/cluster") {
  REQUIRE(std::system(("rm -rf '" + dir_ + "' && mkdir -p '" + dir_ + "'").c_str()) == 0);
  for (int i = 0; i < 3; ++i) {
    client_port_[i] = free_port();
    cluster_port_[i] = free_port();
  }
  for (int i = 0; i < 3; ++i) {
    std::ofstream conf(dir_ + "/n" + std::to_string(i) + ".conf");
    conf << "server_name: n" << i << "\nlisten: 127.0.0.1:" << client_port_[i] << "\n"
         << "jetstream { store_dir: \"" << dir_ << "/n" << i << "\", max_mem: 256M, max_file: 8G }\n"
         << "cluster {\n  name: trail-it\n  listen: 127.0.0.1:" << cluster_port_[i] << "\n  routes: [";
    const char* sep = "";
    for (int j = 0; j < 3; ++j)
      if (j != i) {
        conf << sep << " nats-route://127.0.0.1:" << cluster_port_[j];
        sep = ",";
      }
    conf << " ]\n}\n";
  }
  for (int i = 0; i < 3; ++i) start(i);
}

nats_cluster::~nats_cluster() {
  for (int i = 0; i < 3; ++i) kill_child(pid_[i]);
}

void nats_cluster::start(int node) {
  const std::string conf = dir_ + "/n" + std::to_string(node) + ".conf";
  const std::string log = dir_ + "/n" + std::to_string(node) + ".log";
  spawn_options opt;
  opt.argv = {"/usr/sbin/nats-server", "-c", conf};
  opt.stderr_path = log;
  pid_[node] = spawn_child(opt);
  const int port = client_port_[node];
  REQUIRE(wait_until(
      [port] {
        const int fd = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<uint16_t>(port));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        const bool up = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
        close(fd);
        return up;
      },
      15000));
}

void nats_cluster::stop(int node) {
  if (pid_[node] <= 0) return;
  end_child(pid_[node], 30000);
  pid_[node] = -1;
}

std::string nats_cluster::urls() const {
  std::string out;
  for (int i = 0; i < 3; ++i) out += (i ? ",nats://127.0.0.1:" : "nats://127.0.0.1:") + std::to_string(client_port_[i]);
  return out;
}

bool nats_cluster::wait_ready(int timeout_ms) {
  return wait_until(
      [this] {
        natsConnection* nc = nullptr;
        if (natsConnection_ConnectTo(&nc, urls().c_str()) != NATS_OK) return false;
        jsCtx* js = nullptr;
        jsAccountInfo* ai = nullptr;
        bool ok = natsConnection_JetStream(&js, nc, nullptr) == NATS_OK &&
                  js_GetAccountInfo(&ai, js, nullptr, nullptr) == NATS_OK;
        if (ai) jsAccountInfo_Destroy(ai);
        if (js) jsCtx_Destroy(js);
        natsConnection_Destroy(nc);
        return ok;
      },
      timeout_ms);
}

}  // namespace trail::test
