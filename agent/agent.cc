#include "agent/agent.h"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/agent_config.h"
#include "agent/etcd_backend.h"
#include "agent/grpc_endpoints.h"
#include "agent/reload_plan.h"
#include "agent/witness_backend.h"
#include "base/build_info.h"
#include "base/command_runner.h"
#include "base/log.h"
#include "base/secure_file.h"

namespace cloudha {
namespace {

const char* ChangeEvent(Membership::Change::Kind kind) {
  switch (kind) {
    case Membership::Change::Kind::kPeerUp:
      return "peer_up";
    case Membership::Change::Kind::kPeerDown:
      return "peer_down";
    case Membership::Change::Kind::kPeerRestarted:
      return "peer_restarted";
    case Membership::Change::Kind::kPathUp:
      return "path_up";
    case Membership::Change::Kind::kPathDown:
      return "path_down";
  }
  return "peer_changed";
}

}  // namespace

absl::StatusOr<std::unique_ptr<Agent>> Agent::Create(v1::AgentConfig config, uint64_t boot_id,
                                                     Clock* clock) {
  absl::StatusOr<TlsMaterial> tls = LoadTlsMaterial(
      {config.tls().ca_file(), config.tls().cert_file(), config.tls().key_file()},
      clock->WallNow());
  if (!tls.ok()) return tls.status();
  if (absl::Status s = MakeDirectories(config.state_dir(), 0700); !s.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("state_dir: ", s.message()));
  }
  if (access(config.state_dir().c_str(), W_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("state_dir ", config.state_dir(), " is not writable: ", strerror(errno)));
  }
  absl::StatusOr<uint64_t> epoch = EpochStore(config.state_dir()).Load();
  if (!epoch.ok()) return epoch.status();
  // gRPC reads the checked material from the agent's own copy (see
  // crypto/reloadable_credentials.h), in the private state folder.
  absl::StatusOr<std::unique_ptr<ReloadableCredentials>> credentials =
      ReloadableCredentials::Create(absl::StrCat(config.state_dir(), "/tls"), *tls);
  if (!credentials.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("state_dir: ", credentials.status().message()));
  }
  std::unique_ptr<ArbiterBackend> arbiter;
  if (config.arbiter().has_etcd()) {
    absl::StatusOr<std::unique_ptr<EtcdBackend>> etcd =
        EtcdBackend::Create(config.arbiter().etcd(), config.cluster().name(), config.node().id());
    if (!etcd.ok()) return etcd.status();
    arbiter = *std::move(etcd);
  } else if (config.has_arbiter()) {
    arbiter = std::make_unique<WitnessBackend>(config, (*credentials)->channel_credentials());
  }
  return std::unique_ptr<Agent>(new Agent(std::move(config), *std::move(tls),
                                          *std::move(credentials), boot_id, *epoch,
                                          std::move(arbiter), clock));
}

Agent::Agent(v1::AgentConfig config, TlsMaterial tls,
             std::unique_ptr<ReloadableCredentials> credentials, uint64_t boot_id,
             uint64_t stored_epoch, std::unique_ptr<ArbiterBackend> arbiter, Clock* clock)
    : config_(std::move(config)),
      clock_(clock),
      credentials_(std::move(credentials)),
      tls_watcher_(
          TlsWatcher::Options{
              {config_.tls().ca_file(), config_.tls().cert_file(), config_.tls().key_file()},
              /*poll_interval=*/absl::Seconds(1),
              /*expiry_interval=*/absl::Hours(1),
              /*pick_up=*/2 * ReloadableCredentials::kRefreshInterval},
          std::move(tls), clock,
          [this](const TlsMaterial& material) { return credentials_->Install(material); },
          [this](const TlsWatcher::Notice& notice) {
            LogEvent(notice.level, notice.event, {{"message", notice.message}});
            Note("tls", notice.message, notice.fields);
          }),
      local_(config_, boot_id, clock->Now()),
      verifier_(config_),
      membership_(config_),
      metrics_(config_),
      sessions_(config_, credentials_->channel_credentials(), boot_id, clock,
                [this](const std::string& message) { Note("sessions", message); }),
      config_sync_(config_, credentials_->channel_credentials(), clock,
                   [this](const std::string& message) { Note("config", message); },
                   [this](const HookRunner::Attempt& run) {
                     metrics_.HookRan("config_apply", HookResultLabel(run.outcome), run.took);
                   }),
      peer_service_(&local_, &verifier_, &membership_, &sessions_, &config_sync_, &metrics_,
                    clock),
      admin_service_(this, &sessions_, &config_sync_, &metrics_),
      epoch_store_(config_.state_dir()),
      core_(config_, stored_epoch, clock->Now(), &membership_, &local_, this) {
  interval_ms_ = config_.heartbeat().interval_ms();
  lost_threshold_ = config_.heartbeat().lost_threshold();
  {
    absl::MutexLock lock(&monitors_mu_);
    monitors_ = MakeMonitors(config_);
  }
  {
    absl::MutexLock lock(&reload_mu_);
    current_ = config_;
  }
  // Set before any hello can arrive (the servers start later).
  membership_.SetNewsCallback([this] { Wake(); });
  auto on_attempt = [this](const HookRunner::Attempt& a) {
    std::string event = HookEventName(a.event);
    LogEvent(a.outcome.ok() ? LogLevel::kInfo : LogLevel::kWarn, "hook_result",
             {{"hook", event},
              {"command", a.command},
              {"attempt", a.attempt},
              {"result", a.outcome.summary},
              {"output", a.outcome.output.substr(0, 2000)}});
    Note("hook", absl::StrCat(event, " ", a.command, ": ", a.outcome.summary),
         {{"hook", event}, {"attempt", absl::StrCat(a.attempt)}});
    metrics_.HookRan(event, HookResultLabel(a.outcome), a.took);
  };
  // Role hooks and peer hooks run on runners of their own, so a slow
  // PEER_LOST hook never delays the TO_PRIMARY hooks of the failover.
  std::vector<v1::HookConfig> role_hooks;
  std::vector<v1::HookConfig> peer_hooks;
  SplitHooks(config_, &role_hooks, &peer_hooks);
  hooks_ = std::make_unique<HookRunner>(role_hooks, clock_, &RunCommand, on_attempt);
  peer_hooks_ = std::make_unique<HookRunner>(peer_hooks, clock_, &RunCommand, on_attempt);
  if (arbiter != nullptr) {
    ArbiterClient::Options options;
    options.ttl = absl::Milliseconds(config_.arbiter().lease_ttl_ms());
    options.max_clock_drift_ppm = config_.arbiter().max_clock_drift_ppm();
    options.keep_on_isolation = config_.arbiter().on_isolation() == v1::ArbiterConfig::KEEP;
    options.note = [this](const std::string& message) { Note("arbiter", message); };
    arbiter_ = std::make_unique<ArbiterClient>(options, std::move(arbiter), clock_,
                                               [this] { Wake(); });
  }
}

