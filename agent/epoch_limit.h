// The ceiling of cluster epochs.
#ifndef CLOUDHA_AGENT_EPOCH_LIMIT_H_
#define CLOUDHA_AGENT_EPOCH_LIMIT_H_

#include <cstdint>

namespace cloudha {

// The highest epoch a node ever takes or accepts: 2^53, the largest integer
// every JSON reader of `cloudha status --json` keeps exact. A promotion a
// millisecond would take 285 000 years to reach it; an epoch above it (in a
// hello, or in the epoch file) is refused as corrupt or hostile, so epochs
// never wrap. A node that knows kMaxEpoch cannot promote (and says so).
inline constexpr uint64_t kMaxEpoch = uint64_t{1} << 53;

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_EPOCH_LIMIT_H_
