#include "agent/agent.h"

#include <netdb.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "agent/agent_config.h"
#include "base/command_runner.h"
#include "base/log.h"
#include "grpc/grpc.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"

namespace cloudha {
namespace {

// Largest gRPC message the peer and admin servers take.
constexpr int kMaxMessageBytes = 256 << 20;


// Names the reason a listener could not be opened: gRPC only says that it
// failed, so the bind is retried here to learn errno.
absl::Status ExplainBindFailure(const std::string& what, const std::string& address) {
  absl::StatusOr<HostPort> hp = ParseHostPort(what, address);
  if (!hp.ok()) return hp.status();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* result = nullptr;
  std::string port = absl::StrCat(hp->port);
  int rc = getaddrinfo(hp->host.c_str(), port.c_str(), &hints, &result);
  if (rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot listen on ", what, " ", address, ": ", gai_strerror(rc)));
  }
  std::string reason = "the address cannot be bound";
  for (addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) reason = strerror(errno);
    close(fd);
  }
  freeaddrinfo(result);
  return absl::UnavailableError(
      absl::StrCat("cannot listen on ", what, " ", address, ": ", reason));
}

absl::Status MakeDirs(const std::string& path, mode_t mode) {
  if (path.empty()) return absl::OkStatus();
  struct stat st;
  if (stat(path.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) {
      return absl::FailedPreconditionError(absl::StrCat(path, " exists and is not a folder"));
    }
    return absl::OkStatus();
  }
  size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    if (absl::Status s = MakeDirs(path.substr(0, slash), 0755); !s.ok()) return s;
  }
  if (mkdir(path.c_str(), mode) != 0 && errno != EEXIST) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create folder ", path, ": ", strerror(errno)));
  }
  return absl::OkStatus();
}

// The plaintext health listener registers no service of its own, but gRPC
// refuses to start a server without any; this one answers every method that
// is not grpc.health.v1 with UNIMPLEMENTED.
class RefuseUnknownMethods : public grpc::CallbackGenericService {
 public:
  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* /*context*/) override {
    class Refuse : public grpc::ServerGenericBidiReactor {
     public:
      Refuse() {
        Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                            "this listener serves only grpc.health.v1.Health"));
      }
      void OnDone() override { delete this; }
    };
    return new Refuse;
  }
};

// How often HTTP/2 pings a quiet connection and how long it waits for the
// answer: the time a lost peer takes to detect, but at least a second.
int KeepaliveMs(const v1::AgentConfig& c) {
  return std::max<int>(1000, c.heartbeat().interval_ms() * c.heartbeat().lost_threshold());
}

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
  if (absl::Status s = MakeDirs(config.state_dir(), 0700); !s.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("state_dir: ", s.message()));
  }
  if (access(config.state_dir().c_str(), W_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("state_dir ", config.state_dir(), " is not writable: ", strerror(errno)));
  }
  absl::StatusOr<uint64_t> epoch = EpochStore(config.state_dir()).Load();
  if (!epoch.ok()) return epoch.status();
  return std::unique_ptr<Agent>(
      new Agent(std::move(config), *std::move(tls), boot_id, *epoch, clock));
}

namespace {

RoleMachine::Options RoleOptions(const v1::AgentConfig& c) {
  RoleMachine::Options o;
  o.node_id = c.node().id();
  o.priority = c.node().priority();
  o.rules.override = c.election().override();
  o.rules.uptime_margin = absl::Seconds(c.election().uptime_margin_s());
  o.hello_holddown = absl::Seconds(c.election().hello_holddown_s());
  o.override_wait = absl::Seconds(c.election().override_wait_s());
  o.failover_hold = absl::Seconds(c.election().failover_hold_s());
  // A handover gets twice as long as detecting a lost peer, and at least 2 s.
  o.handover_timeout = std::max(
      absl::Seconds(2),
      absl::Milliseconds(c.heartbeat().interval_ms()) * c.heartbeat().lost_threshold() * 2);
  return o;
}

}  // namespace

