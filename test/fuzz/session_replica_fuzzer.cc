// Fuzzes the secondary's side of session replication
// (sync/session_replica.h) with the messages a primary's SyncSessions stream
// delivers, into a real SessionTable on a fake clock.
//
// Input: a byte of table options (bit 0: pickup_connectionless; bit 1: a
// pickup delay of 5 s), then records (fuzz_support.h), by kind:
//   0 a stream opens: payload[0] bit 0 picks the primary ("b" or "c"), then
//     a v1::SessionSyncOpen
//   1 a batch: payload[0] picks the stream (the newest, the one before, or
//     one that never was), then a v1::SessionBatch
//   2 the stream picked by payload[0] closes
//   3 MarkComplete (this node's table is the newest)
//   4 the clock moves u16 milliseconds
//   5 reads: complete, position, replica_of, lag, counters
//   6 expiry on or off (payload[0] bit 0), as on a promotion: the table
//     becomes the source and ages its sessions out
// Checks the header's promises: a refused batch (INVALID_ARGUMENT,
// ABORTED) changes nothing in the table; an answer is an ack or a resync
// request, and after a resync request the replica is not complete; the
// table never holds more than max_sessions.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "base/fake_clock.h"
#include "sync/session_replica.h"
#include "sync/session_table.h"
#include "test/fuzz/fuzz_support.h"

namespace cloudha {
namespace {

constexpr size_t kMaxSessions = 64;

std::vector<SessionRecord> Contents(const SessionTable& table) {
  std::vector<SessionRecord> records = table.Records();
  std::sort(records.begin(), records.end(), [](const SessionRecord& a, const SessionRecord& b) {
    return std::memcmp(&a.key, &b.key, sizeof(SessionKey)) < 0;
  });
  return records;
}

void Run(const uint8_t* data, size_t size) {
  if (size < 1) return;
  FakeClock clock;
  SessionTableOptions options;
  options.max_sessions = kMaxSessions;
  options.pickup_connectionless = (data[0] & 1) != 0;
  options.pickup_delay = (data[0] & 2) != 0 ? absl::Seconds(5) : absl::ZeroDuration();
  options.log_max_bytes = 1 << 20;
  SessionTable table(options, &clock);
  SessionReplica replica(&table, &clock);
  std::vector<uint64_t> streams;

  auto pick = [&](uint64_t selector) { return fuzz::PickStream(streams, selector); };

  fuzz::Records records(data + 1, size - 1);
  uint8_t kind = 0;
  absl::string_view payload;
  while (records.Next(&kind, &payload)) {
    const uint64_t selector = fuzz::ReadUint(payload, 0, 1);
    const absl::string_view message = payload.empty() ? payload : payload.substr(1);
    switch (kind % 7) {
      case 0: {
        v1::SessionSyncOpen open;
        if (!open.ParseFromArray(message.data(), static_cast<int>(message.size()))) break;
        v1::SessionResumeOffer offer;
        streams.push_back(replica.Open((selector & 1) != 0 ? "c" : "b", open, &offer));
        break;
      }
      case 1: {
        v1::SessionBatch batch;
        if (!batch.ParseFromArray(message.data(), static_cast<int>(message.size()))) break;
        const std::vector<SessionRecord> before = Contents(table);
        absl::StatusOr<v1::SessionSyncMessage> reply = replica.OnBatch(pick(selector), batch);
        if (!reply.ok()) {
          FUZZ_CHECK(reply.status().code() == absl::StatusCode::kInvalidArgument ||
                         reply.status().code() == absl::StatusCode::kAborted,
                     reply.status().ToString());
          FUZZ_CHECK(Contents(table) == before, "a refused batch changed the table: ",
                     reply.status().ToString());
          break;
        }
        FUZZ_CHECK(reply->has_ack() != reply->has_resync(), "a reply that is not one answer");
        if (reply->has_resync()) {
          FUZZ_CHECK(Contents(table) == before, "a resync request changed the table");
          FUZZ_CHECK(!replica.complete(), "complete after asking for a resync");
        }
        break;
      }
      case 2:
        replica.Close(pick(selector));
        break;
      case 3:
        replica.MarkComplete();
        break;
      case 4:
        clock.Advance(absl::Milliseconds(fuzz::ReadUint(payload, 0, 2)));
        table.Tick();
        break;
      case 5:
        (void)replica.complete();
        (void)replica.position();
        (void)replica.replica_of();
        (void)replica.lag_ms();
        (void)replica.snapshots();
        (void)replica.refused();
        break;
      case 6:
        table.SetExpiry((selector & 1) != 0);
        break;
    }
    FUZZ_CHECK(table.size() <= kMaxSessions, "table of ", table.size(), " sessions");
  }
}

}  // namespace
}  // namespace cloudha

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cloudha::Run(data, size);
  return 0;
}
