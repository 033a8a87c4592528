// `cloudha certs init`: a throw-away or production cluster CA and node
// certificates.
#ifndef CLOUDHA_AGENT_CLI_CERTS_COMMAND_H_
#define CLOUDHA_AGENT_CLI_CERTS_COMMAND_H_

#include <string>
#include <vector>

namespace cloudha {

struct CertsInitOptions {
  std::string cluster;
  std::vector<std::string> nodes;
  std::string out;
  int days = 825;
  bool force = false;
  bool new_ca = false;
};

// Writes OUT/ca.crt, OUT/ca.key (0600) and OUT/NODE.crt, OUT/NODE.key (0600)
// for each node. When OUT already holds a CA for the cluster, that CA signs
// the new node certificates (adding or reissuing a node), --force or not: a
// CA is replaced only with --new-ca --force. No existing file is
// overwritten without --force: then nothing is written.
// Returns the process exit code.
int RunCertsInit(const CertsInitOptions& options);

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_CLI_CERTS_COMMAND_H_
