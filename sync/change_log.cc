#include "sync/change_log.h"

#include <algorithm>

namespace cloudha {

void ChangeLog::Append(const SessionChange& change, int64_t now_us) {
  ++end_;
  if (readers_.empty()) return;
  if (chunks_.empty() || chunks_.back().sealed || chunks_.back().data.size() >= kChunkBytes) {
    if (!chunks_.empty()) chunks_.back().sealed = true;
    Chunk chunk;
    chunk.first = end_ - 1;
    chunk.oldest_us = now_us;
    chunk.data.reserve(kChunkBytes + 128);
    chunks_.push_back(std::move(chunk));
  }
  Chunk& chunk = chunks_.back();
  size_t before = chunk.data.size();
  AppendChange(change, &chunk.data);
  bytes_ += chunk.data.size() - before;
  ++chunk.count;
  if (bytes_ > max_bytes_) Trim();
}

void ChangeLog::Seal() {
  if (!chunks_.empty()) chunks_.back().sealed = true;
}

int ChangeLog::AddReader(uint64_t position) {
  int id = next_reader_++;
  readers_[id] = Reader{position, position};
  return id;
}

void ChangeLog::Ack(int reader, uint64_t position) {
  auto it = readers_.find(reader);
  if (it == readers_.end()) return;
  Reader& r = it->second;
  if (position <= r.acked || position > r.position) return;
  r.acked = position;
  Trim();
}

bool ChangeLog::Rewind(int reader, uint64_t position) {
  auto it = readers_.find(reader);
  if (it == readers_.end()) return false;
  Reader& r = it->second;
  if (position < r.acked || position > r.position) return false;
  r.position = position;
  return true;
}

void ChangeLog::RemoveReader(int reader) {
  readers_.erase(reader);
  Trim();
}

ChangeLog::ReadResult ChangeLog::Read(int reader, size_t max_bytes, LogBatch* out) {
  auto it = readers_.find(reader);
  if (it == readers_.end()) return ReadResult::kGone;
  uint64_t& position = it->second.position;
  out->changes.clear();
  out->count = 0;
  out->end_position = position;
  out->oldest_us = 0;
  if (position >= end_) return ReadResult::kEmpty;
  // Find the chunk that starts at `position`.
  auto chunk = std::lower_bound(chunks_.begin(), chunks_.end(), position,
                                [](const Chunk& c, uint64_t p) { return c.first < p; });
  if (chunk == chunks_.end() || chunk->first != position) return ReadResult::kGone;
  for (; chunk != chunks_.end(); ++chunk) {
    if (out->count > 0 && out->changes.size() + chunk->data.size() > max_bytes) break;
    chunk->sealed = true;
    if (out->count == 0) out->oldest_us = chunk->oldest_us;
    out->changes.append(chunk->data);
    out->count += chunk->count;
    position = chunk->first + chunk->count;
  }
  out->end_position = position;
  Trim();
  return ReadResult::kOk;
}

int64_t ChangeLog::OldestAfter(uint64_t position) const {
  for (const Chunk& c : chunks_) {
    if (c.first + c.count > position) return c.oldest_us;
  }
  return 0;
}

void ChangeLog::Trim() {
  uint64_t needed = end_;
  for (const auto& [id, reader] : readers_) needed = std::min(needed, reader.acked);
  while (!chunks_.empty()) {
    const Chunk& front = chunks_.front();
    bool consumed = front.sealed && front.first + front.count <= needed;
    bool over = bytes_ > max_bytes_ && chunks_.size() > 1;
    if (!consumed && !over && !readers_.empty()) break;
    bytes_ -= front.data.size();
    chunks_.pop_front();
  }
}

}  // namespace cloudha
