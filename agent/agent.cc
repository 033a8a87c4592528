#include "agent/agent.h"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "agent/config.h"
#include "agent/log.h"
#include "grpc/grpc.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"

namespace cloudha {
namespace {

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
  return std::unique_ptr<Agent>(new Agent(std::move(config), *std::move(tls), boot_id, clock));
}

Agent::Agent(v1::AgentConfig config, TlsMaterial tls, uint64_t boot_id, Clock* clock)
    : config_(std::move(config)),
      tls_(std::move(tls)),
      clock_(clock),
      local_(config_, boot_id, clock->Now()),
      verifier_(config_),
      membership_(config_),
      peer_service_(&local_, &verifier_, &membership_, clock),
      admin_service_(this) {}

Agent::~Agent() { Shutdown(); }

absl::Status Agent::PrepareStateDir() {
  if (absl::Status s = MakeDirs(config_.state_dir(), 0700); !s.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("state_dir: ", s.message()));
  }
  if (access(config_.state_dir().c_str(), W_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("state_dir ", config_.state_dir(), " is not writable: ", strerror(errno)));
  }
  return absl::OkStatus();
}

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
  if (absl::Status s = PrepareStateDir(); !s.ok()) return s;
  if (absl::Status s = PrepareAdminSocket(); !s.ok()) return s;

  grpc::EnableDefaultHealthCheckService(true);

  {
    grpc::ServerBuilder builder;
    int port = 0;
    // gRPC sets SO_REUSEPORT by default, which would let a second agent
    // share the port silently.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    builder.AddListeningPort(config_.listen(), PeerServerCredentials(tls_), &port);
    builder.RegisterService(&peer_service_);
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
    admin_server_ = builder.BuildAndStart();
    if (admin_server_ == nullptr) {
      Shutdown();
      return absl::UnavailableError(
          absl::StrCat("cannot listen on admin.socket ", config_.admin().socket()));
    }
    chmod(config_.admin().socket().c_str(), 0600);
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
  for (grpc::Server* server : {peer_server_.get(), admin_server_.get(), health_server_.get()}) {
    if (server != nullptr) health_.Attach(server->GetHealthCheckService());
  }

  absl::Duration interval = absl::Milliseconds(config_.heartbeat().interval_ms());
  absl::Duration lost_after = interval * config_.heartbeat().lost_threshold();
  std::shared_ptr<grpc::ChannelCredentials> credentials = PeerChannelCredentials(tls_);
  for (const auto& peer : config_.peers()) {
    for (int i = 0; i < peer.addresses_size(); ++i) {
      grpc::ChannelArguments args;
      SetExpectedPeer({config_.cluster().name(), peer.id()}, &args);
      // Every path gets its own subchannel and TCP connection: a distinct
      // argument keeps gRPC from sharing one between channels.
      args.SetString("cloudha.channel", absl::StrCat("hello/", peer.id(), "/", i));
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
      args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
      args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
      HelloPathOptions options;
      options.peer = peer.id();
      options.index = i;
      options.address = peer.addresses(i);
      options.interval = interval;
      options.lost_after = lost_after;
      paths_.push_back(std::make_unique<HelloPath>(
          options, grpc::CreateCustomChannel(peer.addresses(i), credentials, args), &local_,
          &verifier_, &membership_, clock_));
    }
  }
  for (auto& path : paths_) path->Start();
  ticker_ = std::thread([this] { Tick(); });

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

void Agent::Tick() {
  absl::Duration interval = absl::Milliseconds(config_.heartbeat().interval_ms());
  absl::Time next = clock_->Now();
  while (clock_->SleepUntil(next, stop_)) {
    absl::Time now = clock_->Now();
    for (const Membership::Change& change : membership_.Evaluate(now)) {
      bool down = change.kind == Membership::Change::Kind::kPeerDown ||
                  change.kind == Membership::Change::Kind::kPathDown;
      if (change.path >= 0) {
        LogEvent(down ? LogLevel::kWarn : LogLevel::kInfo, ChangeEvent(change.kind),
                 {{"peer", change.peer}, {"path", change.path}, {"address", change.address}});
      } else {
        LogEvent(down ? LogLevel::kWarn : LogLevel::kInfo, ChangeEvent(change.kind),
                 {{"peer", change.peer}});
      }
    }
    next += interval;
    if (next <= now) next = now + interval;
  }
}

void Agent::Shutdown() {
  if (!started_ || shut_down_) return;
  shut_down_ = true;
  // Probes and load balancers see NOT_SERVING before anything stops.
  health_.Shutdown();
  stop_.Notify();
  if (ticker_.joinable()) ticker_.join();
  for (auto& path : paths_) path->Stop();
  auto now = std::chrono::system_clock::now();
  for (grpc::Server* server : {peer_server_.get(), admin_server_.get(), health_server_.get()}) {
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
  return status;
}

}  // namespace cloudha
