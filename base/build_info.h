// What this binary is: cloudha's version (the top-level VERSION file), the
// git commit it was built from ("unknown" outside a git checkout, "-dirty"
// with uncommitted changes) and when it was built (UTC, RFC 3339).
#ifndef CLOUDHA_BASE_BUILD_INFO_H_
#define CLOUDHA_BASE_BUILD_INFO_H_

#include <string>

namespace cloudha {

const char* BuildVersion();
const char* BuildCommit();
const char* BuildDate();
// "0.1.0 (commit 0123456789ab)": what hellos and status carry.
const std::string& BuildVersionLine();

}  // namespace cloudha

#endif  // CLOUDHA_BASE_BUILD_INFO_H_
