#include "base/host_port.h"

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace cloudha {

absl::StatusOr<HostPort> SplitHostPort(absl::string_view what, absl::string_view address) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " \"", address, "\" ", why, " (want HOST:PORT or [IPV6]:PORT)"));
  };
  HostPort result;
  absl::string_view port;
  if (absl::StartsWith(address, "[")) {
    size_t close = address.find(']');
    if (close == absl::string_view::npos || close + 1 >= address.size() ||
        address[close + 1] != ':') {
      return bad("is not a bracketed IPv6 address with a port");
    }
    result.host = std::string(address.substr(1, close - 1));
    port = address.substr(close + 2);
  } else {
    size_t colon = address.rfind(':');
    if (colon == absl::string_view::npos) return bad("has no port");
    result.host = std::string(address.substr(0, colon));
    if (absl::StrContains(result.host, ":")) return bad("has an IPv6 address without brackets");
    port = address.substr(colon + 1);
  }
  if (result.host.empty()) return bad("has no host");
  if (!absl::SimpleAtoi(port, &result.port) || result.port < 0 || result.port > 65535) {
    return bad("has a port outside 1..65535");
  }
  return result;
}

}  // namespace cloudha
