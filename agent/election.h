// Who should be primary: FortiGate's ranking rules, made explicit.
//
// Without override: healthier (lower health penalty) > longer uptime, when
// the uptimes differ by more than the margin > higher priority > lower node
// id. With override: healthier > higher priority > longer uptime (any
// difference) > lower node id.
//
// Pure functions; thread-safe.
#ifndef CLOUDHA_AGENT_ELECTION_H_
#define CLOUDHA_AGENT_ELECTION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace cloudha {

struct Candidate {
  std::string id;
  uint32_t health_penalty = 0;
  absl::Duration uptime;
  uint32_t priority = 0;
};

struct ElectionRules {
  bool override = false;
  absl::Duration uptime_margin = absl::Seconds(300);
};

// The criteria, in the words status shows ("selected by: priority").
inline constexpr char kByHealth[] = "health";
inline constexpr char kByUptime[] = "uptime";
inline constexpr char kByPriority[] = "priority";
inline constexpr char kByNodeId[] = "node id";
inline constexpr char kByOnlyCandidate[] = "only candidate";

// Whether `a` ranks above `b`; `*criterion` (if not null) names the rule that
// decided. Candidates with the same id are equal (false).
bool RanksAbove(const Candidate& a, const Candidate& b, const ElectionRules& rules,
                std::string* criterion = nullptr);

struct ElectionResult {
  std::string winner;
  // The rule by which the winner beat the runner-up.
  std::string selected_by;
};

// The best of `candidates` (which must not be empty).
ElectionResult Elect(const std::vector<Candidate>& candidates, const ElectionRules& rules);

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_ELECTION_H_
