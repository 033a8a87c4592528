#include "agent/cli/failover_command.h"

#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"

namespace cloudha {
namespace {

bool Connect(const AdminTarget& target, const char* command, std::string* socket) {
  absl::StatusOr<std::string> resolved = ResolveAdminSocket(target);
  if (!resolved.ok()) {
    std::cerr << "cloudha " << command << ": " << resolved.status().message() << "\n";
    return false;
  }
  *socket = *resolved;
  return true;
}

}  // namespace

int RunFailover(const AdminTarget& target, const std::string& to, int timeout_s) {
  std::string socket;
  if (!Connect(target, "failover", &socket)) return 1;
  auto stub = ConnectAdmin(socket);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout_s + 5));
  v1::FailoverRequest request;
  request.set_to(to);
  request.set_timeout_ms(static_cast<uint32_t>(timeout_s) * 1000);
  v1::FailoverResponse response;
  grpc::Status s = stub->Failover(&context, request, &response);
  if (!s.ok()) {
    if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
      std::cerr << "cloudha failover: cannot reach the agent at " << socket << ": "
                << s.error_message() << "\n";
    } else if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      std::cerr << "cloudha failover: " << s.error_message() << "\n";
    } else {
      std::cerr << "cloudha failover: refused: " << s.error_message() << "\n";
    }
    return 1;
  }
  std::cout << response.new_primary() << " is primary at epoch " << response.epoch() << "\n";
  return 0;
}

int RunEvents(const AdminTarget& target, bool follow, bool json) {
  std::string socket;
  if (!Connect(target, "events", &socket)) return 1;
  auto stub = ConnectAdmin(socket);
  grpc::ClientContext context;
  if (!follow) context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::ListEventsRequest request;
  request.set_follow(follow);
  auto reader = stub->ListEvents(&context, request);
  v1::Event event;
  while (reader->Read(&event)) {
    if (json) {
      google::protobuf::util::JsonPrintOptions options;
      options.preserve_proto_field_names = true;
      std::string line;
      (void)google::protobuf::util::MessageToJsonString(event, &line, options);
      std::cout << line << "\n";
    } else {
      std::cout << absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixMillis(event.time_ms()),
                                    absl::UTCTimeZone())
                << "  " << event.kind() << "  " << event.message() << "\n";
    }
    std::cout.flush();
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) {
    std::cerr << "cloudha events: cannot reach the agent at " << socket << ": "
              << s.error_message() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace cloudha