Agent::~Agent() { Shutdown(); }

std::shared_ptr<MonitorSet> Agent::MakeMonitors(const v1::AgentConfig& config) {
  std::vector<v1::MonitorConfig> monitor_configs(config.monitors().begin(),
                                                 config.monitors().end());
  std::vector<MonitorSet::Check> checks;
  for (const auto& m : monitor_configs) checks.push_back(MonitorSet::CheckFor(m));
  return std::make_shared<MonitorSet>(
      monitor_configs, checks, clock_, [this](const MonitorSet::Change& change) {
        LogEvent(change.passing ? LogLevel::kInfo : LogLevel::kWarn,
                 change.passing ? "monitor_passing" : "monitor_failing",
                 {{"monitor", change.monitor}, {"result", change.result}});
        Note("monitor",
             change.passing ? absl::StrCat(change.monitor, " passing")
                            : absl::StrCat(change.monitor, " failing: ", change.result),
             {{"monitor", change.monitor}, {"passing", change.passing ? "true" : "false"}});
      });
}

std::shared_ptr<MonitorSet> Agent::monitors() const {
  absl::MutexLock lock(&monitors_mu_);
  return monitors_;
}

absl::StatusOr<v1::ReloadResponse> Agent::Reload() {
  // A replaced monitor set stops after the lock is released: its checks may
  // take their timeout to end, and Shutdown waits for the lock.
  std::shared_ptr<MonitorSet> retired;
  absl::StatusOr<v1::ReloadResponse> result = ReloadLocked(&retired);
  if (retired != nullptr) retired->Stop();
  return result;
}

