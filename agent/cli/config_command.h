// `cloudha config get|set|delete|list|watch|export|import|diff|checksum`:
// the replicated config store, through the agent's AdminService. README.md
// (CLI reference) and docs/operator-guide.md ("Config store") show the
// output of each.
//
// Every Run function returns the exit code: 0 done, 1 when the agent cannot
// be reached or refuses (the gRPC status code and the agent's message go to
// stderr), or, for diff and checksum --cluster, when the nodes differ.
#ifndef CLOUDHA_AGENT_CLI_CONFIG_COMMAND_H_
#define CLOUDHA_AGENT_CLI_CONFIG_COMMAND_H_

#include <cstdint>
#include <string>

#include "agent/cli/admin_client.h"
#include "cloudha/v1/admin.pb.h"

namespace cloudha {

// The command line of every `cloudha config` subcommand; each reads the
// fields its usage names.
struct ConfigOptions {
  AdminTarget target;
  // get, set, delete: the path (delete --recursive: the prefix). list,
  // watch, export, import, diff, checksum: the prefix ("" is the root; one
  // trailing "." is ignored).
  std::string path;
  // set: the value, or "-" for standard input.
  std::string value;
  // import: the JSON file, or "-" for standard input.
  std::string file;
  // export: write here (mode 0600, atomically) instead of standard output.
  std::string output;
  // diff: only this peer ("" = every peer).
  std::string peer;
  bool json = false;       // get, list: print JSON
  bool recursive = false;  // delete: the whole subtree below the prefix
  bool merge = false;      // import: keep paths below the prefix the file lacks
  bool cluster = false;    // checksum: every node, not only this one
  uint64_t count = 0;      // watch: stop after this many commits (0 = no limit)
  double for_s = 0;        // watch: stop after this many seconds (0 = no limit)
  uint32_t limit = 20;     // history: at most this many changes
};

int RunConfigGet(const ConfigOptions& options);
int RunConfigSet(const ConfigOptions& options);
int RunConfigDelete(const ConfigOptions& options);
int RunConfigList(const ConfigOptions& options);
// The last changes, newest first (--limit, default 20).
int RunConfigHistory(const ConfigOptions& options);
// Runs until Ctrl-C, --count commits or --for seconds.
int RunConfigWatch(const ConfigOptions& options);
int RunConfigExport(const ConfigOptions& options);
int RunConfigImport(const ConfigOptions& options);
// Like diff(1): 0 when every peer compared is identical, 1 when some
// differ or could not be compared.
int RunConfigDiff(const ConfigOptions& options);
// With --cluster: 1 when some subtree differs between nodes or some node
// could not be asked.
int RunConfigChecksum(const ConfigOptions& options);

// The renderings, for tests. Each line ends in "\n".

// "rev N set PATH = VALUE" per put, then "rev N delete PATH" per delete.
std::string FormatConfigChange(const v1::WatchConfigResponse& change);
// Local exclusions, then per peer its effective exclusions and differences.
std::string FormatConfigDiff(const v1::DiffConfigResponse& diff);
// The checksum table; `cluster` adds the match column.
std::string FormatConfigChecksums(const v1::ConfigChecksumsResponse& checksums,
                                  const std::string& prefix, bool cluster);

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_CLI_CONFIG_COMMAND_H_
