// The session change codec: how changes travel in SessionBatch.changes and
// PublishSessionsRequest.changes.
//
// A change is one record, little-endian, fixed layout per family:
//
//   upsert  u8 op=1, u8 family, u8 l4_protocol, u8 tcp_state, u16 zone,
//           u16 orig_src_port, u16 orig_dst_port, u16 reply_src_port,
//           u16 reply_dst_port, u32 timeout_s, u32 flags, u32 mark,
//           i64 created_ms, i64 last_update_ms,
//           orig_src, orig_dst, reply_src, reply_dst (4 or 16 bytes each)
//           = 58 bytes (IPv4) or 106 bytes (IPv6)
//   delete  u8 op=2, u8 family, u8 l4_protocol, u8 0, u16 zone,
//           u16 orig_src_port, u16 orig_dst_port, orig_src, orig_dst
//           = 18 bytes (IPv4) or 42 bytes (IPv6)
//
// Protobuf carries the batch around the records. Decoding a record is a
// bounds check and a few loads, where parsing the same session as nested
// protobuf messages ran at 1.6 M/s per core (docs/protocol.md).
//
// Thread-safe: no state.
#ifndef CLOUDHA_SYNC_SESSION_CODEC_H_
#define CLOUDHA_SYNC_SESSION_CODEC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "sync/session_record.h"

namespace cloudha {

struct SessionChange {
  enum class Op : uint8_t { kUpsert = 1, kDelete = 2 };
  Op op = Op::kUpsert;
  // For a delete only `record.key` is meaningful.
  SessionRecord record;
};

// Bytes one encoded change takes.
size_t EncodedSize(const SessionChange& change);

void AppendUpsert(const SessionRecord& record, std::string* out);
void AppendDelete(const SessionKey& key, std::string* out);
void AppendChange(const SessionChange& change, std::string* out);

// Decodes every change of `data`, appending to `out`. `expected_count` must
// match the records found. On a malformed record (unknown op or family, a
// truncated record, a TCP state out of range, a count mismatch) returns
// INVALID_ARGUMENT naming the record's index and byte offset, and leaves
// `out` as it was.
absl::Status DecodeChanges(absl::string_view data, uint32_t expected_count,
                           std::vector<SessionChange>* out);

}  // namespace cloudha

#endif  // CLOUDHA_SYNC_SESSION_CODEC_H_
