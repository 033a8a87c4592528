// cloudha: one binary, subcommands. main() parses the command line and hands
// over to the subcommand; everything else lives in libraries.
#include <string>
#include <vector>

#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "base/build_info.h"
#include "google/protobuf/stubs/common.h"
#include "grpcpp/grpcpp.h"
#include "openssl/crypto.h"
#include "agent/cli/agent_command.h"
#include "agent/cli/certs_command.h"
#include "agent/cli/check_config_command.h"
#include "agent/cli/config_command.h"
#include "agent/cli/failover_command.h"
#include "agent/cli/probe_command.h"
#include "agent/cli/reload_command.h"
#include "agent/cli/sessions_command.h"
#include "agent/cli/status_command.h"
#include "agent/cli/witness_command.h"

namespace {

// grpc_health_probe (Go's flag package) takes long flags with one dash
// (-addr=host:port); they are rewritten to the double-dash form for
// `cloudha probe`, so scripts written for it work unchanged.
std::vector<std::string> NormalizeProbeFlags(std::vector<std::string> args) {
  // Only when probe is the subcommand (the first argument that is not an
  // option): `cloudha config set probe -x` keeps its -x.
  bool in_probe = false;
  for (std::string& arg : args) {
    if (!in_probe && !arg.empty() && arg[0] != '-') {
      if (arg != "probe") break;
      in_probe = true;
      continue;
    }
    if (in_probe && arg.size() > 2 && arg[0] == '-' && arg[1] != '-') arg = "-" + arg;
  }
  return args;
}

// `cloudha --version`: the first line is what help2man and scripts read.
std::string VersionText() {
  return absl::StrCat("cloudha ", cloudha::BuildVersion(), "\ncommit ", cloudha::BuildCommit(),
                      "\nbuilt ", cloudha::BuildDate(), "\ngRPC ", grpc::Version(),
                      ", protobuf ",
                      google::protobuf::internal::VersionString(GOOGLE_PROTOBUF_VERSION), ", ",
                      OpenSSL_version(OPENSSL_VERSION));
}

void AddAdminTarget(CLI::App* command, cloudha::AdminTarget* target) {
  command->add_option("--config", target->config, "agent configuration file (finds the socket)");
  command->add_option("--socket", target->socket, "the agent's admin socket")
      ->excludes(command->get_option("--config"));
}

// The `cloudha config` subcommands. They all fill one ConfigOptions;
// import's "[PREFIX] FILE" goes to `import_args` (one or two words).
struct ConfigCommands {
  CLI::App* get;
  CLI::App* set;
  CLI::App* remove;
  CLI::App* list;
  CLI::App* watch;
  CLI::App* history;
  CLI::App* export_;
  CLI::App* import;
  CLI::App* diff;
  CLI::App* checksum;
};

ConfigCommands AddConfigCommands(CLI::App* app, cloudha::ConfigOptions* options,
                                 std::vector<std::string>* import_args) {
  CLI::App* config = app->add_subcommand("config", "the replicated config store");
  config->require_subcommand(1);
  ConfigCommands c;
  c.get = config->add_subcommand("get", "print the value of PATH");
  c.get->add_option("path", options->path, "PATH")->required();
  c.get->add_flag("--json", options->json, "print {\"path\", \"value\", \"revision\"}");

  c.set = config->add_subcommand(
      "set", "write PATH (a VALUE that starts with - goes after --: set PATH -- -x)");
  c.set->add_option("path", options->path, "PATH")->required();
  c.set->add_option("value", options->value, "VALUE, or - to read standard input")->required();

  c.remove = config->add_subcommand("delete", "delete PATH, or with --recursive a subtree");
  c.remove->add_option("path", options->path, "PATH, or PREFIX with --recursive")->required();
  c.remove->add_flag("-r,--recursive", options->recursive, "delete PREFIX and every path below it");

  c.list = config->add_subcommand(
      "list", "\"path = value\" lines (values JSON-quoted when needed, e.g. with a newline)");
  c.list->add_option("prefix", options->path, "PREFIX (default: everything)");
  c.list->add_flag("--json", options->json, "print a JSON array");

  c.watch = config->add_subcommand(
      "watch", "print each change below PREFIX as it commits, until Ctrl-C, --count or --for");
  c.watch->add_option("prefix", options->path, "PREFIX (default: everything)");
  c.watch->add_option("--count", options->count, "stop after N commits");
  c.watch->add_option("--for", options->for_s, "stop after SECONDS")
      ->check(CLI::Range(0.0, 31536000.0));

  c.history = config->add_subcommand("history", "the last changes below PREFIX, newest first");
  c.history->add_option("prefix", options->path, "PREFIX (default: everything)");
  c.history->add_option("--limit", options->limit, "at most N changes (the store keeps 1000)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();

  c.export_ = config->add_subcommand("export", "the subtree below PREFIX as a nested JSON object");
  c.export_->add_option("prefix", options->path, "PREFIX (default: everything)");
  c.export_->add_option("-o,--output", options->output, "write FILE (mode 0600) instead of stdout");

  c.import = config->add_subcommand(
      "import", "write a JSON object (export's form) below PREFIX in one commit; paths below "
                "PREFIX that the file lacks are deleted unless --merge");
  c.import->add_option("args", *import_args, "[PREFIX] FILE (- reads standard input)")
      ->required()
      ->expected(1, 2);
  c.import->add_flag("--merge", options->merge, "keep paths below PREFIX that the file lacks");

  c.diff = config->add_subcommand(
      "diff", "compare with the peers; exit 0 identical, 1 different or not compared");
  c.diff->add_option("prefix", options->path, "PREFIX (default: everything)");
  c.diff->add_option("--peer", options->peer, "only this peer (default: every peer)");

  c.checksum = config->add_subcommand(
      "checksum", "checksums of PREFIX and its children; --cluster compares every node");
  c.checksum->add_option("prefix", options->path, "PREFIX (default: the root)");
  c.checksum->add_flag("--cluster", options->cluster,
                       "every node; exit 1 when some subtree differs or a node cannot be asked");

  for (CLI::App* command : {c.get, c.set, c.remove, c.list, c.watch, c.history, c.export_,
                            c.import, c.diff, c.checksum}) {
    AddAdminTarget(command, &options->target);
  }
  return c;
}

}  // namespace

namespace {

int Dispatch(int argc, char** argv) {
  CLI::App app{"cloudha: high-availability cluster agent for VMs across availability zones"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "help for every subcommand");
  app.set_version_flag("-V,--version", VersionText,
                       "print the version, commit, build date and library versions");

  std::string config_path;
  CLI::App* agent = app.add_subcommand("agent", "run the agent");
  agent->add_option("--config", config_path, "configuration file (.textproto, .txtpb, .json)")
      ->required();

  std::string witness_path;
  CLI::App* witness = app.add_subcommand(
      "witness", "run a split-brain arbiter for a third zone (docs/arbiter.md)");
  witness->add_option("--config", witness_path, "witness configuration file")->required();

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
  certs_init->add_flag("--force", certs_options.force,
                       "replace existing node files (the CA is kept: see --new-ca)");
  certs_init->add_flag("--new-ca", certs_options.new_ca,
                       "make a new CA even if OUT holds one (with --force: replace it; every "
                       "node then needs a new certificate)");
  certs_init->add_option("--ca", certs_options.ca,
                         "the CA that signs: current (OUT/ca.crt) or next (OUT/ca-next.crt, "
                         "during a CA rotation)")
      ->capture_default_str();

  cloudha::CertsRotateOptions rotate_options;
  CLI::App* certs_rotate = certs->add_subcommand(
      "rotate-ca", "start a CA rotation: a new CA beside the current one (OUT/ca-next.crt) and "
                   "the bundle of both for every node's tls.ca_file (OUT/ca-bundle.crt)");
  certs_rotate->add_option("--out", rotate_options.out, "the folder of `certs init`")
      ->required();
  certs_rotate->add_option("--days", rotate_options.days, "validity of the new CA in days")
      ->capture_default_str();
  certs_rotate->add_flag("--force", rotate_options.force,
                         "replace the files of a rotation already under way");

  cloudha::CertsRetireOptions retire_options;
  CLI::App* certs_retire = certs->add_subcommand(
      "retire-ca", "end a CA rotation: the old CA moves to OUT/retired-ca-FINGERPRINT/, the new "
                   "one becomes OUT/ca.crt (refused while a node certificate in OUT is the old "
                   "CA's)");
  certs_retire->add_option("--out", retire_options.out, "the folder of `certs init`")
      ->required();
  certs_retire->add_flag("--force", retire_options.force,
                         "retire even while node certificates in OUT are the old CA's");

  cloudha::AdminTarget status_target;
  bool status_json = false;
  CLI::App* status = app.add_subcommand("status", "the node and its peers");
  AddAdminTarget(status, &status_target);
  status->add_flag("--json", status_json, "print JSON");

  cloudha::AdminTarget failover_target;
  std::string failover_to;
  int failover_timeout_s = 10;
  cloudha::AdminTarget reload_target;
  CLI::App* reload = app.add_subcommand(
      "reload", "reread the configuration file (as SIGHUP): applies heartbeat, log, hooks, "
                "monitors and config_sync.exclude live, refuses a file that changes anything else");
  AddAdminTarget(reload, &reload_target);

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
      app.add_subcommand("events", "role, peer, path, monitor, hook and TLS events (last 1000)");
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
  cloudha::SessionsPublishOptions publish_options;
  CLI::App* sessions_publish = sessions->add_subcommand(
      "publish",
      "sessions into the primary's table, as a data plane publishes them: one "
      "cloudha.v1.Session per line in JSON, or {\"delete\": KEY}");
  AddAdminTarget(sessions_publish, &publish_options.target);
  sessions_publish->add_option(
      "FILE", publish_options.file,
      "the sessions, one JSON object per line (none or -: standard input)");

  cloudha::ConfigOptions config_options;
  std::vector<std::string> import_args;
  ConfigCommands config = AddConfigCommands(&app, &config_options, &import_args);

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
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    // Bad arguments exit 1, as grpc_health_probe's do.
    return 1;
  }