Agent::Agent(v1::AgentConfig config, TlsMaterial tls, uint64_t boot_id, uint64_t stored_epoch,
             Clock* clock)
    : config_(std::move(config)),
      tls_(std::move(tls)),
      clock_(clock),
      local_(config_, boot_id, clock->Now()),
      verifier_(config_),
      membership_(config_),
      sessions_(config_, tls_, boot_id, clock,
                [this](const std::string& message) { Note("sessions", message); }),
      config_sync_(config_, tls_, clock,
                   [this](const std::string& message) { Note("config", message); }),
      peer_service_(&local_, &verifier_, &membership_, &sessions_, &config_sync_, clock),
      admin_service_(this, &sessions_, &config_sync_),
      epoch_store_(config_.state_dir()),
      role_(RoleOptions(config_), stored_epoch, clock->Now()),
      stored_epoch_(stored_epoch) {
  std::vector<v1::MonitorConfig> monitor_configs(config_.monitors().begin(),
                                                 config_.monitors().end());
  std::vector<MonitorSet::Check> checks;
  for (const auto& m : monitor_configs) checks.push_back(MonitorSet::CheckFor(m));
  monitors_ = std::make_unique<MonitorSet>(
      monitor_configs, checks, clock_, [this](const MonitorSet::Change& change) {
        LogEvent(change.passing ? LogLevel::kInfo : LogLevel::kWarn,
                 change.passing ? "monitor_passing" : "monitor_failing",
                 {{"monitor", change.monitor}, {"result", change.result}});
        Note("monitor",
             change.passing ? absl::StrCat(change.monitor, " passing")
                            : absl::StrCat(change.monitor, " failing: ", change.result),
             {{"monitor", change.monitor}, {"passing", change.passing ? "true" : "false"}});
      });
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
  };
  // Role hooks and peer hooks run on runners of their own, so a slow
  // PEER_LOST hook never delays the TO_PRIMARY hooks of the failover.
  std::vector<v1::HookConfig> role_hooks;
  std::vector<v1::HookConfig> peer_hooks;
  for (const v1::HookConfig& h : config_.hooks()) {
    bool peer = h.on() == v1::HookConfig::PEER_LOST || h.on() == v1::HookConfig::PEER_FOUND;
    (peer ? peer_hooks : role_hooks).push_back(h);
  }
  hooks_ = std::make_unique<HookRunner>(role_hooks, clock_, &RunCommand, on_attempt);
  peer_hooks_ = std::make_unique<HookRunner>(peer_hooks, clock_, &RunCommand, on_attempt);
}

Agent::~Agent() { Shutdown(); }

absl::Status Agent::PrepareAdminSocket() {
  const std::string& path = config_.admin().socket();
  size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    if (absl::Status s = MakeDirs(path.substr(0, slash), 0755); !s.ok()) {
      return absl::FailedPreconditionError(absl::StrCat("admin.socket: ", s.message()));
    }
  }
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return absl::OkStatus();
  if (!S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("admin.socket ", path, " exists and is not a socket"));
  }
  // A socket someone answers on belongs to a running agent; one nobody
  // answers on is left over from a crash and is replaced.
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  bool live = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  if (live) {
    return absl::FailedPreconditionError(absl::StrCat(
        "admin.socket ", path, " is in use by another running agent; stop it or choose another "
        "admin.socket"));
  }
  unlink(path.c_str());
  return absl::OkStatus();
}

