// Fuzzes the session change codec (sync/session_codec.h), the bytes every
// SessionBatch and PublishSessionsRequest carries.
//
// Input: u32 expected_count (little-endian), then the encoded changes.
// Checks the codec's contract: a refused input leaves `out` as it was; an
// accepted one holds exactly `expected_count` records whose sizes add up to
// the input, and encoding them again gives the same bytes (a delete's
// padding byte aside) and decodes to the same changes.
#include <cstdint>
#include <string>
#include <vector>

#include "sync/session_codec.h"
#include "test/fuzz/fuzz_support.h"

namespace cloudha {
namespace {

bool SameChange(const SessionChange& a, const SessionChange& b) {
  if (a.op != b.op) return false;
  if (a.op == SessionChange::Op::kDelete) return a.record.key == b.record.key;
  return a.record == b.record;
}

}  // namespace
}  // namespace cloudha

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using cloudha::SessionChange;
  if (size < 4) return 0;
  const uint32_t expected = static_cast<uint32_t>(cloudha::fuzz::ReadUint(
      absl::string_view(reinterpret_cast<const char*>(data), 4), 0, 4));
  const absl::string_view bytes(reinterpret_cast<const char*>(data) + 4, size - 4);

  // A change already there must survive a refusal untouched.
  SessionChange sentinel;
  sentinel.record.key.family = 2;
  sentinel.record.key.src_port = 4242;
  std::vector<SessionChange> out = {sentinel};
  absl::Status status = cloudha::DecodeChanges(bytes, expected, &out);
  if (!status.ok()) {
    FUZZ_CHECK(status.code() == absl::StatusCode::kInvalidArgument, status.ToString());
    FUZZ_CHECK(out.size() == 1 && cloudha::SameChange(out[0], sentinel),
               "a refused input changed `out`: ", status.ToString());
    return 0;
  }
  FUZZ_CHECK(out.size() == 1 + static_cast<size_t>(expected), "decoded ", out.size() - 1,
             " changes, expected ", expected);
  size_t total = 0;
  for (size_t i = 1; i < out.size(); ++i) total += cloudha::EncodedSize(out[i]);
  FUZZ_CHECK(total == bytes.size(), "records add up to ", total, " of ", bytes.size(), " bytes");
  std::string encoded;
  for (size_t i = 1; i < out.size(); ++i) {
    const size_t at = encoded.size();
    cloudha::AppendChange(out[i], &encoded);
    // A delete's fourth byte is padding: written as 0, not read.
    if (out[i].op == SessionChange::Op::kDelete) encoded[at + 3] = bytes[at + 3];
  }
  FUZZ_CHECK(encoded == bytes, "encoding the decoded changes gives other bytes");
  std::vector<SessionChange> again;
  status = cloudha::DecodeChanges(encoded, expected, &again);
  FUZZ_CHECK(status.ok(), "re-encoded changes do not decode: ", status.ToString());
  FUZZ_CHECK(again.size() + 1 == out.size(), "re-decoded ", again.size(), " changes");
  for (size_t i = 0; i < again.size(); ++i) {
    FUZZ_CHECK(cloudha::SameChange(again[i], out[i + 1]), "change ", i, " differs after a round trip");
  }
  return 0;
}