  if (agent->parsed()) return cloudha::RunAgent(config_path);
  if (witness->parsed()) return cloudha::RunWitness(witness_path);
  if (check->parsed()) return cloudha::RunCheckConfig(check_path);
  if (certs_init->parsed()) return cloudha::RunCertsInit(certs_options);
  if (certs_rotate->parsed()) return cloudha::RunCertsRotateCa(rotate_options);
  if (certs_retire->parsed()) return cloudha::RunCertsRetireCa(retire_options);
  if (status->parsed()) return cloudha::RunStatus(status_target, status_json);
  if (probe->parsed()) return cloudha::RunProbe(probe_options);
  if (reload->parsed()) return cloudha::RunReload(reload_target);
  if (failover->parsed()) {
    return cloudha::RunFailover(failover_target, failover_to, failover_timeout_s);
  }
  if (events->parsed()) return cloudha::RunEvents(events_target, events_follow, events_json);
  if (sessions_publish->parsed()) {
    // `cloudha sessions --socket S publish` names the agent before the word.
    if (publish_options.target.socket.empty() && publish_options.target.config.empty()) {
      publish_options.target = sessions_options.target;
    }
    return cloudha::RunSessionsPublish(publish_options);
  }
  if (sessions->parsed()) return cloudha::RunSessions(sessions_options);
  if (config.get->parsed()) return cloudha::RunConfigGet(config_options);
  if (config.set->parsed()) return cloudha::RunConfigSet(config_options);
  if (config.remove->parsed()) return cloudha::RunConfigDelete(config_options);
  if (config.list->parsed()) return cloudha::RunConfigList(config_options);
  if (config.watch->parsed()) return cloudha::RunConfigWatch(config_options);
  if (config.history->parsed()) return cloudha::RunConfigHistory(config_options);
  if (config.export_->parsed()) return cloudha::RunConfigExport(config_options);
  if (config.import->parsed()) {
    if (import_args.size() == 2) config_options.path = import_args[0];
    config_options.file = import_args.back();
    return cloudha::RunConfigImport(config_options);
  }
  if (config.diff->parsed()) return cloudha::RunConfigDiff(config_options);
  if (config.checksum->parsed()) return cloudha::RunConfigChecksum(config_options);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const int code = Dispatch(argc, argv);
  // Every channel, server and store of the command is closed by now, but
  // gRPC 1.51 does not join its threads: one may still be reconnecting (a
  // TLS handshake) while exit() runs OpenSSL's and the static destructors
  // under it (`cloudha probe` crashed about 1 exit in 15 when the server
  // refused its certificate). Flush and leave without them.
  std::fflush(nullptr);
  std::cout.flush();
  std::cerr.flush();
  _exit(code);
}
