// cloudha: one binary, subcommands. main() parses the command line and hands
// over to the subcommand; everything else lives in libraries.
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "agent/cli/agent_command.h"
#include "agent/cli/certs_command.h"
#include "agent/cli/check_config_command.h"
#include "agent/cli/failover_command.h"
#include "agent/cli/probe_command.h"
#include "agent/cli/sessions_command.h"
#include "agent/cli/status_command.h"

namespace {

// grpc_health_probe (Go's flag package) takes long flags with one dash
// (-addr=host:port); they are rewritten to the double-dash form for
// `cloudha probe`, so scripts written for it work unchanged.
std::vector<std::string> NormalizeProbeFlags(std::vector<std::string> args) {
  bool in_probe = false;
  for (std::string& arg : args) {
    if (arg == "probe") in_probe = true;
    if (in_probe && arg.size() > 2 && arg[0] == '-' && arg[1] != '-') arg = "-" + arg;
  }
  return args;
}

void AddAdminTarget(CLI::App* command, cloudha::AdminTarget* target) {
  command->add_option("--config", target->config, "agent configuration file (finds the socket)");
  command->add_option("--socket", target->socket, "the agent's admin socket")
      ->excludes(command->get_option("--config"));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cloudha: high-availability cluster agent for VMs across availability zones"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "help for every subcommand");

  std::string config_path;
  CLI::App* agent = app.add_subcommand("agent", "run the agent");
  agent->add_option("--config", config_path, "configuration file (.textproto, .txtpb, .json)")
      ->required();

  std::string check_path;
  CLI::App* check = app.add_subcommand("check-config", "validate a configuration file");
  check->add_option("file", check_path, "configuration file")->required();

  cloudha::CertsInitOptions certs_options;
  CLI::App* certs = app.add_subcommand("certs", "cluster CA and node certificates");
  certs->require_subcommand(1);
  CLI::App* certs_init = certs->add_subcommand("init", "create a cluster CA and node certificates");
  certs_init->add_option("--cluster", certs_options.cluster, "cluster name")->required();
  certs_init->add_option("--nodes", certs_options.nodes, "node ids, comma-separated")
      ->required()
      ->delimiter(',');
  certs_init->add_option("--out", certs_options.out, "output folder")->required();
  certs_init->add_option("--days", certs_options.days, "validity in days")
      ->capture_default_str();
  certs_init->add_flag("--force", certs_options.force, "replace existing files");

  cloudha::AdminTarget status_target;
  bool status_json = false;
  CLI::App* status = app.add_subcommand("status", "the node and its peers");
  AddAdminTarget(status, &status_target);
  status->add_flag("--json", status_json, "print JSON");

  cloudha::AdminTarget failover_target;
  std::string failover_to;
  int failover_timeout_s = 10;
  CLI::App* failover = app.add_subcommand(
      "failover", "hand the primary role to another node (run it on the primary)");
  AddAdminTarget(failover, &failover_target);
  failover->add_option("--to", failover_to, "the node to hand over to (default: the best)");
  failover->add_option("--timeout", failover_timeout_s, "seconds to wait for the new primary")
      ->capture_default_str()
      ->check(CLI::Range(1, 600));

  cloudha::AdminTarget events_target;
  bool events_follow = false;
  bool events_json = false;
  CLI::App* events =
      app.add_subcommand("events", "role, peer, path, monitor and hook events (last 1000)");
  AddAdminTarget(events, &events_target);
  events->add_flag("-f,--follow", events_follow, "keep printing new events");
  events->add_flag("--json", events_json, "one JSON object per line");

  cloudha::SessionsOptions sessions_options;
  CLI::App* sessions = app.add_subcommand(
      "sessions", "the session table (the source on a primary, the replica on a secondary)");
  AddAdminTarget(sessions, &sessions_options.target);
  sessions->add_flag("--count", sessions_options.count, "print only the number of sessions");
  sessions->add_flag("--lag", sessions_options.lag, "replication state and lag");
  sessions->add_option("--limit", sessions_options.limit, "at most N sessions (0 = all)");
  sessions->add_option("--filter", sessions_options.filters,
                       "ADDRESS, port=N, proto=NAME or zone=N (repeatable; all must match)");
  sessions->add_flag("--json", sessions_options.json, "one JSON object per line");

  cloudha::ProbeOptions probe_options;
  CLI::App* probe = app.add_subcommand(
      "probe", "gRPC health check (grpc_health_probe's flags and exit codes)");
  probe->add_option("--addr", probe_options.addr, "HOST:PORT to probe");
  probe->add_option("--service", probe_options.service, "service name (\"\" = the agent)");
  probe->add_flag("--tls", probe_options.tls, "use TLS");
  probe->add_option("--tls-ca-cert", probe_options.tls_ca_cert, "CA certificate file");
  probe->add_option("--tls-client-cert", probe_options.tls_client_cert, "client certificate");
  probe->add_option("--tls-client-key", probe_options.tls_client_key, "client key");
  probe->add_option("--tls-server-name", probe_options.tls_server_name,
                    "server name to verify (e.g. b.demo.cloudha for node b of cluster demo)");
  probe->add_option("--connect-timeout", probe_options.connect_timeout, "e.g. 1s, 250ms")
      ->capture_default_str();
  probe->add_option("--rpc-timeout", probe_options.rpc_timeout, "e.g. 1s, 250ms")
      ->capture_default_str();
  probe->add_option("--user-agent", probe_options.user_agent, "user agent")
      ->capture_default_str();
  probe->add_flag("-v,--verbose", probe_options.verbose, "verbose output");

  std::vector<std::string> args(argv + 1, argv + argc);
  args = NormalizeProbeFlags(std::move(args));
  std::reverse(args.begin(), args.end());  // CLI11 takes them reversed
  try {
    app.parse(args);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    // Bad arguments exit 1, as grpc_health_probe's do.
    return 1;
  }

  if (agent->parsed()) return cloudha::RunAgent(config_path);
  if (check->parsed()) return cloudha::RunCheckConfig(check_path);
  if (certs_init->parsed()) return cloudha::RunCertsInit(certs_options);
  if (status->parsed()) return cloudha::RunStatus(status_target, status_json);
  if (probe->parsed()) return cloudha::RunProbe(probe_options);
  if (failover->parsed()) {
    return cloudha::RunFailover(failover_target, failover_to, failover_timeout_s);
  }
  if (events->parsed()) return cloudha::RunEvents(events_target, events_follow, events_json);
  if (sessions->parsed()) return cloudha::RunSessions(sessions_options);
  return 1;
}
