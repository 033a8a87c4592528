#include "agent/primary_stream_rule.h"

#include "absl/strings/str_cat.h"

namespace cloudha {

absl::Status CheckStreamFromPrimary(v1::Role role, uint64_t known_epoch,
                                    const std::string& following, const std::string& peer,
                                    uint64_t epoch, absl::string_view what) {
  if (role == v1::PRIMARY) {
    return absl::FailedPreconditionError(
        absl::StrCat("this node is primary; it does not take ", what, " from ", peer));
  }
  if (epoch < known_epoch) {
    return absl::FailedPreconditionError(absl::StrCat(peer, " streams ", what, " at epoch ",
                                                      epoch, ", but this node knows epoch ",
                                                      known_epoch));
  }
  if (!following.empty() && following != peer && epoch <= known_epoch) {
    return absl::FailedPreconditionError(
        absl::StrCat(peer, " is not the primary; this node follows ", following));
  }
  return absl::OkStatus();
}

}  // namespace cloudha
