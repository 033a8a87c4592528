#include "agent/sync_channel.h"

#include "absl/strings/str_cat.h"
#include "crypto/tls_material.h"
#include <memory>
#include <utility>
#include <vector>

#include "grpcpp/create_channel.h"
#include "grpcpp/support/client_interceptor.h"

namespace cloudha {

namespace {

// Adds the group id to the initial metadata of every call.
class GroupIdInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit GroupIdInterceptor(std::string group_id) : group_id_(std::move(group_id)) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->insert({kGroupIdMetadata, group_id_});
    }
    methods->Proceed();
  }

 private:
  const std::string group_id_;
};

class GroupIdInterceptorFactory : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit GroupIdInterceptorFactory(uint32_t group_id) : group_id_(absl::StrCat(group_id)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* /*info*/) override {
    return new GroupIdInterceptor(group_id_);
  }

 private:
  const std::string group_id_;
};

}  // namespace

std::shared_ptr<grpc::Channel> CreateSyncChannel(
    const std::string& cluster, uint32_t group_id, const v1::PeerConfig& peer,
    const std::shared_ptr<grpc::ChannelCredentials>& credentials, absl::string_view purpose) {
  grpc::ChannelArguments args;
  SetExpectedPeer({cluster, peer.id()}, &args);
  // A connection of its own: bulk syncs never queue behind hellos, nor
  // hellos (or the other replication stream) behind them.
  args.SetString("cloudha.channel", absl::StrCat(purpose, "/", peer.id()));
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 2000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 2000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // Checksum lists and commits of big stores exceed gRPC's 4 MiB default.
  args.SetMaxReceiveMessageSize(256 << 20);
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<GroupIdInterceptorFactory>(group_id));
  return grpc::experimental::CreateCustomChannelWithInterceptors(
      peer.sync_address(), credentials, args, std::move(interceptors));
}

}  // namespace cloudha
