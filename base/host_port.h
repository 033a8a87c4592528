// "host:port" and "[v6]:port", as every listener and peer address of the
// configuration is written.
#ifndef CLOUDHA_BASE_HOST_PORT_H_
#define CLOUDHA_BASE_HOST_PORT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cloudha {

struct HostPort {
  std::string host;  // without the brackets of an IPv6 address
  int port = 0;
};

// Splits `address`; the port may be 0 (a listener that picks one). The
// INVALID_ARGUMENT message names `what` and says what is wrong.
absl::StatusOr<HostPort> SplitHostPort(absl::string_view what, absl::string_view address);

}  // namespace cloudha

#endif  // CLOUDHA_BASE_HOST_PORT_H_