absl::Status Agent::Start() {
  if (started_) return absl::FailedPreconditionError("agent already started");
  started_ = true;
  if (absl::Status s = PrepareAdminSocket(); !s.ok()) return s;
  if (absl::Status s = config_sync_.Start(); !s.ok()) return s;
  local_.SetHelloFiller([this](const std::string& peer, v1::Hello* hello) {
    config_sync_.FillHello(peer, hello);
  });
  if (absl::Status s = sessions_.Start(); !s.ok()) return s;

  grpc::EnableDefaultHealthCheckService(true);

  {
    grpc::ServerBuilder builder;
    int port = 0;
    // gRPC sets SO_REUSEPORT by default, which would let a second agent
    // share the port silently.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    builder.AddListeningPort(config_.listen(), PeerServerCredentials(tls_), &port);
    builder.RegisterService(&peer_service_);
    // The server pings too, so a handler waiting on a peer that vanished
    // ends; and it accepts the peers' frequent pings.
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, KeepaliveMs(config_));
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, KeepaliveMs(config_));
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 100);
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
    // Config commits and checksum lists of big stores exceed gRPC's 4 MiB
    // default (values may be 1 MiB each).
    builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
    peer_server_ = builder.BuildAndStart();
    if (peer_server_ == nullptr || port == 0) {
      peer_server_.reset();
      return ExplainBindFailure("listen", config_.listen());
    }
  }
  {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("unix:" + config_.admin().socket(),
                             grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&admin_service_);
    builder.SetMaxReceiveMessageSize(kMaxMessageBytes);  // config import
    admin_server_ = builder.BuildAndStart();
    if (admin_server_ == nullptr) {
      Shutdown();
      return absl::UnavailableError(
          absl::StrCat("cannot listen on admin.socket ", config_.admin().socket()));
    }
    if (chmod(config_.admin().socket().c_str(), 0600) != 0) {
      absl::Status s = absl::FailedPreconditionError(absl::StrCat(
          "cannot make admin.socket ", config_.admin().socket(), " private: ", strerror(errno)));
      Shutdown();
      return s;
    }
  }
  if (!config_.health().listen().empty()) {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    // Plaintext, and nothing but grpc.health.v1.
    builder.AddListeningPort(config_.health().listen(), grpc::InsecureServerCredentials(),
                             &port);
    health_fallback_ = std::make_unique<RefuseUnknownMethods>();
    builder.RegisterCallbackGenericService(health_fallback_.get());
    health_server_ = builder.BuildAndStart();
    if (health_server_ == nullptr || port == 0) {
      health_server_.reset();
      Shutdown();
      return ExplainBindFailure("health.listen", config_.health().listen());
    }
  }
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
  {
    absl::MutexLock lock(&role_mu_);
    PublishLocked(clock_->Now());
  }

  absl::Duration interval = absl::Milliseconds(config_.heartbeat().interval_ms());
  absl::Duration lost_after = interval * config_.heartbeat().lost_threshold();
  std::shared_ptr<grpc::ChannelCredentials> credentials = PeerChannelCredentials(tls_);
  const int keepalive_ms = KeepaliveMs(config_);
  const absl::Duration max_backoff =
      std::clamp(interval * 2, absl::Milliseconds(100), absl::Seconds(1));
  for (const auto& peer : config_.peers()) {
    for (int i = 0; i < peer.addresses_size(); ++i) {
      grpc::ChannelArguments args;
      SetExpectedPeer({config_.cluster().name(), peer.id()}, &args);
      // Every path gets its own subchannel and TCP connection: a distinct
      // argument keeps gRPC from sharing one between channels.
      args.SetString("cloudha.channel", absl::StrCat("hello/", peer.id(), "/", i));
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      // Redial at least every two intervals (100 ms to 1 s), so a healed
      // link or a restarted peer is back within a few hellos.
      args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
      args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
      args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
                  static_cast<int>(absl::ToInt64Milliseconds(max_backoff)));
      // HTTP/2 pings find a connection that went silent without a reset (a
      // crashed VM, a blackholed route), so a redial gets a fresh one.
      args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, keepalive_ms);
      args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, keepalive_ms);
      args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
      args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
      HelloPathOptions options;
      options.peer = peer.id();
      options.index = i;
      options.address = peer.addresses(i);
      options.interval = interval;
      options.lost_after = lost_after;
      options.max_backoff = max_backoff;
      paths_.push_back(std::make_unique<HelloPath>(
          options, grpc::CreateCustomChannel(peer.addresses(i), credentials, args), &local_,
          &verifier_, &membership_, clock_));
    }
  }
  hooks_->Start();
  peer_hooks_->Start();
  monitors_->Start();
  for (auto& path : paths_) path->Start();
  ticker_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "role");
    Tick();
  });

  health_.SetServing(kAgentService, true);
  LogEvent(LogLevel::kInfo, "agent_started",
           {{"node", local_.node_id()},
            {"cluster", local_.cluster()},
            {"group_id", local_.group_id()},
            {"listen", config_.listen()},
            {"admin_socket", config_.admin().socket()},
            {"health_listen", config_.health().listen()},
            {"boot_id", absl::StrCat(absl::Hex(local_.boot_id(), absl::kZeroPad16))},
            {"certificate_expires", absl::FormatTime("%Y-%m-%d", tls_.not_after,
                                                     absl::UTCTimeZone())}});
  return absl::OkStatus();
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

