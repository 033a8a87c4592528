#include "agent/arbiter_rules.h"

#include "absl/strings/str_cat.h"

namespace cloudha {

int ArbiterVotes(const ArbiterInput& arbiter) {
  return 1 + arbiter.peer_votes + (arbiter.lease_held ? 1 : 0);
}

int ArbiterMajority(int configured_peers) {
  const int voters = configured_peers + 1 + 1;  // the peers, this node, the arbiter
  return voters / 2 + 1;
}

namespace {

// A majority, counted so that two sides cannot both have one: the lease is
// exclusive, peer votes are not (a peer that sees two candidates "votes"
// for both), so without the lease every peer must vote.
bool HasMajority(int configured_peers, const ArbiterInput& arbiter) {
  if (arbiter.lease_held) {
    return ArbiterVotes(arbiter) >= ArbiterMajority(configured_peers);
  }
  return arbiter.peer_votes >= configured_peers;
}

}  // namespace

bool MayBecomePrimary(int configured_peers, const ArbiterInput& arbiter) {
  if (!arbiter.enabled) return true;
  return HasMajority(configured_peers, arbiter);
}

bool MayStayPrimary(int configured_peers, const ArbiterInput& arbiter, std::string* why) {
  if (!arbiter.enabled) return true;
  const int live_peers = arbiter.peer_votes;
  const int votes = ArbiterVotes(arbiter);
  const int majority = ArbiterMajority(configured_peers);
  if (HasMajority(configured_peers, arbiter)) return true;
  if (arbiter.keep_on_isolation && live_peers == 0 && !arbiter.reachable) return true;
  if (why != nullptr) {
    *why = absl::StrCat("lost the majority (", votes, " of ", configured_peers + 2,
                        " votes, ", majority, " needed, with the lease; without it every peer): ",
                        arbiter.reachable ? "the arbiter refused the lease"
                                          : "the arbiter's lease was not renewed",
                        live_peers == 0 ? " and no peer sees this node" : "");
  }
  return false;
}

}  // namespace cloudha
