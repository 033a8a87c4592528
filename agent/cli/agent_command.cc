#include "agent/cli/agent_command.h"

#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>

#include <iostream>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "grpc/support/log.h"
#include "agent/agent.h"
#include "agent/cli/check_config_command.h"
#include "agent/cli/process_signals.h"
#include "agent/agent_config.h"
#include "agent/reload_plan.h"
#include "agent/service_notifier.h"
#include "base/log.h"
#include "base/real_clock.h"

namespace cloudha {
namespace {

// gRPC's own diagnostics (a TLS handshake a stranger failed, say) go to the
// agent's log as events, in its format, instead of gRPC's stderr lines.
void LogGrpcMessage(gpr_log_func_args* args) {
  LogLevel level = args->severity == GPR_LOG_SEVERITY_ERROR   ? LogLevel::kWarn
                   : args->severity == GPR_LOG_SEVERITY_INFO ? LogLevel::kInfo
                                                              : LogLevel::kDebug;
  LogEvent(level, "grpc", {{"source", absl::StrCat(args->file, ":", args->line)},
                           {"message", args->message}});
}

}  // namespace

int RunAgent(const std::string& config_path) {
  // Before any thread starts: SIGTERM/SIGINT stop, SIGHUP reloads.
  const sigset_t signals = TakeProcessSignals();

  RealClock clock;
  LoadedConfig loaded = LoadAgentConfig(config_path, clock.WallNow());
  if (!loaded.problems.empty()) {
    for (const ConfigProblem& problem : loaded.problems) std::cerr << problem.ToString() << "\n";
    std::cerr << "cloudha agent: refusing to start: " << loaded.problems.size()
              << " problem(s) in " << config_path << "\n";
    return kExitBadConfig;
  }
  ConfigureLogging(ToLogFormat(loaded.config.log().format()),
                   ToLogLevel(loaded.config.log().level()));
  gpr_set_log_function(&LogGrpcMessage);

  absl::BitGen random;
  uint64_t boot_id = 0;
  while (boot_id == 0) boot_id = absl::Uniform<uint64_t>(random);

  absl::StatusOr<std::unique_ptr<Agent>> agent =
      Agent::Create(loaded.config, boot_id, &clock);
  if (!agent.ok()) {
    LogEvent(LogLevel::kError, "agent_failed", {{"reason", agent.status().message()}});
    return 1;
  }
  SystemdNotifier notifier;
  if (notifier.active()) (*agent)->SetServiceNotifier(&notifier);
  (*agent)->SetConfigFile(config_path);
  if (absl::Status s = (*agent)->Start(); !s.ok()) {
    LogEvent(LogLevel::kError, "agent_failed", {{"reason", s.message()}});
    return 1;
  }
  // SIGHUP: reread the configuration and the TLS files (the result is
  // logged: config_reloaded or reload_refused).
  const int signal_number = WaitForStop(signals, [&] { (*agent)->Reload().IgnoreError(); });
  LogEvent(LogLevel::kInfo, "agent_stopping", {{"signal", strsignal(signal_number)}});
  (*agent)->Shutdown();
  return 0;
}

}  // namespace cloudha
