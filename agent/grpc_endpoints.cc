#include "agent/grpc_endpoints.h"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "agent/agent_config.h"
#include "base/secure_file.h"
#include "grpc/grpc.h"
#include "grpcpp/create_channel.h"
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

}  // namespace

int KeepaliveMs(const v1::AgentConfig& c) {
  return std::max<int>(1000, c.heartbeat().interval_ms() * c.heartbeat().lost_threshold());
}

absl::Duration HelloMaxBackoff(const v1::AgentConfig& config) {
  return std::clamp(absl::Milliseconds(config.heartbeat().interval_ms()) * 2,
                    absl::Milliseconds(100), absl::Seconds(1));
}

absl::StatusOr<std::unique_ptr<grpc::Server>> StartPeerServer(
    const v1::AgentConfig& config, const std::shared_ptr<grpc::ServerCredentials>& credentials,
    grpc::Service* service) {
  grpc::ServerBuilder builder;
  int port = 0;
  // gRPC sets SO_REUSEPORT by default, which would let a second agent
  // share the port silently.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(config.listen(), credentials, &port);
  builder.RegisterService(service);
  // The server pings too, so a handler waiting on a peer that vanished
  // ends; and it accepts the peers' frequent pings.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, KeepaliveMs(config));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, KeepaliveMs(config));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 100);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) return ExplainBindFailure("listen", config.listen());
  return server;
}

absl::StatusOr<std::unique_ptr<grpc::Server>> StartWitnessServer(
    const std::string& listen, const std::shared_ptr<grpc::ServerCredentials>& credentials,
    grpc::Service* service) {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(listen, credentials, &port);
  builder.RegisterService(service);
  // The nodes ping often (a lease is short); accept it.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 100);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) return ExplainBindFailure("listen", listen);
  return server;
}

absl::Status PrepareAdminSocket(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    if (absl::Status s = MakeDirectories(path.substr(0, slash), 0755); !s.ok()) {
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

absl::StatusOr<std::unique_ptr<grpc::Server>> StartAdminServer(const std::string& path,
                                                               grpc::Service* service) {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("unix:" + path, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(service);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);  // config import
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot listen on admin.socket ", path));
  }
  if (chmod(path.c_str(), 0600) != 0) {
    absl::Status s = absl::FailedPreconditionError(
        absl::StrCat("cannot make admin.socket ", path, " private: ", strerror(errno)));
    server->Shutdown();
    unlink(path.c_str());
    return s;
  }
  return server;
}

std::unique_ptr<grpc::CallbackGenericService> NewHealthOnlyFallback() {
  return std::make_unique<RefuseUnknownMethods>();
}

absl::StatusOr<std::unique_ptr<grpc::Server>> StartHealthServer(
    const std::string& address, grpc::CallbackGenericService* fallback) {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Plaintext, and nothing but grpc.health.v1.
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port);
  builder.RegisterCallbackGenericService(fallback);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) return ExplainBindFailure("health.listen", address);
  return server;
}

std::shared_ptr<grpc::Channel> CreateHelloChannel(
    const v1::AgentConfig& config, const v1::PeerConfig& peer, int index,
    const std::shared_ptr<grpc::ChannelCredentials>& credentials) {
  const int keepalive_ms = KeepaliveMs(config);
  grpc::ChannelArguments args;
  SetExpectedPeer({config.cluster().name(), peer.id()}, &args);
  // Every path gets its own subchannel and TCP connection: a distinct
  // argument keeps gRPC from sharing one between channels.
  args.SetString("cloudha.channel", absl::StrCat("hello/", peer.id(), "/", index));
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // Redial at least every two intervals (100 ms to 1 s), so a healed
  // link or a restarted peer is back within a few hellos.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(HelloMaxBackoff(config))));
  // HTTP/2 pings find a connection that went silent without a reset (a
  // crashed VM, a blackholed route), so a redial gets a fresh one.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, keepalive_ms);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, keepalive_ms);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  return grpc::CreateCustomChannel(peer.addresses(index), credentials, args);
}

}  // namespace cloudha
