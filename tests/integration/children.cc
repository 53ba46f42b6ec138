#include "tests/integration/children.h"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

extern char** environ;

namespace trail::test {

namespace {

// The process groups of living children. A fixed array of atomics, so that a
// signal handler can walk it without a lock or an allocation.
std::array<std::atomic<pid_t>, 1024> g_groups{};

void list_group(pid_t pgid) {
  for (auto& slot : g_groups) {
    pid_t empty = 0;
    if (slot.compare_exchange_strong(empty, pgid)) return;
  }
  FAIL("more than " << g_groups.size() << " children alive at once");
}

void unlist_group(pid_t pgid) {
  for (auto& slot : g_groups) {
    pid_t expected = pgid;
    if (slot.compare_exchange_strong(expected, 0)) return;
  }
}

int status_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 255;
}

int open_or_fail(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
  if (fd < 0) FAIL("cannot open " << path << ": " << std::strerror(errno));
  return fd;
}

}  // namespace

pid_t spawn_child(const spawn_options& opt) {
  REQUIRE(!opt.argv.empty());
  // Everything the child needs is prepared before fork: between fork and
  // exec only async-signal-safe calls are allowed (the test is threaded).
  std::vector<std::string> env_strings = opt.env;
  if (env_strings.empty())
    for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
  const std::string marker_prefix = std::string(kStackMarker) + "=";
  bool marked = false;
  for (const auto& e : env_strings) marked = marked || e.rfind(marker_prefix, 0) == 0;
  if (!marked) env_strings.push_back(marker_prefix + TRAIL_TEST_STACK_DIR);
  std::vector<char*> envp, argv;
  for (auto& s : env_strings) envp.push_back(const_cast<char*>(s.c_str()));
  envp.push_back(nullptr);
  for (auto& s : opt.argv) argv.push_back(const_cast<char*>(s.c_str()));
  argv.push_back(nullptr);

  const int in = open_or_fail("/dev/null", O_RDONLY);
  const int append = O_WRONLY | O_CREAT | O_APPEND;
  const int out = opt.stdout_fd >= 0 ? opt.stdout_fd
                                      : open_or_fail(opt.stdout_path.empty() ? "/dev/null" : opt.stdout_path, append);
  const int err = opt.stdout_fd >= 0 ? opt.stdout_fd
                                      : open_or_fail(opt.stderr_path.empty() ? "/dev/null" : opt.stderr_path, append);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the test died before prctl took effect
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP}) signal(sig, SIG_DFL);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  const int fork_errno = errno;
  ::close(in);
  if (opt.stdout_fd < 0) {
    ::close(out);
    ::close(err);
  }
  if (pid < 0) FAIL("fork failed: " << std::strerror(fork_errno));
  setpgid(pid, pid);  // also here, so that the group exists before anyone signals it
  list_group(pid);
  return pid;
}

int reap_child(pid_t pid, bool block) {
  if (pid <= 0) return 255;
  int status = 0;
  const pid_t r = waitpid(pid, &status, block ? 0 : WNOHANG);
  if (r == 0) return -1;
  // Gone (or never ours): anything it left in its group goes with it.
  ::kill(-pid, SIGKILL);
  unlist_group(pid);
  return r == pid ? status_code(status) : 255;
}

int end_child(pid_t pid, int timeout_ms) {
  if (pid <= 0) return 255;
  ::kill(-pid, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    const int code = reap_child(pid);
    if (code >= 0) return code;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill_child(pid);
  return -1;
}

void kill_child(pid_t pid) {
  if (pid <= 0) return;
  ::kill(-pid, SIGKILL);
  reap_child(pid, true);
}

void kill_every_child() {
  for (auto& slot : g_groups) {
    const pid_t pgid = slot.load();
    if (pgid > 0) ::kill(-pgid, SIGKILL);
  }
}

command_result run_command(const std::string& cmd, int timeout_ms) {
  int fds[2];
  REQUIRE(pipe2(fds, O_CLOEXEC) == 0);
  spawn_options opt;
  opt.argv = {"/bin/sh", "-c", cmd};
  opt.stdout_fd = fds[1];
  const pid_t pid = spawn_child(opt);
  ::close(fds[1]);

  // The head and a rolling tail are kept: a runaway command cannot fill the
  // test's memory, and both its first complaint and its summary survive.
  constexpr size_t kHead = 256 * 1024, kTail = 768 * 1024;
  std::string head, tail;
  size_t dropped = 0;
  int code = -1;
  bool eof = false, timed_out = false;
  const auto start = std::chrono::steady_clock::now();
  auto exited_at = std::chrono::steady_clock::time_point::max();
  char buf[65536];
  while (!eof) {
    pollfd p{fds[0], POLLIN, 0};
    if (poll(&p, 1, 100) > 0) {
      const ssize_t n = ::read(fds[0], buf, sizeof buf);
      if (n <= 0) {
        eof = n == 0 || errno != EINTR;
        continue;
      }
      size_t at = 0;
      if (head.size() < kHead) {
        at = std::min(kHead - head.size(), static_cast<size_t>(n));
        head.append(buf, at);
      }
      tail.append(buf + at, static_cast<size_t>(n) - at);
      if (tail.size() > 2 * kTail) {
        dropped += tail.size() - kTail;
        tail.erase(0, tail.size() - kTail);
      }
    }
    const auto now = std::chrono::steady_clock::now();
    if (code < 0 && (code = reap_child(pid)) >= 0) exited_at = now;
    // Exited, but something it started still holds the pipe: stop reading soon.
    if (code >= 0 && now - exited_at > std::chrono::seconds(2)) break;
    if (code < 0 && now - start > std::chrono::milliseconds(timeout_ms)) {
      timed_out = true;
      break;
    }
  }
  ::close(fds[0]);
  // Its output is closed; it may still be exiting.
  while (!timed_out && code < 0 && (code = reap_child(pid)) < 0) {
    timed_out = std::chrono::steady_clock::now() - start > std::chrono::milliseconds(timeout_ms);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (code < 0) kill_child(pid);  // timed out: it and its group
  std::string out = std::move(head);
  if (dropped) out += "\n[… " + std::to_string(dropped) + " bytes of output not kept …]\n";
  out += tail;
  if (timed_out) {
    out += "\n[killed: still running after " + std::to_string(timeout_ms / 1000) + " s]\n";
    return {-1, out};
  }
  return {code, out};
}

child_process::~child_process() {
  if (pid_ > 0 && reap_child(pid_) < 0) kill_child(pid_);
}

int child_process::end(int timeout_ms) {
  const int code = end_child(pid_, timeout_ms);
  pid_ = -1;
  return code;
}

}  // namespace trail::test
