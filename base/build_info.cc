#include "base/build_info.h"

#include "base/build_info_stamp.h"

namespace cloudha {

const char* BuildVersion() { return CLOUDHA_BUILD_VERSION; }
const char* BuildCommit() { return CLOUDHA_BUILD_COMMIT; }
const char* BuildDate() { return CLOUDHA_BUILD_DATE; }

std::string BuildVersionLine() {
  return std::string(BuildVersion()) + " (commit " + BuildCommit() + ")";
}

}  // namespace cloudha
