// The primary's outbound change log: encoded session changes in order, cut
// into chunks, kept only while a replication stream still needs them.
//
// Positions count changes since the log was created. Readers consume whole
// chunks: reading seals the chunk being written, so every position a reader
// holds is a chunk boundary. A reader keeps the chunks from the position its
// peer acknowledged (Ack) on, not only from where it reads, so a stream that
// broke can start again from what the peer applied (Rewind) instead of a
// snapshot. Memory is bounded: past `max_bytes`, the oldest chunks go even
// if a reader still needs them, and that reader learns it fell behind
// (kGone) and must resync from a snapshot. The writer never waits for a
// reader.
//
// Thread-compatible: SessionTable calls it under its own lock.
#ifndef CLOUDHA_SYNC_CHANGE_LOG_H_
#define CLOUDHA_SYNC_CHANGE_LOG_H_

#include <cstdint>
#include <deque>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "sync/session_codec.h"

namespace cloudha {

// Changes read from the log for one batch.
struct LogBatch {
  std::string changes;  // codec records, in order
  uint32_t count = 0;
  uint64_t end_position = 0;  // position after the last change
  int64_t oldest_us = 0;      // wall time of the first change
};

class ChangeLog {
 public:
  explicit ChangeLog(size_t max_bytes) : max_bytes_(max_bytes) {}

  // Appends a change that happened at wall time `now_us`. Without readers
  // nothing is kept (the position still advances).
  void Append(const SessionChange& change, int64_t now_us);

  uint64_t end() const { return end_; }

  // Seals the chunk being written, so that end() is a chunk boundary.
  void Seal();

  // A reader starts at `position` (normally end() after Seal()).
  int AddReader(uint64_t position);
  void RemoveReader(int reader);

  // The reader's peer applied everything before `position`: the chunks
  // before it may go. Positions beyond what the reader read are ignored.
  void Ack(int reader, uint64_t position);
  // Moves the reader back to `position` (what its peer applied, at or after
  // the last Ack), to read again from there. False when the reader is gone
  // or `position` is outside [last ack, read position]; a later Read still
  // says kGone if memory pressure dropped that chunk.
  bool Rewind(int reader, uint64_t position);

  enum class ReadResult { kOk, kEmpty, kGone };
  // Moves up to `max_bytes` (at least one chunk) of changes from the
  // reader's position into `out` and advances it. kEmpty when nothing is
  // new, kGone when the reader's next chunk was dropped.
  ReadResult Read(int reader, size_t max_bytes, LogBatch* out);

  // Wall time of the oldest change at or after `position` still held, or 0.
  int64_t OldestAfter(uint64_t position) const;

  size_t bytes() const { return bytes_; }

 private:
  struct Chunk {
    uint64_t first = 0;  // position of its first change
    uint32_t count = 0;
    int64_t oldest_us = 0;
    bool sealed = false;
    std::string data;
  };
  static constexpr size_t kChunkBytes = 64 << 10;

  // Drops chunks every reader is past, then, over max_bytes_, the oldest.
  void Trim();

  const size_t max_bytes_;
  uint64_t end_ = 0;
  size_t bytes_ = 0;
  std::deque<Chunk> chunks_;
  struct Reader {
    uint64_t position = 0;  // where the next Read starts
    uint64_t acked = 0;     // chunks from here on are kept for it
  };
  int next_reader_ = 1;
  absl::flat_hash_map<int, Reader> readers_;
};

}  // namespace cloudha

#endif  // CLOUDHA_SYNC_CHANGE_LOG_H_
