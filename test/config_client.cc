#include "test/config_client.h"

#include "absl/strings/str_cat.h"
#include "grpcpp/create_channel.h"

namespace cloudha {
namespace {

std::unique_ptr<v1::AdminService::Stub> Stub(const std::string& socket) {
  return v1::AdminService::NewStub(
      grpc::CreateChannel("unix:" + socket, grpc::InsecureChannelCredentials()));
}

void Deadline(grpc::ClientContext* context) {
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
}

absl::Status ToAbsl(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

}  // namespace

ConfigClient::ConfigClient(const std::string& socket) : stub_(Stub(socket)) {}

absl::StatusOr<uint64_t> ConfigClient::Put(const std::string& path, const std::string& value) {
  grpc::ClientContext context;
  Deadline(&context);
  v1::PutConfigRequest request;
  request.set_path(path);
  request.set_value(value);
  v1::PutConfigResponse response;
  grpc::Status s = stub_->PutConfig(&context, request, &response);
  if (!s.ok()) return ToAbsl(s);
  return response.revision();
}

absl::StatusOr<uint64_t> ConfigClient::PutMany(
    const std::vector<std::pair<std::string, std::string>>& entries) {
  grpc::ClientContext context;
  Deadline(&context);
  v1::PutConfigRequest request;
  for (const auto& [path, value] : entries) {
    v1::ConfigEntry* e = request.add_entries();
    e->set_path(path);
    e->set_value(value);
  }
  v1::PutConfigResponse response;
  grpc::Status s = stub_->PutConfig(&context, request, &response);
  if (!s.ok()) return ToAbsl(s);
  return response.revision();
}

absl::StatusOr<uint64_t> ConfigClient::Delete(const std::string& path, bool recursive) {
  grpc::ClientContext context;
  Deadline(&context);
  v1::DeleteConfigRequest request;
  request.set_path(path);
  request.set_recursive(recursive);
  v1::DeleteConfigResponse response;
  grpc::Status s = stub_->DeleteConfig(&context, request, &response);
  if (!s.ok()) return ToAbsl(s);
  return response.revision();
}

absl::StatusOr<std::string> ConfigClient::Get(const std::string& path) {
  grpc::ClientContext context;
  Deadline(&context);
  v1::GetConfigRequest request;
  request.set_path(path);
  v1::GetConfigResponse response;
  grpc::Status s = stub_->GetConfig(&context, request, &response);
  if (!s.ok()) return ToAbsl(s);
  return response.entry().value();
}

absl::StatusOr<std::map<std::string, std::string>> ConfigClient::List(const std::string& prefix) {
  grpc::ClientContext context;
  Deadline(&context);
  v1::ListConfigRequest request;
  request.set_prefix(prefix);
  v1::ListConfigResponse response;
  grpc::Status s = stub_->ListConfig(&context, request, &response);
  if (!s.ok()) return ToAbsl(s);
  std::map<std::string, std::string> out;
  for (const v1::ConfigEntry& e : response.entries()) out[e.path()] = e.value();
  return out;
}

absl::StatusOr<v1::ConfigChecksumsResponse> ConfigClient::Checksums(bool cluster,
                                                                    const std::string& prefix) {
  grpc::ClientContext context;
  Deadline(&context);
  v1::ConfigChecksumsRequest request;
  request.set_cluster(cluster);
  request.set_prefix(prefix);
  v1::ConfigChecksumsResponse response;
  grpc::Status s = stub_->ConfigChecksums(&context, request, &response);
  if (!s.ok()) return ToAbsl(s);
  return response;
}

absl::StatusOr<v1::DiffConfigResponse> ConfigClient::Diff(const std::string& peer,
                                                          const std::string& prefix) {
  grpc::ClientContext context;
  Deadline(&context);
  v1::DiffConfigRequest request;
  request.set_peer(peer);
  request.set_prefix(prefix);
  v1::DiffConfigResponse response;
  grpc::Status s = stub_->DiffConfig(&context, request, &response);
  if (!s.ok()) return ToAbsl(s);
  return response;
}

ConfigWatch::ConfigWatch(const std::string& socket, const std::string& prefix)
    : stub_(Stub(socket)) {
  thread_ = std::thread([this, prefix] {
    v1::WatchConfigRequest request;
    request.set_prefix(prefix);
    auto reader = stub_->WatchConfig(&context_, request);
    v1::WatchConfigResponse message;
    while (reader->Read(&message)) {
      absl::Time at = absl::Now();
      absl::MutexLock lock(&mu_);
      received_.push_back({message, at});
    }
    reader->Finish();
    absl::MutexLock lock(&mu_);
    ended_ = true;
  });
}

ConfigWatch::~ConfigWatch() {
  context_.TryCancel();
  thread_.join();
}

bool ConfigWatch::WaitReady(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !received_.empty() || ended_; };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  return !received_.empty();
}

absl::StatusOr<absl::Time> ConfigWatch::WaitForPut(const std::string& path,
                                                   const std::string& value,
                                                   absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  absl::Time found = absl::InfinitePast();
  size_t scanned = 0;
  auto seen = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    for (; scanned < received_.size(); ++scanned) {
      for (const v1::ConfigEntry& e : received_[scanned].message.puts()) {
        if (e.path() == path && e.value() == value) found = received_[scanned].at;
      }
    }
    return found != absl::InfinitePast() || ended_;
  };
  mu_.AwaitWithTimeout(absl::Condition(&seen), timeout);
  if (found == absl::InfinitePast()) {
    return absl::DeadlineExceededError(absl::StrCat(path, " = ", value, " not seen"));
  }
  return found;
}

std::vector<ConfigWatch::Received> ConfigWatch::received() const {
  absl::MutexLock lock(&mu_);
  return received_;
}

}  // namespace cloudha