RoleInputs Agent::Inputs(absl::Time now) {
  RoleInputs in;
  in.now = now;
  in.configured_peers = config_.peers_size();
  in.health_penalty = monitors_->penalty() + role_.PromotionFailurePenalty(now);
  in.all_monitors_failing = monitors_->all_failing();
  in.in_sync = sessions_.in_sync() && config_sync_.in_sync();
  for (const Membership::LivePeer& live : membership_.Live(now)) {
    const v1::Hello& h = live.hello;
    PeerView p;
    p.id = live.id;
    p.role = h.role();
    p.epoch = h.epoch();
    p.priority = h.priority();
    p.health_penalty = h.health_penalty();
    p.uptime = absl::Milliseconds(h.uptime_ms());
    p.in_sync = h.sync_state() != v1::SYNCING;
    p.handover_to = h.handover_to();
    p.selected_by = h.selected_by();
    p.sees_primary = h.primary_id();
    p.sees_primary_epoch = h.primary_epoch();
    in.live_peers.push_back(std::move(p));
  }
  return in;
}

void Agent::PublishLocked(absl::Time now) {
  if (sessions_.enabled()) {
    std::vector<std::string> live;
    for (const Membership::LivePeer& peer : membership_.Live(now)) live.push_back(peer.id);
    uint64_t epoch =
        role_.role() == v1::PRIMARY ? role_.hello_epoch() : role_.known_epoch();
    sessions_.Update(role_.role(), epoch, role_.primary(), live);
    local_.SetSessionPosition(sessions_.position());
  }
  {
    std::vector<ConfigPeerView> live;
    for (const Membership::LivePeer& peer : membership_.Live(now)) {
      live.push_back({peer.id, peer.hello.config_revision(), peer.hello.config_root_checksum(),
                      peer.hello.exclusion_digest()});
    }
    uint64_t epoch =
        role_.role() == v1::PRIMARY ? role_.hello_epoch() : role_.known_epoch();
    config_sync_.Update(role_.role(), epoch, role_.primary(), live);
  }
  RoleState state;
  state.role = role_.role();
  state.epoch = role_.hello_epoch();
  state.health_penalty = monitors_->penalty() + role_.PromotionFailurePenalty(clock_->Now());
  state.sync_state =
      sessions_.in_sync() && config_sync_.in_sync() ? v1::IN_SYNC : v1::SYNCING;
  state.selected_by = role_.role() == v1::PRIMARY ? role_.selected_by() : "";
  state.handover_to = role_.handover_to();
  state.primary_id = role_.direct_primary();
  state.primary_epoch = role_.direct_primary_epoch();
  local_.Publish(state);
  health_.SetServing(kPrimaryService, state.role == v1::PRIMARY && primary_ready_);
  health_.SetServing(kSecondaryService, state.role == v1::SECONDARY &&
                                            state.sync_state == v1::IN_SYNC &&
                                            state.health_penalty == 0);
}

