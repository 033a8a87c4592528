#include "agent/election.h"

namespace cloudha {
namespace {

// -1 when a is better, 1 when b is better, 0 when the rule does not decide.
int ByHealth(const Candidate& a, const Candidate& b) {
  if (a.health_penalty == b.health_penalty) return 0;
  return a.health_penalty < b.health_penalty ? -1 : 1;
}

int ByUptime(const Candidate& a, const Candidate& b, absl::Duration margin) {
  absl::Duration diff = a.uptime - b.uptime;
  if (absl::AbsDuration(diff) <= margin) return 0;
  return diff > absl::ZeroDuration() ? -1 : 1;
}

int ByPriority(const Candidate& a, const Candidate& b) {
  if (a.priority == b.priority) return 0;
  return a.priority > b.priority ? -1 : 1;
}

int ByNodeId(const Candidate& a, const Candidate& b) {
  if (a.id == b.id) return 0;
  return a.id < b.id ? -1 : 1;
}

}  // namespace

bool RanksAbove(const Candidate& a, const Candidate& b, const ElectionRules& rules,
                std::string* criterion) {
  struct Rule {
    const char* name;
    int verdict;
  };
  const Rule health{kByHealth, ByHealth(a, b)};
  const Rule priority{kByPriority, ByPriority(a, b)};
  const Rule id{kByNodeId, ByNodeId(a, b)};
  // With override any uptime difference counts (after priority); without,
  // only one beyond the margin (before priority).
  const Rule uptime{kByUptime,
                    ByUptime(a, b, rules.override ? absl::ZeroDuration() : rules.uptime_margin)};
  const Rule order_plain[] = {health, uptime, priority, id};
  const Rule order_override[] = {health, priority, uptime, id};
  for (const Rule& rule : rules.override ? order_override : order_plain) {
    if (rule.verdict != 0) {
      if (criterion != nullptr) *criterion = rule.name;
      return rule.verdict < 0;
    }
  }
  return false;
}

ElectionResult Elect(const std::vector<Candidate>& candidates, const ElectionRules& rules) {
  if (candidates.empty()) return {};
  size_t best = 0;
  for (size_t i = 1; i < candidates.size(); ++i) {
    if (RanksAbove(candidates[i], candidates[best], rules)) best = i;
  }
  if (candidates.size() == 1) return {candidates[0].id, kByOnlyCandidate};
  // The criterion is the one that beat the strongest of the others.
  size_t runner_up = best == 0 ? 1 : 0;
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (i != best && RanksAbove(candidates[i], candidates[runner_up], rules)) runner_up = i;
  }
  std::string criterion;
  RanksAbove(candidates[best], candidates[runner_up], rules, &criterion);
  return {candidates[best].id, criterion};
}

}  // namespace cloudha
