// `cloudha certs`: a cluster CA and node certificates, and the CA's
// rotation without downtime (docs/security.md, "Rotating the CA").
//
// The files of one cluster live in one folder (OUT):
//   ca.crt, ca.key            the CA that `certs init` signs with
//   NODE.crt, NODE.key        each node's certificate and key
// and while a rotation is under way:
//   ca-next.crt, ca-next.key  the new CA (`certs rotate-ca`)
//   ca-bundle.crt             both CAs: every node's tls.ca_file meanwhile
// `certs retire-ca` ends it: ca.crt, ca.key and ca-bundle.crt move to
// OUT/retired-ca-FINGERPRINT/ and the new CA becomes ca.crt and ca.key.
//
// No command overwrites a file without --force, and a command that refuses
// writes nothing.
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
  // Which CA signs the node certificates: "current" (ca.crt) or "next"
  // (ca-next.crt, during a rotation).
  std::string ca = "current";
};

// Writes OUT/ca.crt, OUT/ca.key (0600) and OUT/NODE.crt, OUT/NODE.key (0600)
// for each node. When OUT already holds a CA for the cluster, that CA signs
// the new node certificates (adding or reissuing a node), --force or not: a
// CA is replaced only with --new-ca --force. With --ca next the rotation's
// new CA signs them. No existing file is overwritten without --force: then
// nothing is written.
// Returns the process exit code.
int RunCertsInit(const CertsInitOptions& options);

struct CertsRotateOptions {
  std::string out;
  int days = 825;
  bool force = false;
};

// Starts a rotation: a new CA for the cluster of OUT/ca.crt, written as
// OUT/ca-next.crt and OUT/ca-next.key (0600), and OUT/ca-bundle.crt with
// both CAs. Refuses (writing nothing) when one of them exists, unless
// --force. Returns the process exit code.
int RunCertsRotateCa(const CertsRotateOptions& options);

struct CertsRetireOptions {
  std::string out;
  // Retire even when node certificates in OUT are not issued by the new CA.
  bool force = false;
};

// Ends a rotation: moves OUT/ca.crt, ca.key and ca-bundle.crt to
// OUT/retired-ca-FINGERPRINT/, then renames ca-next.crt and ca-next.key to
// ca.crt and ca.key. Refuses (changing nothing) while a node certificate in
// OUT (NODE.crt) is not issued by the new CA, unless --force. Returns the
// process exit code.
int RunCertsRetireCa(const CertsRetireOptions& options);

}  // namespace cloudha

#endif  // CLOUDHA_AGENT_CLI_CERTS_COMMAND_H_