void Agent::Apply(const RoleChange& change, absl::Time now) {
  if (change.to == v1::PRIMARY) {
    // The epoch is durable before any peer or hook hears of it.
    if (absl::Status s = epoch_store_.Store(change.epoch); !s.ok()) {
      LogEvent(LogLevel::kError, "epoch_store_failed", {{"reason", s.message()}});
      std::optional<RoleChange> fault =
          role_.OnPromotionFailed(change.epoch, std::string(s.message()), now);
      if (fault.has_value()) Apply(*fault, now);
      return;
    }
    stored_epoch_ = std::max(stored_epoch_, change.epoch);
  }
  primary_ready_ = false;
  PublishLocked(now);
  LogEvent(change.to == v1::FAULT ? LogLevel::kError : LogLevel::kInfo, "role_changed",
           {{"from", v1::Role_Name(change.from)},
            {"to", v1::Role_Name(change.to)},
            {"epoch", role_.hello_epoch()},
            {"primary", role_.primary()},
            {"selected_by", role_.selected_by()},
            {"reason", change.reason}});
  Note("role",
       absl::StrCat(v1::Role_Name(change.from), " -> ", v1::Role_Name(change.to), ": ",
                    change.reason),
       {{"from", v1::Role_Name(change.from)},
        {"to", v1::Role_Name(change.to)},
        {"epoch", absl::StrCat(role_.hello_epoch())}});
  HookContext context{local_.node_id(),
                      v1::Role_Name(change.to),
                      v1::Role_Name(change.from),
                      role_.hello_epoch(),
                      role_.primary() == local_.node_id() ? "" : role_.primary(),
                      change.reason};
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
          [this, epoch] {
            absl::MutexLock lock(&role_mu_);
            return role_.role() == v1::PRIMARY && role_.hello_epoch() == epoch;
          });
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
  absl::MutexLock lock(&role_mu_);
  absl::Time now = clock_->Now();
  if (role_.role() != v1::PRIMARY || role_.hello_epoch() != epoch) return;
  if (ok) {
    primary_ready_ = true;
    PublishLocked(now);
    LogEvent(LogLevel::kInfo, "primary_ready", {{"epoch", epoch}});
    Note("role", absl::StrCat("primary ready at epoch ", epoch),
         {{"epoch", absl::StrCat(epoch)}});
    return;
  }
  LogEvent(LogLevel::kError, "to_primary_failed", {{"epoch", epoch}, {"reason", detail}});
  std::optional<RoleChange> fault = role_.OnPromotionFailed(epoch, detail, now);
  if (fault.has_value()) Apply(*fault, now);
}

void Agent::Wake() {
  absl::MutexLock lock(&wake_mu_);
  if (wake_ != nullptr && !wake_->HasBeenNotified()) wake_->Notify();
}

void Agent::Tick() {
  absl::Duration interval = absl::Milliseconds(config_.heartbeat().interval_ms());
  absl::Time next = clock_->Now();
  while (!stop_.HasBeenNotified()) {
    // Sleeps until the next tick, or less when a peer's hello brings news
    // (a handover naming this node, a new primary), so roles react within
    // a round trip rather than an interval.
    auto wake = std::make_shared<absl::Notification>();
    {
      absl::MutexLock lock(&wake_mu_);
      wake_ = wake;
    }
    clock_->SleepUntil(next, *wake);
    if (stop_.HasBeenNotified()) break;
    absl::Time now = clock_->Now();
    for (const Membership::Change& change : membership_.Evaluate(now)) OnMembershipChange(change);
    {
      absl::MutexLock lock(&role_mu_);
      RoleInputs inputs = Inputs(now);
      for (const Membership::LivePeer& live : membership_.Live(now)) {
        bool differs = live.hello.override() != config_.election().override() ||
                       live.hello.uptime_margin_s() != config_.election().uptime_margin_s();
        if (differs && mismatch_warned_.insert(live.id).second) {
          LogEvent(LogLevel::kWarn, "election_settings_differ",
                   {{"peer", live.id},
                    {"peer_override", live.hello.override() ? "true" : "false"},
                    {"peer_uptime_margin_s", live.hello.uptime_margin_s()},
                    {"hint", "give every node the same election settings"}});
        }
      }
      std::optional<RoleChange> change = role_.Evaluate(inputs);
      if (change.has_value()) {
        Apply(*change, now);
      } else {
        PublishLocked(now);
      }
      // An epoch learned from a peer is stored too: after a restart this
      // node must never promote to an epoch another node already used.
      if (role_.known_epoch() > stored_epoch_) {
        if (absl::Status s = epoch_store_.Store(role_.known_epoch()); s.ok()) {
          stored_epoch_ = role_.known_epoch();
        } else {
          LogEvent(LogLevel::kError, "epoch_store_failed", {{"reason", s.message()}});
        }
      }
    }
    if (next <= now) next += interval;
    if (next <= now) next = now + interval;
    // Wake when a peer would expire if that comes before the next tick, so
    // detection takes interval * threshold, not up to one interval more.
    if (std::optional<absl::Time> expiry = membership_.NextExpiry(); expiry.has_value()) {
      next = std::min(next, std::max(*expiry, now + absl::Milliseconds(1)));
    }
  }
}

