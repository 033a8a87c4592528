// Conversions between absl::Status, which the agent's libraries return, and
// grpc::Status, which only the gRPC service and client code speaks.
#ifndef CLOUDHA_AGENT_GRPC_STATUS_H_
#define CLOUDHA_AGENT_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace cloudha {

// Same code and message. Thread-compatible free functions.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_GRPC_STATUS_H_