absl::StatusOr<v1::ReloadResponse> Agent::ReloadLocked(std::shared_ptr<MonitorSet>* retired) {
  absl::MutexLock lock(&reload_mu_);
  if (reload_closed_) return absl::UnavailableError("the agent is stopping");
  if (!reload_open_) return absl::UnavailableError("the agent is still starting; try again");
  if (config_file_.empty()) {
    return absl::FailedPreconditionError("this agent was not started from a configuration file");
  }
  // As SIGHUP always did: new certificate and key files are checked and used
  // for new connections, whatever the configuration file says.
  ReloadTls();
  LoadedConfig loaded = LoadAgentConfig(config_file_, clock_->WallNow());
  if (!loaded.problems.empty()) {
    std::vector<std::string> problems;
    for (const ConfigProblem& p : loaded.problems) problems.push_back(p.ToString());
    std::string reason = absl::StrCat(config_file_, " has ", problems.size(),
                                      " problem(s); nothing was changed: ",
                                      absl::StrJoin(problems, "; "));
    LogEvent(LogLevel::kError, "reload_refused", {{"file", config_file_}, {"reason", reason}});
    Note("reload", absl::StrCat("refused: ", reason));
    return absl::InvalidArgumentError(reason);
  }
  ReloadPlan plan = PlanReload(current_, loaded.config);
  if (!plan.refused.empty()) {
    std::string reason = absl::StrCat(
        "changing ", absl::StrJoin(plan.refused, ", "),
        " needs a restart (systemctl restart cloudha); nothing was changed, the agent runs on "
        "its configuration as before (live: ", absl::StrJoin(ReloadPlan::Live(), ", "), ")");
    LogEvent(LogLevel::kError, "reload_refused", {{"file", config_file_}, {"reason", reason}});
    Note("reload", absl::StrCat("refused: ", reason));
    return absl::FailedPreconditionError(reason);
  }
  const v1::AgentConfig& next = loaded.config;
  for (const std::string& section : plan.applied) {
    if (section == "log") {
      ConfigureLogging(ToLogFormat(next.log().format()), ToLogLevel(next.log().level()));
    } else if (section == "hooks") {
      std::vector<v1::HookConfig> role_hooks;
      std::vector<v1::HookConfig> peer_hooks;
      SplitHooks(next, &role_hooks, &peer_hooks);
      hooks_->SetHooks(std::move(role_hooks));
      peer_hooks_->SetHooks(std::move(peer_hooks));
    } else if (section == "monitors") {
      std::shared_ptr<MonitorSet> fresh = MakeMonitors(next);
      std::shared_ptr<MonitorSet> old = monitors();
      // Unchanged monitors go on where they were (passing or failing).
      fresh->AdoptStates(*old);
      fresh->Start();
      {
        absl::MutexLock monitors_lock(&monitors_mu_);
        monitors_ = std::move(fresh);
      }
      *retired = std::move(old);
      Wake();  // the role step sees the new penalty now
    } else if (section == "heartbeat") {
      const uint32_t interval_ms = next.heartbeat().interval_ms();
      const uint32_t threshold = next.heartbeat().lost_threshold();
      const absl::Duration interval = absl::Milliseconds(interval_ms);
      const absl::Duration lost_after = interval * static_cast<int>(threshold);
      // A longer loss window counts at once; a shorter one only once hellos
      // at the new pace can have come (the paths finish the sleep of the old
      // interval first), so no peer is counted lost in between.
      const absl::Duration old_interval = absl::Milliseconds(interval_ms_.load());
      membership_.SetLostAfter(lost_after, clock_->Now() + old_interval + lost_after);
      core_.SetHeartbeat(next);
      local_.SetHeartbeatInterval(interval_ms);
      for (auto& path : paths_) path->SetTimers(interval, lost_after);
      interval_ms_ = interval_ms;
      lost_threshold_ = threshold;
      Wake();
    } else if (section == "config_sync.exclude") {
      std::vector<std::string> patterns(next.config_sync().exclude().begin(),
                                        next.config_sync().exclude().end());
      // LoadAgentConfig checked the patterns.
      config_sync_.SetExclusions(patterns).IgnoreError();
    }
  }
  current_ = next;
  v1::ReloadResponse response;
  for (const std::string& section : plan.applied) response.add_applied(section);
  std::string applied = plan.applied.empty() ? "nothing new" : absl::StrJoin(plan.applied, ",");
  LogEvent(LogLevel::kInfo, "config_reloaded", {{"file", config_file_}, {"applied", applied}});
  Note("reload", absl::StrCat("reloaded ", config_file_, ": ", applied));
  return response;
}

absl::Status Agent::Start() {
  if (started_) return absl::FailedPreconditionError("agent already started");
  started_ = true;
  if (absl::Status s = StartReplication(); !s.ok()) return s;
  if (absl::Status s = OpenListeners(); !s.ok()) return s;
  PublishInitialHealth();
  CreateHelloPaths();
  StartThreads();
  {
    absl::MutexLock lock(&reload_mu_);
    reload_open_ = true;
  }
  health_.SetServing(kAgentService, true);
  LogEvent(LogLevel::kInfo, "agent_started",
           {{"node", local_.node_id()},
            {"cluster", local_.cluster()},
            {"group_id", local_.group_id()},
            {"listen", config_.listen()},
            {"admin_socket", config_.admin().socket()},
            {"health_listen", config_.health().listen()},
            {"boot_id", absl::StrCat(absl::Hex(local_.boot_id(), absl::kZeroPad16))},
            {"certificate_expires",
             absl::FormatTime("%Y-%m-%d", tls_watcher_.material().not_after,
                              absl::UTCTimeZone())}});
  return absl::OkStatus();
}

void Agent::ReloadTls() { tls_watcher_.ReloadNow(); }

absl::Status Agent::StartReplication() {
  if (absl::Status s = PrepareAdminSocket(config_.admin().socket()); !s.ok()) return s;
  if (absl::Status s = config_sync_.Start(); !s.ok()) return s;
  local_.SetHelloFiller([this](const std::string& peer, v1::Hello* hello) {
    config_sync_.FillHello(peer, hello);
  });
  return sessions_.Start();
}

