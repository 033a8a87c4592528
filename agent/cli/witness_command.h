// `cloudha witness --config FILE`: the split-brain arbiter for a third zone
// (docs/arbiter.md). Keeps the primary lease and the fencing counter of
// each cluster it serves.
#ifndef CLOUDHA_AGENT_CLI_WITNESS_COMMAND_H_
#define CLOUDHA_AGENT_CLI_WITNESS_COMMAND_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cloudha/v1/witness.pb.h"

namespace cloudha {

// Parses and checks a witness configuration (textproto, or JSON for .json),
// relative paths resolved against the file's folder and defaults filled.
// Every problem is listed, one per line.
absl::StatusOr<v1::WitnessConfig> LoadWitnessConfig(const std::string& path);

// Refuses to start (exit 2) on a bad configuration or certificate; exits 1
// when the listener or the state cannot be opened; serves until SIGTERM or
// SIGINT, then exits 0.
int RunWitness(const std::string& config_path);

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_CLI_WITNESS_COMMAND_H_
