#include "agent/cli/process_signals.h"

#include <pthread.h>
#include <string.h>
#include <sys/stat.h>

#include "base/log.h"

namespace cloudha {

sigset_t TakeProcessSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // Started under nohup, SIGHUP would be discarded as ignored; blocked and
  // taken by sigwait, its default action (stop) never runs.
  signal(SIGHUP, SIG_DFL);
  signal(SIGPIPE, SIG_IGN);
  umask(077);
  return signals;
}

int WaitForStop(const sigset_t& signals, const std::function<void()>& on_reload) {
  int signal_number = 0;
  while (sigwait(&signals, &signal_number) == 0 && signal_number == SIGHUP) {
    LogEvent(LogLevel::kInfo, "tls_reload_requested", {{"signal", strsignal(signal_number)}});
    if (on_reload) on_reload();
  }
  return signal_number;
}

}  // namespace cloudha