absl::Status Agent::OpenListeners() {
  grpc::EnableDefaultHealthCheckService(true);
  absl::StatusOr<std::unique_ptr<grpc::Server>> peer =
      StartPeerServer(config_, credentials_->server_credentials(), &peer_service_);
  if (!peer.ok()) return peer.status();
  peer_server_ = std::move(*peer);
  absl::StatusOr<std::unique_ptr<grpc::Server>> admin =
      StartAdminServer(config_.admin().socket(), &admin_service_);
  if (!admin.ok()) {
    Shutdown();
    return admin.status();
  }
  admin_server_ = std::move(*admin);
  if (!config_.health().listen().empty()) {
    health_fallback_ = NewHealthOnlyFallback();
    absl::StatusOr<std::unique_ptr<grpc::Server>> health =
        StartHealthServer(config_.health().listen(), health_fallback_.get());
    if (!health.ok()) {
      Shutdown();
      return health.status();
    }
    health_server_ = std::move(*health);
  }
  if (!config_.health().http_listen().empty()) {
    absl::StatusOr<std::unique_ptr<HttpProbe>> http =
        HttpProbe::Start(config_.health().http_listen(), [this] { return ProbeState(); });
    if (!http.ok()) {
      Shutdown();
      return absl::Status(http.status().code(),
                          absl::StrCat("health.http_listen: ", http.status().message()));
    }
    http_probe_ = std::move(*http);
  }
  if (!config_.metrics().listen().empty()) {
    absl::StatusOr<std::unique_ptr<HttpServer>> metrics = HttpServer::Start(
        config_.metrics().listen(), 2, [this](const std::string& method, const std::string& path) {
          if (path != "/metrics") {
            return HttpReply{404, "text/plain; charset=utf-8",
                             "not found: the only path is /metrics\n"};
          }
          if (method != "GET" && method != "HEAD") {
            return HttpReply{405, "text/plain; charset=utf-8", "only GET and HEAD\n"};
          }
          return HttpReply{200, kMetricsContentType, metrics_.Scrape(Status(), clock_->WallNow())};
        });
    if (!metrics.ok()) {
      Shutdown();
      return absl::Status(metrics.status().code(),
                          absl::StrCat("metrics.listen: ", metrics.status().message()));
    }
    metrics_server_ = std::move(*metrics);
    metrics_port_ = metrics_server_->port();
  }
  if (!config_.health().tcp_primary_listen().empty()) {
    absl::StatusOr<std::unique_ptr<TcpPrimaryListener>> tcp = TcpPrimaryListener::Create(
        config_.health().tcp_primary_listen(), [this](const absl::Status& s) {
          LogEvent(LogLevel::kError, "probe_listener_failed",
                   {{"listen", config_.health().tcp_primary_listen()},
                    {"reason", std::string(s.message())}});
        });
    if (!tcp.ok()) {
      Shutdown();
      return absl::Status(tcp.status().code(),
                          absl::StrCat("health.tcp_primary_listen: ", tcp.status().message()));
    }
    tcp_primary_ = std::move(*tcp);
  }
  return absl::OkStatus();
}

ProbeView Agent::ProbeState() {
  ProbeView probe;
  probe.alive = health_.Serving(kAgentService);
  probe.primary = health_.Serving(kPrimaryService);
  probe.secondary = health_.Serving(kSecondaryService);
  NodeCore::View view = core_.view(clock_->Now());
  probe.line = absl::StrCat(absl::AsciiStrToLower(v1::Role_Name(view.role)), " epoch ", view.epoch,
                            " node ", local_.node_id());
  if (view.role == v1::SECONDARY && !view.primary.empty()) {
    absl::StrAppend(&probe.line, " primary ", view.primary);
  }
  if (!probe.alive) absl::StrAppend(&probe.line, " (not serving)");
  return probe;
}

void Agent::PublishInitialHealth() {
  // gRPC starts every health service SERVING; "" turns SERVING only at the
  // end of Start().
  health_.SetServing(kAgentService, false);
  for (grpc::Server* server : {peer_server_.get(), admin_server_.get(), health_server_.get()}) {
    if (server != nullptr) health_.Attach(server->GetHealthCheckService());
  }
  // Known from the start, so that Check and Watch say NOT_SERVING rather
  // than "unknown service" until the role is decided.
  health_.SetServing(kPrimaryService, false);
  health_.SetServing(kSecondaryService, false);
  core_.Publish(clock_->Now());
}

void Agent::CreateHelloPaths() {
  absl::Duration interval = absl::Milliseconds(config_.heartbeat().interval_ms());
  std::shared_ptr<grpc::ChannelCredentials> credentials = credentials_->channel_credentials();
  for (const auto& peer : config_.peers()) {
    for (int i = 0; i < peer.addresses_size(); ++i) {
      HelloPathOptions options;
      options.peer = peer.id();
      options.index = i;
      options.address = peer.addresses(i);
      options.interval = interval;
      options.lost_after = interval * config_.heartbeat().lost_threshold();
      options.max_backoff = HelloMaxBackoff(config_);
      options.metrics = &metrics_;
      paths_.push_back(std::make_unique<HelloPath>(
          options, CreateHelloChannel(config_, peer, i, credentials), &local_, &verifier_,
          &membership_, clock_));
    }
  }
}

void Agent::StartThreads() {
  hooks_->Start();
  peer_hooks_->Start();
  monitors()->Start();
  for (auto& path : paths_) path->Start();
  if (arbiter_ != nullptr) arbiter_->Start();
  tls_watcher_.Start();
  ticker_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "role");
    Tick();
  });
}

void Agent::Note(const std::string& kind, const std::string& message,
                 std::map<std::string, std::string> fields) {
  events_.Add(clock_->WallNow(), kind, message, std::move(fields));
}

void Agent::OnMembershipChange(const Membership::Change& change) {
  using Kind = Membership::Change::Kind;
  bool down = change.kind == Kind::kPeerDown || change.kind == Kind::kPathDown;
  const std::string event = ChangeEvent(change.kind);
  if (change.path >= 0) {
    LogEvent(down ? LogLevel::kWarn : LogLevel::kInfo, event,
             {{"peer", change.peer}, {"path", change.path}, {"address", change.address}});
    Note("path",
         absl::StrCat(change.peer, " path ", change.path, " (", change.address, ") ",
                      down ? "down" : "up"),
         {{"peer", change.peer}, {"path", absl::StrCat(change.path)}});
    return;
  }
  LogEvent(down ? LogLevel::kWarn : LogLevel::kInfo, event, {{"peer", change.peer}});
  // "peer_up" -> "b up".
  Note("peer", absl::StrCat(change.peer, " ", event.substr(5)), {{"peer", change.peer}});
  if (change.kind == Kind::kPeerDown || change.kind == Kind::kPeerUp) {
    RoleState state = local_.state();
    peer_hooks_->Fire(change.kind == Kind::kPeerDown ? v1::HookConfig::PEER_LOST
                                                : v1::HookConfig::PEER_FOUND,
                 {local_.node_id(), v1::Role_Name(state.role), v1::Role_Name(state.role),
                  state.epoch, change.peer,
                  absl::StrCat("peer ", change.peer, down ? " lost" : " found")});
  }
}

