#include "test/session_client.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "grpcpp/create_channel.h"

namespace cloudha {

SessionPublisher::SessionPublisher(const std::string& socket)
    : stub_(v1::AdminService::NewStub(
          grpc::CreateChannel("unix:" + socket, grpc::InsecureChannelCredentials()))) {
  writer_ = stub_->PublishSessions(&context_, &response_);
}

SessionPublisher::~SessionPublisher() {
  if (!finished_) (void)Finish();
}

bool SessionPublisher::Publish(const std::vector<SessionChange>& changes, size_t per_message) {
  v1::PublishSessionsRequest request;
  for (size_t i = 0; i < changes.size(); i += per_message) {
    request.Clear();
    std::string* data = request.mutable_changes();
    size_t end = std::min(changes.size(), i + per_message);
    for (size_t j = i; j < end; ++j) AppendChange(changes[j], data);
    request.set_change_count(static_cast<uint32_t>(end - i));
    if (!writer_->Write(request)) return false;
  }
  return true;
}

absl::StatusOr<v1::PublishSessionsResponse> SessionPublisher::Finish() {
  finished_ = true;
  v1::PublishSessionsRequest end;
  end.set_end(true);
  writer_->Write(end);
  writer_->WritesDone();
  grpc::Status s = writer_->Finish();
  if (!s.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
  }
  return response_;
}

absl::StatusOr<std::vector<SessionRecord>> ListSessions(const std::string& socket) {
  auto stub = v1::AdminService::NewStub(
      grpc::CreateChannel("unix:" + socket, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto reader = stub->ListSessions(&context, v1::ListSessionsRequest());
  v1::ListSessionsResponse chunk;
  std::vector<SessionRecord> out;
  while (reader->Read(&chunk)) {
    for (const v1::Session& s : chunk.sessions()) {
      absl::StatusOr<SessionRecord> r = RecordFromProto(s);
      if (!r.ok()) return r.status();
      out.push_back(*r);
    }
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
  }
  SortByKey(&out);
  return out;
}

void SortByKey(std::vector<SessionRecord>* records) {
  std::sort(records->begin(), records->end(), [](const SessionRecord& a, const SessionRecord& b) {
    return std::memcmp(&a.key, &b.key, sizeof(SessionKey)) < 0;
  });
}

}  // namespace cloudha
