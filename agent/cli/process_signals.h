// The signals of the long-running commands (`cloudha agent`, `cloudha
// witness`): SIGTERM and SIGINT stop them, SIGHUP rereads the TLS files.
#ifndef CLOUDHA_AGENT_CLI_PROCESS_SIGNALS_H_
#define CLOUDHA_AGENT_CLI_PROCESS_SIGNALS_H_

#include <signal.h>

#include <functional>

namespace cloudha {

// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread, so that only
// WaitForStop takes them (every thread started afterwards inherits the
// mask), ignores SIGPIPE and sets the umask to 077 (everything the process
// creates is private to it). Call first in main's command, before any
// thread starts. Returns the set WaitForStop waits on.
sigset_t TakeProcessSignals();

// Waits for SIGTERM or SIGINT, calling `on_reload` for each SIGHUP
// meanwhile (logged as tls_reload_requested). Returns the signal that
// stopped it.
int WaitForStop(const sigset_t& signals, const std::function<void()>& on_reload);

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_CLI_PROCESS_SIGNALS_H_