uint32_t Agent::MonitorPenalty() { return monitors()->penalty(); }

bool Agent::AllMonitorsFailing() { return monitors()->all_failing(); }

bool Agent::InSync() { return sessions_.in_sync() && config_sync_.in_sync(); }

absl::Status Agent::StoreEpoch(uint64_t epoch) { return epoch_store_.Store(epoch); }

ArbiterInput Agent::Arbiter(absl::Time now) {
  return arbiter_ == nullptr ? ArbiterInput{} : arbiter_->Input(now);
}

void Agent::WantLease(bool want, uint64_t epoch) {
  if (arbiter_ != nullptr) arbiter_->SetWanted(want, epoch);
}

void Agent::FollowRole(v1::Role role, uint64_t epoch, const std::string& primary,
                       const std::vector<Membership::LivePeer>& live) {
  if (sessions_.enabled()) {
    std::vector<std::string> ids;
    for (const Membership::LivePeer& peer : live) ids.push_back(peer.id);
    sessions_.Update(role, epoch, primary, ids);
    local_.SetSessionPosition(sessions_.position());
  }
  std::vector<ConfigPeerView> views;
  for (const Membership::LivePeer& peer : live) {
    views.push_back({peer.id, peer.hello.config_revision(), peer.hello.config_root_checksum(),
                     peer.hello.exclusion_digest()});
  }
  config_sync_.Update(role, epoch, primary, views);
}

void Agent::SetServing(bool primary, bool secondary) {
  health_.SetServing(kPrimaryService, primary);
  health_.SetServing(kSecondaryService, secondary);
  // What health says, not what was asked: nothing after Shutdown.
  if (tcp_primary_ != nullptr) tcp_primary_->SetOpen(health_.Serving(kPrimaryService));
}

void Agent::OnRoleChanged(const RoleChange& change, const RoleMachine& role) {
  metrics_.RoleChanged(change.to, change.cause);
  LogEvent(change.to == v1::FAULT ? LogLevel::kError : LogLevel::kInfo, "role_changed",
           {{"from", v1::Role_Name(change.from)},
            {"to", v1::Role_Name(change.to)},
            {"epoch", role.hello_epoch()},
            {"primary", role.primary()},
            {"selected_by", role.selected_by()},
            {"reason", change.reason}});
  Note("role",
       absl::StrCat(v1::Role_Name(change.from), " -> ", v1::Role_Name(change.to), ": ",
                    change.reason),
       {{"from", v1::Role_Name(change.from)},
        {"to", v1::Role_Name(change.to)},
        {"epoch", absl::StrCat(role.hello_epoch())}});
  HookContext context{local_.node_id(),
                      v1::Role_Name(change.to),
                      v1::Role_Name(change.from),
                      role.hello_epoch(),
                      role.primary() == local_.node_id() ? "" : role.primary(),
                      change.reason,
                      arbiter_ == nullptr ? 0 : arbiter_->fence(clock_->Now())};
  switch (change.to) {
    case v1::PRIMARY: {
      uint64_t epoch = change.epoch;
      hooks_->Fire(
          v1::HookConfig::TO_PRIMARY, context,
          [this, epoch](bool ok, const std::string& detail) {
            OnPrimaryHooksDone(epoch, ok, detail);
          },
          // A promotion already left (stepped down, re-asserted) must not
          // claim resources late.
          [this, epoch] { return core_.IsPrimaryAt(epoch); });
      break;
    }
    case v1::SECONDARY:
      hooks_->Fire(v1::HookConfig::TO_SECONDARY, context);
      break;
    case v1::FAULT:
      hooks_->Fire(v1::HookConfig::TO_FAULT, context);
      break;
    default:
      break;
  }
}

void Agent::OnPrimaryHooksDone(uint64_t epoch, bool ok, const std::string& detail) {
  if (stop_.HasBeenNotified()) return;  // cut short by the shutdown
  if (core_.OnPrimaryHooksDone(epoch, ok, detail, clock_->Now())) {
    Note("role", absl::StrCat("primary ready at epoch ", epoch),
         {{"epoch", absl::StrCat(epoch)}});
  }
}

void Agent::Wake() {
  absl::MutexLock lock(&wake_mu_);
  if (wake_ != nullptr && !wake_->HasBeenNotified()) wake_->Notify();
}

