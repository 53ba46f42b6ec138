#pragma once
// Every process a test starts (traild, nats-server nodes, trailctl, Node
// scripts, shell commands) dies with the test process, whatever ends it:
//  - each child leads a process group of its own, and the group is listed
//    here until it is reaped, so that a fatal signal or SIGTERM reaching the
//    test process kills every group before the process goes (test_main.cc);
//  - each child gets SIGKILL when the test process dies, even by SIGKILL
//    (PR_SET_PDEATHSIG; Linux sends it when the *thread* that forked exits,
//    so children are started from the test's main thread);
//  - each child carries TRAILTEST_STACK=<stack dir> in its environment, so
//    `scripts/stack.sh sweep` (run before and after the suite) finds anything
//    that escaped both, grandchildren included.

#include <sys/types.h>

#include <string>
#include <vector>

namespace trail::test {

// The marker variable every child carries (its value: the stack directory).
inline constexpr const char* kStackMarker = "TRAILTEST_STACK";

struct spawn_options {
  std::vector<std::string> argv;   // argv[0] is the program's path
  std::vector<std::string> env;    // "K=V" each; empty = the test process's environment
  std::string stdout_path;         // appended to; "" = /dev/null
  std::string stderr_path;         // appended to; "" = /dev/null
  int stdout_fd = -1;              // instead of a path: this descriptor (both streams)
};

// Starts a child as above; fails the test if it cannot be started.
pid_t spawn_child(const spawn_options& opt);

// Reaps a child that has exited: its exit status (128 + signal when killed),
// or -1 while it still runs. Once reaped, its group leaves the list.
int reap_child(pid_t pid, bool block = false);

// SIGTERM to the child's group, then SIGKILL to the group after `timeout_ms`;
// returns the exit status as reap_child does (-1 when it had to be killed).
int end_child(pid_t pid, int timeout_ms);

// SIGKILL to the child's group, and reaps it.
void kill_child(pid_t pid);

// Async-signal-safe: SIGKILL to every listed group (the fatal-signal path).
void kill_every_child();

// A shell command's exit status and its output (stdout and stderr together,
// at most 1 MiB kept: the rest is counted, not held).
struct command_result {
  int status;  // the exit status; -1 if it was killed at its deadline
  std::string out;
};
// Runs `/bin/sh -c cmd` as a child (above) and waits for it, at most
// `timeout_ms`; whatever it left running in its group is killed after it.
command_result run_command(const std::string& cmd, int timeout_ms = 300000);

// A long-running child owned by a test scope: killed (with its group) when
// the object goes, unless it was ended first.
class child_process {
 public:
  explicit child_process(const spawn_options& opt) : pid_(spawn_child(opt)) {}
  ~child_process();
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;
  pid_t pid() const { return pid_; }
  // SIGTERM, then SIGKILL after `timeout_ms`; the exit status as end_child.
  int end(int timeout_ms = 10000);

 private:
  pid_t pid_;
};

}  // namespace trail::test
