// The entry point of the integration and fault test programs. Besides running
// Catch, it makes sure a test that fails, crashes or is killed fails fast,
// prints bounded output and takes everything it started with it:
//  - a fatal signal (SIGTERM from ctest or a user, SIGINT, a crash, an abort
//    from std::terminate) names the running test, kills every child's
//    process group (children.h) and ends the process with that signal;
//  - the process gets SIGTERM when its parent (ctest) dies;
//  - what it prints goes through a small filter process that passes at most
//    kOutputMax bytes and counts the rest, so a runaway loop of failures
//    cannot fill ctest's memory.
// Catch's own POSIX signal handlers are off: they run non-async-signal-safe
// code in the handler, which is how a killed test once hung instead of dying.
#define CATCH_CONFIG_RUNNER
#define CATCH_CONFIG_NO_POSIX_SIGNALS
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "tests/integration/children.h"

namespace {

constexpr size_t kOutputMax = 2 * 1024 * 1024;

char g_test_name[512] = "(none yet)";

struct test_name_listener : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;
  void testCaseStarting(Catch::TestCaseInfo const& info) override {
    const size_t n = std::min(info.name.size(), sizeof g_test_name - 1);
    std::memcpy(g_test_name, info.name.data(), n);
    g_test_name[n] = '\0';
  }
};

void write_all(int fd, const char* text) {
  for (size_t left = std::strlen(text); left > 0;) {
    const ssize_t n = ::write(fd, text, left);
    if (n <= 0) return;
    text += n;
    left -= static_cast<size_t>(n);
  }
}

void on_fatal_signal(int sig) {
  write_all(2, "\n*** test process got signal ");
  char num[16];
  int len = 0;
  for (int v = sig; v > 0 && len < 15; v /= 10) num[len++] = static_cast<char>('0' + v % 10);
  for (int i = len - 1; i >= 0; --i) ::write(2, &num[i], 1);
  write_all(2, " (");
  write_all(2, strsignal(sig));
  write_all(2, ") during test: ");
  write_all(2, g_test_name);
  write_all(2, "\n*** killing every process it started\n");
  trail::test::kill_every_child();
  signal(sig, SIG_DFL);
  raise(sig);
}

void install_fatal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_fatal_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND | SA_NODEFER;
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL}) sigaction(sig, &sa, nullptr);
}

// Standard output and error go through a filter process that passes the
// first kOutputMax bytes. Should the reader of its output go away (ctest
// killed), the filter ends the test process rather than let it spin.
void bound_output() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return;
  const pid_t test = getpid();
  const pid_t filter = fork();
  if (filter < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return;
  }
  if (filter == 0) {
    ::close(fds[1]);
    signal(SIGPIPE, SIG_IGN);
    size_t passed = 0, dropped = 0;
    bool reader_gone = false;
    char buf[65536];
    for (;;) {
      const ssize_t n = ::read(fds[0], buf, sizeof buf);
      if (n == 0) break;
      if (n < 0) {
        if (errno == EINTR) continue;
        break;
      }
      const size_t pass = reader_gone ? 0 : std::min(kOutputMax - passed, static_cast<size_t>(n));
      for (size_t off = 0; off < pass;) {
        const ssize_t w = ::write(1, buf + off, pass - off);
        if (w <= 0) {
          reader_gone = true;
          ::kill(test, SIGTERM);
          break;
        }
        off += static_cast<size_t>(w);
      }
      passed += pass;
      dropped += static_cast<size_t>(n) - pass;
    }
    if (dropped && !reader_gone) {
      const std::string note = "\n*** " + std::to_string(dropped) + " more bytes of output dropped (at most " +
                               std::to_string(kOutputMax) + " are shown)\n";
      write_all(1, note.c_str());
    }
    _exit(0);
  }
  ::close(fds[0]);
  dup2(fds[1], 1);
  dup2(fds[1], 2);
  ::close(fds[1]);
}

}  // namespace

CATCH_REGISTER_LISTENER(test_name_listener)

int main(int argc, char* argv[]) {
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  // Every child and grandchild carries the stack's marker (children.h).
  setenv(trail::test::kStackMarker, TRAIL_TEST_STACK_DIR, 1);
  bound_output();
  install_fatal_handlers();
  return Catch::Session().run(argc, argv);
}