void Agent::Tick() {
  absl::Time next = clock_->Now();
  // What the role thread sleeps on. A fresh one is installed before each
  // step, so a Wake() that comes while the step runs is kept for the next
  // sleep rather than lost.
  auto fresh_wake = [this] {
    auto wake = std::make_shared<absl::Notification>();
    absl::MutexLock lock(&wake_mu_);
    wake_ = wake;
    return wake;
  };
  std::shared_ptr<absl::Notification> wake = fresh_wake();
  while (!stop_.HasBeenNotified()) {
    // Sleeps until the next tick, or less when a peer's hello brings news
    // (a handover naming this node, a new primary), so roles react within
    // a round trip rather than an interval.
    clock_->SleepUntil(next, *wake);
    if (stop_.HasBeenNotified()) break;
    wake = fresh_wake();
    absl::Time now = clock_->Now();
    core_.Step(now);
    // Read each round: a reload may change the timers.
    const absl::Duration interval = absl::Milliseconds(interval_ms_.load());
    if (next <= now) next += interval;
    if (next <= now) next = now + interval;
    // The service manager hears from this thread while it runs, and only
    // then: a role thread that hangs stops the watchdog.
    next = std::min(next, NotifyServiceManager(now));
    next = std::min(next, RecheckPrimaryHooks(now));
    // Wake when a peer would expire if that comes before the next tick, so
    // detection takes interval * threshold, not up to one interval more.
    if (std::optional<absl::Time> expiry = membership_.NextExpiry(); expiry.has_value()) {
      next = std::min(next, std::max(*expiry, now + absl::Milliseconds(1)));
    }
    // And when this node's arbiter lease stops counting: a primary steps
    // down then, whatever the arbiter client's thread is busy with.
    if (arbiter_ != nullptr) {
      absl::Time held_until = arbiter_->held_until();
      if (held_until > now) next = std::min(next, held_until);
    }
  }
}

absl::Time Agent::RecheckPrimaryHooks(absl::Time now) {
  // Only a serving primary (its TO_PRIMARY hooks done) re-runs them; each
  // hook's first re-run is recheck_s after the promotion was ready, the
  // next recheck_s after the check that finds the last one finished.
  NodeCore::View view = core_.view(now);
  if (view.role != v1::PRIMARY || !view.primary_ready || !health_.Serving(kPrimaryService)) {
    recheck_.clear();
    return absl::InfiniteFuture();
  }
  if (view.epoch != recheck_epoch_) {
    recheck_.clear();
    recheck_epoch_ = view.epoch;
  }
  std::map<std::vector<std::string>, Recheck> kept;
  absl::Time next = absl::InfiniteFuture();
  std::shared_ptr<const std::vector<v1::HookConfig>> hooks = hooks_->Hooks();
  for (const v1::HookConfig& hook : *hooks) {
    if (hook.on() != v1::HookConfig::TO_PRIMARY || hook.recheck_s() == 0) continue;
    std::vector<std::string> argv(hook.command().begin(), hook.command().end());
    absl::Duration every = absl::Seconds(hook.recheck_s());
    Recheck r;
    auto found = recheck_.find(argv);
    // New, or its period changed by a reload: counted from now.
    if (found == recheck_.end() || found->second.every != every) {
      r = Recheck{every, now + every, std::make_shared<std::atomic<bool>>(false)};
    } else {
      r = found->second;
    }
    if (r.due <= now && !r.running->load()) {
      uint64_t epoch = view.epoch;
      std::string command = absl::StrJoin(argv, " ");
      HookContext context{local_.node_id(), "PRIMARY", "PRIMARY", epoch, "",
                          "periodic re-check",
                          arbiter_ == nullptr ? 0 : arbiter_->fence(now)};
      r.running->store(true);
      hooks_->FireCommand(
          hook, {}, HookEnvironment(v1::HookConfig::TO_PRIMARY, context),
          [this, command, epoch, running = r.running](bool ok, const std::string& detail) {
            running->store(false);
            // A run skipped or cut short because the node stepped down or
            // is stopping is not a failure of the hook.
            if (!ok && !stop_.HasBeenNotified() && core_.IsPrimaryAt(epoch)) {
              LogEvent(LogLevel::kWarn, "hook_recheck_failed",
                       {{"command", command}, {"epoch", epoch}, {"detail", detail}});
            }
          },
          // Not for a promotion already left, nor once the agent stops (its
          // arbiter lease is given up then).
          [this, epoch] { return !stop_.HasBeenNotified() && core_.IsPrimaryAt(epoch); });
      r.due = now + every;
    }
    // While a run is in flight, look again a tick later.
    next = std::min(next, r.running->load() ? now + absl::Seconds(1) : r.due);
    kept.emplace(std::move(argv), r);
  }
  // Hooks a reload removed are forgotten.
  recheck_ = std::move(kept);
  return next;
}

absl::Time Agent::NotifyServiceManager(absl::Time now) {
  if (notifier_ == nullptr) return absl::InfiniteFuture();
  NodeCore::View view = core_.view(now);
  if (view.role == v1::STARTING || stopping_notified_) {
    // Not ready yet (listeners open, no decision made), or stopping: the
    // manager's status says "stopping" until the end.
  } else {
    size_t up = membership_.Live(now).size();
    std::string status =
        view.role == v1::PRIMARY
            ? absl::StrCat("PRIMARY at epoch ", view.epoch, view.primary_ready ? "" : ", hooks running")
        : view.primary.empty()
            ? absl::StrCat(v1::Role_Name(view.role), ", no primary known")
            : absl::StrCat(v1::Role_Name(view.role), " following ", view.primary, " at epoch ",
                           view.known_epoch, InSync() ? ", in sync" : ", syncing");
    absl::StrAppend(&status, "; ", up, " of ", config_.peers_size(), " peers up");
    if (!ready_sent_) {
      notifier_->Ready(status);
      ready_sent_ = true;
      status_sent_ = status;
      LogEvent(LogLevel::kInfo, "ready", {{"status", status}});
    } else if (status != status_sent_) {
      notifier_->Status(status);
      status_sent_ = status;
    }
  }
  absl::Duration timeout = notifier_->watchdog_timeout();
  if (timeout <= absl::ZeroDuration()) return absl::InfiniteFuture();
  // At least twice per timeout, as sd_watchdog_enabled(3) asks.
  if (now >= next_watchdog_) {
    notifier_->Watchdog();
    next_watchdog_ = now + timeout / 4;
  }
  return next_watchdog_;
}