void Agent::HandOverBeforeStopping() {
  {
    absl::MutexLock lock(&role_mu_);
    if (role_.role() != v1::PRIMARY) return;
  }
  // As long as the peer would take to notice the loss, but at most 5 s.
  absl::Duration wait = std::min(
      absl::Seconds(5),
      absl::Milliseconds(config_.heartbeat().interval_ms()) * config_.heartbeat().lost_threshold());
  absl::StatusOr<v1::FailoverResponse> done = HandOver("", wait, /*must_replicate=*/false);
  if (done.ok()) {
    LogEvent(LogLevel::kInfo, "handed_over_on_stop",
             {{"new_primary", done->new_primary()}, {"epoch", done->epoch()}});
  } else {
    LogEvent(LogLevel::kWarn, "no_handover_on_stop", {{"reason", done.status().message()}});
  }
}

absl::StatusOr<v1::FailoverResponse> Agent::Failover(const std::string& to,
                                                     absl::Duration timeout) {
  return HandOver(to, timeout, /*must_replicate=*/true);
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
    absl::MutexLock lock(&role_mu_);
    absl::Time now = clock_->Now();
    absl::StatusOr<RoleChange> change = role_.RequestHandover(to, Inputs(now));
    if (!change.ok()) {
      config_sync_.EndHandover();
      return change.status();
    }
    Apply(*change, now);  // demoted: writes are refused as on any secondary
    config_sync_.EndHandover();
    target = role_.handover_to();
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
  HandOverBeforeStopping();
  // Probes and load balancers see NOT_SERVING before anything stops.
  health_.Shutdown();
  stop_.Notify();
  Wake();
  if (ticker_.joinable()) ticker_.join();
  sessions_.Stop();
  config_sync_.Stop();
  // Peers stop hearing from this node now, not after the hooks are done.
  for (auto& path : paths_) path->RequestStop();
  auto now = std::chrono::system_clock::now();
  if (peer_server_ != nullptr) peer_server_->Shutdown(now);
  // Release hooks (TO_SECONDARY of the handover) get a few seconds.
  hooks_->Stop(absl::Seconds(5));
  peer_hooks_->Stop();
  monitors_->Stop();
  for (auto& path : paths_) path->Stop();
  for (grpc::Server* server : {admin_server_.get(), health_server_.get()}) {
    if (server != nullptr) server->Shutdown(now);
  }
  if (admin_server_ != nullptr) unlink(config_.admin().socket().c_str());
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
  status.set_listen(config_.listen());
  status.set_heartbeat_interval_ms(config_.heartbeat().interval_ms());
  status.set_lost_threshold(config_.heartbeat().lost_threshold());
  status.set_priority(local_.priority());
  for (v1::PeerStatus& peer : membership_.Status(now)) *status.add_peers() = std::move(peer);
  for (v1::MonitorStatus& m : monitors_->Status(now)) *status.add_monitors() = std::move(m);
  // Before the role lock: never holds up the role thread.
  config_sync_.FillStatus(&status);
  absl::MutexLock lock(&role_mu_);
  status.set_role(role_.role());
  status.set_epoch(role_.hello_epoch());
  status.set_selected_by(role_.selected_by());
  status.set_health_penalty(monitors_->penalty() + role_.PromotionFailurePenalty(now));
  status.set_role_reason(role_.reason());
  status.set_role_age_ms(absl::ToInt64Milliseconds(now - role_.role_since()));
  status.set_primary(role_.primary());
  status.set_sync_state(sessions_.in_sync() && config_sync_.in_sync() ? v1::IN_SYNC
                                                                    : v1::SYNCING);
  status.set_primary_ready(primary_ready_);
  std::string primary = role_.primary();
  uint64_t primary_position = 0;
  for (const Membership::LivePeer& live : membership_.Live(now)) {
    if (live.id == primary) primary_position = live.hello.session_position();
  }
  sessions_.FillStatus(primary_position, &status);
  return status;
}

}  // namespace cloudha
