// The split-brain arbiter's rule set (docs/arbiter.md): who may hold the
// primary role when an arbiter (a witness, or another lease keeper) votes
// beside the nodes.
//
// The voters are the cluster's nodes and the arbiter. A node counts itself,
// every peer that sees it (recently: ArbiterInput::peer_votes), and the
// arbiter when it holds the arbiter's lease by its own clock. It may become
// primary only with a majority of the voters, and a primary that no longer
// has one steps down. The lease is exclusive and outlives the holder's own
// view of it, so two sides of a partition cannot both count the arbiter.
// Peer votes are not exclusive (a peer that sees two candidates counts for
// both), so without the lease the majority must be every peer: then the
// candidates see each other and resolve their primaries as without an
// arbiter. So:
//  - peers see each other: elections as without an arbiter (a pair: 2 of 3);
//  - only the arbiter is lost: no role changes while every peer is seen
//    (with three or more nodes, losing the arbiter and one peer too makes
//    the primary step down);
//  - the primary is cut off: it loses the lease (not renewed) and steps
//    down when its own view of it ends, before the arbiter's ends and a
//    secondary can take it;
//  - a secondary that lost the primary promotes only with the lease;
//  - nothing seen at all (neither a peer nor the arbiter): the primary
//    steps down, or with on_isolation KEEP stays primary.
//
// Pure functions of their inputs.
#ifndef CLOUDHA_AGENT_ARBITER_RULES_H_
#define CLOUDHA_AGENT_ARBITER_RULES_H_

#include <string>

namespace cloudha {

struct ArbiterInput {
  // An arbiter is configured; when false every rule allows.
  bool enabled = false;
  // This node holds the arbiter's lease, by its own clock (the lease's end
  // less the safety margin is still ahead).
  bool lease_held = false;
  // The arbiter answered the last request (granted or not).
  bool reachable = false;
  // on_isolation: KEEP.
  bool keep_on_isolation = false;
  // The peers whose vote counts: each answered a hello this node sent
  // within the vote window (lost_after less two intervals) saying it sees
  // this node. Dated by our own send time, so a hello delayed in a dead
  // link cannot vote, and a primary without the lease stops counting a
  // silent peer before that peer declares it lost and asks for the lease.
  int peer_votes = 0;
};

// The votes this node has: itself, the peers' votes, and the arbiter's
// lease.
int ArbiterVotes(const ArbiterInput& arbiter);
// More than half of the nodes and the arbiter.
int ArbiterMajority(int configured_peers);

// Whether this node may become primary now.
bool MayBecomePrimary(int configured_peers, const ArbiterInput& arbiter);

// Whether a primary may stay primary; when not, `why` says why.
bool MayStayPrimary(int configured_peers, const ArbiterInput& arbiter, std::string* why);

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_ARBITER_RULES_H_
