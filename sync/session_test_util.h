// Sessions for tests: deterministic records keyed by an index.
#ifndef CLOUDHA_SYNC_SESSION_TEST_UTIL_H_
#define CLOUDHA_SYNC_SESSION_TEST_UTIL_H_

#include <cstdint>

#include "sync/session_codec.h"

namespace cloudha {

// An IPv4 TCP session 198.18.(i>>16).(i>>8) : port i -> 198.19.0.1:443,
// SNATed to 198.19.255.1, or IPv6 when `v6`.
inline SessionRecord TestSession(uint32_t i, int64_t now_ms, bool v6 = false,
                                 uint8_t l4_protocol = 6) {
  SessionRecord r;
  SessionKey& k = r.key;
  SessionValue& v = r.value;
  k.family = v6 ? 10 : 2;
  k.l4_protocol = l4_protocol;
  k.src_port = static_cast<uint16_t>(1024 + (i % 60000));
  k.dst_port = 443;
  k.src = {198, 18, static_cast<uint8_t>(i >> 16), static_cast<uint8_t>(i >> 8)};
  if (v6) k.src = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0,
                   static_cast<uint8_t>(i >> 24), static_cast<uint8_t>(i >> 16),
                   static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
  k.dst = {198, 19, 0, 1};
  if (v6) k.dst = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  k.zone = static_cast<uint16_t>(i % 3);
  v.reply_src = k.dst;
  v.reply_dst = v6 ? k.src : IpAddress{198, 19, 255, 1};
  v.reply_src_port = k.dst_port;
  v.reply_dst_port = k.src_port;
  v.tcp_state = l4_protocol == 6 ? 3 : 0;
  v.timeout_s = 600;
  v.flags = 0x1ce;
  v.mark = i & 0xff;
  v.created_ms = now_ms - 60000;
  v.last_update_ms = now_ms;
  return r;
}

inline SessionChange Upsert(const SessionRecord& r) { return {SessionChange::Op::kUpsert, r}; }
inline SessionChange Delete(const SessionKey& k) {
  SessionChange c;
  c.op = SessionChange::Op::kDelete;
  c.record.key = k;
  return c;
}

}  // namespace cloudha

#endif  // CLOUDHA_SYNC_SESSION_TEST_UTIL_H_
