// `cloudha sessions [--count] [--lag] [--limit N] [--filter F]... [--json]`:
// the session table of a node (the source on a primary, the replica on a
// secondary); `cloudha sessions publish [FILE]`: sessions into a primary's
// table, as a data plane publishes them.
#ifndef CLOUDHA_AGENT_CLI_SESSIONS_COMMAND_H_
#define CLOUDHA_AGENT_CLI_SESSIONS_COMMAND_H_

#include <cstdint>
#include <string>
#include <vector>

#include "agent/cli/admin_client.h"

namespace cloudha {

struct SessionsOptions {
  AdminTarget target;
  bool count = false;  // only the number of sessions (matching the filters)
  bool lag = false;    // replication state and lag
  uint64_t limit = 0;  // at most N sessions (0 = all)
  std::vector<std::string> filters;
  bool json = false;
};

// Exit 0 on success, 1 when the agent cannot be reached or refuses.
int RunSessions(const SessionsOptions& options);

struct SessionsPublishOptions {
  AdminTarget target;
  std::string file;  // "" or "-": standard input
};

// `cloudha sessions publish [FILE]`: a data plane's sessions from the
// command line, for scripts and demos. Each line of the input is one
// cloudha.v1.Session in proto3 JSON (as `cloudha sessions --json` prints
// them; addresses are base64 of their 4 or 16 bytes), upserted, or
// {"delete": SESSION_KEY} (family, l4_protocol, original, zone), deleted;
// blank lines are skipped. A session without a reply tuple gets the
// original reversed (addresses; ports too, except ICMP's id and type), as
// `conntrack -I` does; one without created_ms or last_update_ms gets the
// current time (a primary expires a session timeout_s after its last
// update). Every line is checked before anything is sent; then all go
// in one PublishSessions stream, in their order, and it prints
// "published N, refused M" (N upserts and deletes applied, M upserts
// refused by max_sessions).
// Exit 0 when published, 1 when the agent cannot be reached or refuses
// (e.g. it is not the primary: publish there), 2 when the input has
// problems ("FILE:LINE: what"; nothing was sent).
int RunSessionsPublish(const SessionsPublishOptions& options);

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_CLI_SESSIONS_COMMAND_H_