void Agent::HandOverBeforeStopping() {
  if (core_.view(clock_->Now()).role != v1::PRIMARY) return;
  // As long as the peer would take to notice the loss, but at most 5 s.
  absl::Duration wait = std::min(
      absl::Seconds(5),
      absl::Milliseconds(interval_ms_.load()) * static_cast<int>(lost_threshold_.load()));
  absl::Time deadline = clock_->Now() + wait;
  // A peer that is up but not eligible yet (its hello saying it finished
  // its resync is on the way) gets the rest of the wait, as for an
  // operator's failover; with no such peer there is no one to wait for.
  WaitForEligiblePeer("", deadline);
  absl::StatusOr<v1::FailoverResponse> done =
      HandOver("", std::max(deadline - clock_->Now(), absl::Milliseconds(interval_ms_.load())),
               /*must_replicate=*/false);
  if (done.ok()) {
    LogEvent(LogLevel::kInfo, "handed_over_on_stop",
             {{"new_primary", done->new_primary()}, {"epoch", done->epoch()}});
  } else {
    LogEvent(LogLevel::kWarn, "no_handover_on_stop", {{"reason", done.status().message()}});
  }
}

absl::StatusOr<v1::FailoverResponse> Agent::Failover(const std::string& to,
                                                     absl::Duration timeout) {
  // An operator who fails over twice in a row finds the old primary still
  // resyncing: it is waited for (within the timeout), not refused.
  absl::Time deadline = clock_->Now() + timeout;
  WaitForEligiblePeer(to, deadline);
  return HandOver(to, std::max(deadline - clock_->Now(), absl::Seconds(1)),
                  /*must_replicate=*/true);
}

void Agent::WaitForEligiblePeer(const std::string& to, absl::Time deadline) {
  while (clock_->Now() < deadline) {
    // Only a primary hands over; anything else is refused at once.
    NodeCore::View self = core_.view(clock_->Now());
    if (self.role != v1::PRIMARY) return;
    bool eligible = false;
    bool soon = false;
    for (const Membership::LivePeer& live : membership_.Live(clock_->Now())) {
      if (!to.empty() && live.id != to) continue;
      const v1::Hello& h = live.hello;
      if (h.role() == v1::SECONDARY && h.sync_state() != v1::SYNCING) eligible = true;
      // Resyncing, starting, or a hello from before its handover to this
      // node (primary at an older epoch): eligible soon.
      if ((h.role() == v1::SECONDARY && h.sync_state() == v1::SYNCING) ||
          h.role() == v1::STARTING || (h.role() == v1::PRIMARY && h.epoch() < self.epoch)) {
        soon = true;
      }
    }
    if (eligible || !soon) return;
    if (!clock_->SleepUntil(clock_->Now() + absl::Milliseconds(20), stop_)) return;
  }
}

absl::StatusOr<v1::FailoverResponse> Agent::HandOver(const std::string& to,
                                                     absl::Duration timeout,
                                                     bool must_replicate) {
  std::string target;
  // Config writes pause, and what was acknowledged reaches the secondaries
  // first. An operator's handover is refused if it does not within 2 s (the
  // new primary would lack writes this one acknowledged); a stopping agent
  // hands over anyway.
  config_sync_.BeginHandover();
  // The named target's stream, or every secondary's when the role machine
  // picks the target.
  if (!config_sync_.WaitReplicated(std::min(timeout, absl::Seconds(2)), to)) {
    LogEvent(LogLevel::kWarn, "config_not_replicated_before_handover",
             {{"reason", "a secondary had not applied the last commit"},
              {"handing_over", must_replicate ? "no" : "yes"}});
    if (must_replicate) {
      config_sync_.EndHandover();
      return absl::UnavailableError(
          "a secondary has not applied this primary's last config commit within 2s (see "
          "`cloudha status`: its config stream); nothing was handed over, try again");
    }
  }
  {
    // Demoted on success: writes are refused as on any secondary.
    absl::StatusOr<std::string> handed_to = core_.RequestHandover(to, clock_->Now());
    config_sync_.EndHandover();
    if (!handed_to.ok()) return handed_to.status();
    target = *handed_to;
  }
  absl::Time deadline = clock_->Now() + timeout;
  while (clock_->Now() < deadline) {
    for (const Membership::LivePeer& live : membership_.Live(clock_->Now())) {
      if (live.id == target && live.hello.role() == v1::PRIMARY) {
        v1::FailoverResponse response;
        response.set_new_primary(target);
        response.set_epoch(live.hello.epoch());
        return response;
      }
    }
    if (!clock_->SleepUntil(clock_->Now() + absl::Milliseconds(20), stop_)) break;
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "handed the role to ", target, ", but it is not primary after ",
      absl::FormatDuration(timeout), "; the cluster elects without it if it does not"));
}

