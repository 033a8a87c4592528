#include "base/build_info.h"

#include "base/build_info_stamp.h"

namespace cloudha {

const char* BuildVersion() { return CLOUDHA_BUILD_VERSION; }
const char* BuildCommit() { return CLOUDHA_BUILD_COMMIT; }
const char* BuildDate() { return CLOUDHA_BUILD_DATE; }

const std::string& BuildVersionLine() {
  // Once: every hello carries it.
  static const std::string* const line =
      new std::string(std::string(BuildVersion()) + " (commit " + BuildCommit() + ")");
  return *line;
}

}  // namespace cloudha
