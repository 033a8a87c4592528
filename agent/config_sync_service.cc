#include "agent/config_sync_service.h"

#include <mutex>

#include <utility>

#include "absl/strings/str_cat.h"
#include "agent/config_sync.h"
#include "agent/grpc_status.h"

namespace cloudha {
namespace {

class ServerFollowStream : public ConfigFollowStream {
 public:
  ServerFollowStream(grpc::ServerContext* context,
                     grpc::ServerReaderWriter<v1::ConfigSyncMessage, v1::ConfigSyncMessage>* stream)
      : context_(context), stream_(stream) {}
  bool Read(v1::ConfigSyncMessage* message) override { return stream_->Read(message); }
  bool Write(const v1::ConfigSyncMessage& message) override { return stream_->Write(message); }
  void Cancel() override { context_->TryCancel(); }

 private:
  grpc::ServerContext* const context_;
  grpc::ServerReaderWriter<v1::ConfigSyncMessage, v1::ConfigSyncMessage>* const stream_;
};

// The call starts on first use, not in the constructor: with wait_for_ready
// starting it blocks until the peer is reachable, and the pusher can cancel
// it only once it holds the object (a Cancel before the start cancels the
// call as it starts). A pusher stopped while its peer was unreachable once
// hung the agent's shutdown here.
class ClientPushStream : public ConfigPushStream {
 public:
  explicit ClientPushStream(v1::PeerService::Stub* stub) : stub_(stub) {
    context_.set_wait_for_ready(true);
  }
  bool Write(const v1::ConfigSyncMessage& message) override { return Call()->Write(message); }
  bool Read(v1::ConfigSyncMessage* message) override { return Call()->Read(message); }
  void Cancel() override { context_.TryCancel(); }
  absl::Status Finish() override { return FromGrpcStatus(Call()->Finish()); }

 private:
  grpc::ClientReaderWriter<v1::ConfigSyncMessage, v1::ConfigSyncMessage>* Call() {
    std::call_once(started_, [this] { stream_ = stub_->SyncConfig(&context_); });
    return stream_.get();
  }

  v1::PeerService::Stub* const stub_;
  grpc::ClientContext context_;
  std::once_flag started_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::ConfigSyncMessage, v1::ConfigSyncMessage>> stream_;
};

}  // namespace

grpc::Status ServeConfigSync(
    ConfigSync* sync, const std::string& peer, grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::ConfigSyncMessage, v1::ConfigSyncMessage>* stream) {
  ServerFollowStream follow(context, stream);
  return ToGrpcStatus(sync->Serve(peer, &follow));
}

grpc::Status WatchConfig(ConfigSync* sync, grpc::ServerContext* context,
                         const v1::WatchConfigRequest& request,
                         grpc::ServerWriter<v1::WatchConfigResponse>* writer) {
  return ToGrpcStatus(sync->Watch(
      request, [writer](const v1::WatchConfigResponse& r) { return writer->Write(r); },
      [context] { return context->IsCancelled(); }));
}

ConfigPusher::Dialer ConfigPushDialer(std::shared_ptr<grpc::Channel> channel) {
  // One stub for every stream of the pusher (stubs are thread-safe), shared
  // because the dialer, a std::function, must be copyable.
  std::shared_ptr<v1::PeerService::Stub> stub = v1::PeerService::NewStub(channel);
  return [stub]() -> std::unique_ptr<ConfigPushStream> {
    return std::make_unique<ClientPushStream>(stub.get());
  };
}

absl::StatusOr<v1::ConfigQueryResponse> QueryConfigPeer(
    const std::string& peer, const std::shared_ptr<grpc::Channel>& channel,
    const v1::ConfigQueryRequest& request, Clock* clock) {
  auto stub = v1::PeerService::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(clock->WallNow() + absl::Seconds(5)));
  v1::ConfigQueryResponse response;
  grpc::Status s = stub->QueryConfig(&context, request, &response);
  if (!s.ok()) {
    return absl::Status(FromGrpcStatus(s).code(), absl::StrCat(peer, ": ", s.error_message()));
  }
  return response;
}

}  // namespace cloudha