std::vector<v1::Event> Agent::Events(uint64_t after, uint64_t* last) {
  return events_.Since(after, last);
}

bool Agent::WaitForEvents(uint64_t after, absl::Duration timeout) {
  if (stop_.HasBeenNotified()) return false;
  return events_.WaitForNew(after, timeout);
}

bool Agent::Stopping() { return stop_.HasBeenNotified(); }

void Agent::Shutdown() {
  if (!started_ || shut_down_) return;
  shut_down_ = true;
  {
    absl::MutexLock lock(&reload_mu_);
    reload_closed_ = true;
  }
  stopping_notified_ = true;  // the role thread's STATUS= lines end here
  if (notifier_ != nullptr) notifier_->Stopping();
  HandOverBeforeStopping();
  // Probes and load balancers see NOT_SERVING before anything stops.
  health_.Shutdown();
  if (tcp_primary_ != nullptr) tcp_primary_->Close();
  stop_.Notify();
  Wake();
  if (ticker_.joinable()) ticker_.join();
  tls_watcher_.Stop();
  // A lease still held is given up: this node serves nothing any more.
  if (arbiter_ != nullptr) arbiter_->Stop();
  sessions_.Stop();
  config_sync_.Stop();
  // Peers stop hearing from this node now, not after the hooks are done.
  for (auto& path : paths_) path->RequestStop();
  auto now = std::chrono::system_clock::now();
  if (peer_server_ != nullptr) peer_server_->Shutdown(now);
  // Release hooks (TO_SECONDARY of the handover) get a few seconds.
  hooks_->Stop(absl::Seconds(5));
  peer_hooks_->Stop();
  monitors()->Stop();
  for (auto& path : paths_) path->Stop();
  for (grpc::Server* server : {admin_server_.get(), health_server_.get()}) {
    if (server != nullptr) server->Shutdown(now);
  }
  if (admin_server_ != nullptr) unlink(config_.admin().socket().c_str());
  // Their threads ask the role logic and health: stopped before either goes.
  http_probe_.reset();
  metrics_server_.reset();
  tcp_primary_.reset();
  LogEvent(LogLevel::kInfo, "agent_stopped", {{"node", local_.node_id()}});
}

v1::StatusResponse Agent::Status() {
  absl::Time now = clock_->Now();
  v1::StatusResponse status;
  status.set_node_id(local_.node_id());
  status.set_cluster(local_.cluster());
  status.set_group_id(local_.group_id());
  status.set_uptime_ms(absl::ToInt64Milliseconds(now - local_.started()));
  status.set_boot_id(local_.boot_id());
  status.set_version(BuildVersionLine());
  status.set_listen(config_.listen());
  if (int port = metrics_port_.load(); port != 0) {
    // HOST:PORT or [V6]:PORT as configured, with the port it bound.
    const std::string& listen = config_.metrics().listen();
    status.set_metrics_listen(absl::StrCat(listen.substr(0, listen.rfind(':') + 1), port));
  }
  status.set_heartbeat_interval_ms(interval_ms_.load());
  status.set_lost_threshold(lost_threshold_.load());
  status.set_priority(local_.priority());
  for (v1::PeerStatus& peer : membership_.Status(now)) *status.add_peers() = std::move(peer);
  for (v1::MonitorStatus& m : monitors()->Status(now)) *status.add_monitors() = std::move(m);
  // Before the role lock: never holds up the role thread.
  config_sync_.FillStatus(&status);
  NodeCore::View role = core_.view(now);
  status.set_role(role.role);
  status.set_epoch(role.epoch);
  status.set_selected_by(role.selected_by);
  status.set_health_penalty(role.health_penalty);
  status.set_role_reason(role.reason);
  status.set_role_age_ms(absl::ToInt64Milliseconds(now - role.role_since));
  status.set_primary(role.primary);
  status.set_sync_state(sessions_.in_sync() && config_sync_.in_sync() ? v1::IN_SYNC
                                                                    : v1::SYNCING);
  status.set_primary_ready(role.primary_ready);
  const std::string& primary = role.primary;
  uint64_t primary_position = 0;
  for (const Membership::LivePeer& live : membership_.Live(now)) {
    if (live.id == primary) primary_position = live.hello.session_position();
  }
  sessions_.FillStatus(primary_position, &status);
  if (arbiter_ != nullptr) {
    ArbiterClient::View a = arbiter_->view(now);
    v1::ArbiterStatus* out = status.mutable_arbiter();
    out->set_backend(a.kind);
    out->set_address(a.address);
    out->set_reachable(a.reachable);
    out->set_lease_held(a.held);
    out->set_lease_remaining_ms(absl::ToInt64Milliseconds(a.remaining));
    out->set_holder(a.holder);
    out->set_fence(a.fence);
    out->set_last_error(a.last_error);
    out->set_wanted(a.wanted);
    out->set_on_isolation(v1::ArbiterConfig::OnIsolation_Name(config_.arbiter().on_isolation()));
    out->set_lease_ttl_ms(config_.arbiter().lease_ttl_ms());
  }
  *status.mutable_tls() = tls_watcher_.Status();
  return status;
}

}  // namespace cloudha
