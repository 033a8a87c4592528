#include "agent/cli/reload_command.h"

#include <chrono>
#include <iostream>

#include "absl/strings/str_join.h"

namespace cloudha {

int RunReload(const AdminTarget& target) {
  absl::StatusOr<std::string> socket = ResolveAdminSocket(target);
  if (!socket.ok()) {
    std::cerr << "cloudha reload: " << socket.status().message() << "\n";
    return 1;
  }
  auto stub = ConnectAdmin(*socket);
  grpc::ClientContext context;
  // Replacing monitors waits for the old ones' checks to end.
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::ReloadResponse response;
  grpc::Status s = stub->Reload(&context, v1::ReloadRequest(), &response);
  if (!s.ok()) {
    if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
      std::cerr << "cloudha reload: cannot reach the agent at " << *socket << ": "
                << s.error_message() << "\n";
    } else {
      std::cerr << "cloudha reload: refused: " << s.error_message() << "\n";
    }
    return 1;
  }
  if (response.applied().empty()) {
    std::cout << "reloaded: nothing new in the configuration (TLS files reread)\n";
  } else {
    std::cout << "reloaded: applied " << absl::StrJoin(response.applied(), ", ")
              << " (TLS files reread)\n";
  }
  return 0;
}

}  // namespace cloudha
