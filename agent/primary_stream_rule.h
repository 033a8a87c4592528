// The rule for which node may open a replication stream (sessions, config)
// to this one: only the primary this node follows, or one at a newer epoch.
#ifndef CLOUDHA_AGENT_PRIMARY_STREAM_RULE_H_
#define CLOUDHA_AGENT_PRIMARY_STREAM_RULE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "cloudha/v1/peer.pb.h"

namespace cloudha {

// Whether `peer`, claiming to be primary at `epoch`, may open a replication
// stream of `what` ("sessions", "config") to this node, which is `role`,
// knows `known_epoch` and follows `following` ("" if none).
// FAILED_PRECONDITION with the reason otherwise. A pure function.
absl::Status CheckStreamFromPrimary(v1::Role role, uint64_t known_epoch,
                                    const std::string& following, const std::string& peer,
                                    uint64_t epoch, absl::string_view what);

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_PRIMARY_STREAM_RULE_H_
