// Writes the seed inputs of test/fuzz/corpus/ and the agent_config
// dictionary from real, valid inputs: records encoded by the session codec
// and a primary's session table, hellos made by LocalNode, a config resync
// built from a primary's ConfigStore (and checked to bring a real follower
// in sync), configurations the loader accepts, and the AgentConfig schema's
// own field and enum names.
//
//   make_seeds CORPUS_DIR DICT_DIR      (test/fuzz/build.sh --seeds runs it)
//
// Seeds are named seed-*; a regression input a fuzzer found is named
// regression-* and is never rewritten here.
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "agent/agent_config.h"
#include "agent/local_node.h"
#include "base/fake_clock.h"
#include "base/log.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "sync/config_committer.h"
#include "sync/config_follower.h"
#include "sync/config_store.h"
#include "sync/session_codec.h"
#include "sync/session_replica.h"
#include "sync/session_table.h"
#include "sync/session_test_util.h"
#include "test/fuzz/fuzz_support.h"

namespace cloudha {
namespace {

using fuzz::AppendRecord;

std::string corpus_dir;

void Write(const std::string& target, const std::string& name, const std::string& bytes) {
  const std::string dir = absl::StrCat(corpus_dir, "/", target);
  mkdir(dir.c_str(), 0755);
  const std::string path = absl::StrCat(dir, "/seed-", name);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  if (!out) fuzz::Fail(absl::StrCat("cannot write ", path));
}

std::string U16(uint64_t v) { return std::string{static_cast<char>(v & 0xff), static_cast<char>(v >> 8)}; }
std::string U32(uint32_t v) {
  return absl::StrCat(U16(v & 0xffff), U16(v >> 16));
}
std::string U64(uint64_t v) { return absl::StrCat(U32(v & 0xffffffff), U32(v >> 32)); }
std::string Byte(int v) { return std::string(1, static_cast<char>(v)); }

// --- session codec and replica ------------------------------------------

void SessionCodecSeeds() {
  const int64_t now_ms = 1'800'000'000'000;
  std::string v4;
  AppendUpsert(TestSession(1, now_ms), &v4);
  Write("session_codec_fuzzer", "upsert-v4", U32(1) + v4);
  std::string v6;
  AppendUpsert(TestSession(2, now_ms, /*v6=*/true), &v6);
  Write("session_codec_fuzzer", "upsert-v6", U32(1) + v6);
  std::string mixed;
  AppendUpsert(TestSession(3, now_ms), &mixed);
  AppendUpsert(TestSession(4, now_ms, false, /*udp*/ 17), &mixed);
  AppendDelete(TestSession(1, now_ms).key, &mixed);
  AppendUpsert(TestSession(5, now_ms, true), &mixed);
  AppendDelete(TestSession(2, now_ms, true).key, &mixed);
  Write("session_codec_fuzzer", "mixed", U32(5) + mixed);
  Write("session_codec_fuzzer", "empty", U32(0));
}

// The batches a primary's sender makes: a snapshot of its table in chunks,
// then its change log's live tail.
void SessionReplicaSeeds() {
  FakeClock clock;
  SessionTableOptions options;
  SessionTable primary(options, &clock);
  const int64_t now_ms = absl::ToUnixMillis(clock.WallNow());
  std::vector<SessionChange> initial;
  for (uint32_t i = 0; i < 6; ++i) initial.push_back(Upsert(TestSession(i, now_ms, i % 3 == 2)));
  primary.Apply(initial);
  int reader = -1;
  SessionSnapshot snapshot = primary.Snapshot(/*chunk_bytes=*/200, &reader);
  primary.Apply({Delete(TestSession(0, now_ms).key), Upsert(TestSession(7, now_ms)),
                 Upsert(TestSession(1, now_ms + 5000))});
  LogBatch live;
  if (primary.Read(reader, 1 << 20, &live) != ChangeLog::ReadResult::kOk) {
    fuzz::Fail("no live changes");
  }

  uint64_t sequence = 1;
  auto batch_record = [&](v1::SessionBatch b, int stream_selector) {
    b.set_sequence(sequence++);
    return absl::StrCat(Byte(stream_selector), b.SerializeAsString());
  };
  v1::SessionSyncOpen open;
  open.set_epoch(4);
  open.set_boot_id(0x5eed);
  open.set_next_sequence(1);
  std::string snapshot_input;  // table options: none
  AppendRecord(0, Byte(0) + open.SerializeAsString(), &snapshot_input);
  for (size_t i = 0; i < snapshot.chunks.size(); ++i) {
    v1::SessionBatch b;
    b.set_snapshot_begin(i == 0);
    b.set_snapshot_end(i + 1 == snapshot.chunks.size());
    b.set_changes(snapshot.chunks[i]);
    b.set_change_count(snapshot.counts[i]);
    b.set_position(snapshot.position);
    b.set_cut_time_us(absl::ToUnixMicros(clock.WallNow()));
    AppendRecord(1, batch_record(b, 0), &snapshot_input);
  }
  v1::SessionBatch tail;
  tail.set_changes(live.changes);
  tail.set_change_count(live.count);
  tail.set_position(live.end_position);
  tail.set_cut_time_us(live.oldest_us);
  AppendRecord(4, U16(250), &snapshot_input);
  AppendRecord(1, batch_record(tail, 0), &snapshot_input);
  AppendRecord(5, "", &snapshot_input);

  // Checked: a real replica ends complete, with the primary's table.
  SessionTable replica_table(options, &clock);
  SessionReplica replica(&replica_table, &clock);
  v1::SessionResumeOffer offer;
  uint64_t stream = replica.Open("b", open, &offer);
  fuzz::Records records(snapshot_input);
  uint8_t kind;
  absl::string_view payload;
  while (records.Next(&kind, &payload)) {
    if (kind != 1) continue;
    v1::SessionBatch b;
    b.ParseFromArray(payload.data() + 1, static_cast<int>(payload.size() - 1));
    absl::StatusOr<v1::SessionSyncMessage> reply = replica.OnBatch(stream, b);
    if (!reply.ok() || !reply->has_ack()) fuzz::Fail("replica seed refused");
  }
  if (!replica.complete() || replica_table.size() != primary.size()) {
    fuzz::Fail("replica seed does not complete the replica");
  }
  Write("session_replica_fuzzer", "snapshot-then-live", Byte(0) + snapshot_input);
  Write("session_replica_fuzzer", "snapshot-pickup-delay", Byte(3) + snapshot_input);

  // A gap (answered with a resync request), then a second stream from
  // another primary that supersedes the first.
  std::string two_streams;
  AppendRecord(0, Byte(0) + open.SerializeAsString(), &two_streams);
  v1::SessionBatch gap;
  gap.set_sequence(9);
  gap.set_changes(live.changes);
  gap.set_change_count(live.count);
  AppendRecord(1, Byte(0) + gap.SerializeAsString(), &two_streams);
  AppendRecord(0, Byte(1) + open.SerializeAsString(), &two_streams);
  sequence = 1;
  v1::SessionBatch first;
  first.set_snapshot_begin(true);
  first.set_snapshot_end(true);
  first.set_changes(snapshot.chunks[0]);
  first.set_change_count(snapshot.counts[0]);
  AppendRecord(1, batch_record(first, 1), &two_streams);  // the old stream: refused
  sequence = 1;
  AppendRecord(1, batch_record(first, 0), &two_streams);
  AppendRecord(2, Byte(0), &two_streams);
  AppendRecord(3, "", &two_streams);
  AppendRecord(5, "", &two_streams);
  Write("session_replica_fuzzer", "gap-and-takeover", Byte(0) + two_streams);
}

// --- hellos ---------------------------------------------------------------

// Node b's (or c's) view of the fuzz cluster of hello_fuzzer.cc.
v1::AgentConfig PeerConfig(const std::string& id, uint32_t priority) {
  v1::AgentConfig c;
  c.mutable_cluster()->set_name("fuzz");
  c.mutable_cluster()->set_group_id(7);
  c.mutable_node()->set_id(id);
  c.mutable_node()->set_priority(priority);
  c.mutable_heartbeat()->set_interval_ms(100);
  c.mutable_heartbeat()->set_lost_threshold(6);
  c.mutable_election()->set_uptime_margin_s(300);
  return c;
}

void HelloSeeds() {
  const absl::Time start = absl::FromUnixSeconds(1000);
  // b: primary at epoch 4, up for an hour, sees a.
  LocalNode b(PeerConfig("b", 100), /*boot_id=*/0xb0b, start - absl::Hours(1));
  RoleState primary;
  primary.role = v1::PRIMARY;
  primary.epoch = 4;
  primary.primary_id = "b";
  primary.primary_epoch = 4;
  primary.selected_by = "uptime";
  primary.sees = {"a"};
  b.Publish(primary);

  // The records of one 100 ms round at `t`: our hello goes out on b's path
  // 0, b answers it, b's own stream delivers its hello, and the core steps.
  auto round = [&](absl::Time t, uint64_t seq, LocalNode& peer, int peer_index,
                   std::string* out) {
    AppendRecord(2, Byte(peer_index) + U64(seq), out);
    v1::Hello reply = peer.MakeHello(t, "a");
    reply.set_echo_sequence(seq);
    reply.set_echo_send_time_us(absl::ToUnixMicros(t - absl::Microseconds(400)));
    AppendRecord(1, Byte(peer_index) + reply.SerializeAsString(), out);
    v1::Hello inbound = peer.MakeHello(t, "a");
    inbound.set_sequence(seq);
    inbound.set_send_time_us(absl::ToUnixMicros(t));
    AppendRecord(0, Byte(peer_index) + inbound.SerializeAsString(), out);
    AppendRecord(3, U16(100), out);
  };

  std::string follow;
  absl::Time t = start;
  for (uint64_t seq = 1; seq <= 12; ++seq, t += absl::Milliseconds(100)) {
    round(t, seq, b, 0, &follow);
  }
  AppendRecord(7, Byte(0), &follow);
  Write("hello_fuzzer", "pair-follows-primary", Byte(0) + Byte(3) + follow);

  // Alone: the hold-down passes, a promotes, its hooks finish; then b
  // appears as a primary at a higher epoch.
  std::string alone;
  for (int i = 0; i < 15; ++i) AppendRecord(3, U16(100), &alone);
  AppendRecord(6, Byte(1), &alone);
  AppendRecord(7, Byte(0), &alone);
  t = start + absl::Milliseconds(1500);
  RoleState higher = primary;
  higher.epoch = 9;
  higher.primary_epoch = 9;
  b.Publish(higher);
  for (uint64_t seq = 1; seq <= 4; ++seq, t += absl::Milliseconds(100)) {
    round(t, seq, b, 0, &alone);
  }
  Write("hello_fuzzer", "pair-alone-then-primary-returns", Byte(1) + Byte(0) + alone);
  b.Publish(primary);

  // Three nodes with an arbiter: b and c are secondaries (up for less than
  // the uptime margin, so a's priority ranks first), a holds the lease and
  // promotes, then hands over to b.
  LocalNode b2(PeerConfig("b", 100), 0xb0b, start - absl::Seconds(10));
  LocalNode c(PeerConfig("c", 50), 0xc, start - absl::Minutes(1));
  RoleState waiting;
  waiting.role = v1::SECONDARY;
  waiting.sees = {"a", "c"};
  b2.Publish(waiting);
  waiting.sees = {"a", "b"};
  c.Publish(waiting);
  std::string three;
  AppendRecord(4, Byte(8 | 16) + Byte(0), &three);  // lease held, arbiter reachable
  t = start;
  for (uint64_t seq = 1; seq <= 14; ++seq, t += absl::Milliseconds(100)) {
    round(t, seq, b2, 0, &three);
    AppendRecord(2, Byte(1) + U64(seq), &three);
    v1::Hello reply = c.MakeHello(t, "a");
    reply.set_echo_sequence(seq);
    reply.set_echo_send_time_us(absl::ToUnixMicros(t));
    AppendRecord(1, Byte(1) + reply.SerializeAsString(), &three);
  }
  AppendRecord(6, Byte(1), &three);
  AppendRecord(5, "b", &three);
  AppendRecord(3, U16(100), &three);
  AppendRecord(7, Byte(1), &three);
  Write("hello_fuzzer", "three-arbiter-handover", Byte(2 | 4) + Byte(3) + three);
}

// --- config replication ------------------------------------------------------

std::unique_ptr<ConfigStore> OpenStore(const std::string& name, Clock* clock) {
  ConfigStore::Options options;
  options.clock = clock;
  absl::StatusOr<std::unique_ptr<ConfigStore>> store =
      ConfigStore::Open(absl::StrCat(fuzz::ScratchDir(), "/", name), std::move(options));
  if (!store.ok()) fuzz::Fail(store.status().ToString());
  return *std::move(store);
}

void ConfigFollowerSeeds() {
  FakeClock clock;
  std::unique_ptr<ConfigStore> primary = OpenStore("primary.db", &clock);
  absl::StatusOr<ConfigCommitResult> written = primary->Apply({
      {"firewall.enabled", "yes"},
      {"firewall.policy.10.action", "accept"},
      {"firewall.policy.30.action", "reject"},
      {"system.dns", "198.18.0.53"},
      {"system.hostname", "fw-a"},
      {"zone.a.mtu", "9001"},
  });
  if (!written.ok()) fuzz::Fail(written.status().ToString());
  // The primary excludes zone.**; the follower (config_follower_fuzzer.cc)
  // local.** and system.hostname.
  absl::StatusOr<ExclusionSet> theirs = ExclusionSet::Create({"zone.**"});
  absl::StatusOr<ExclusionSet> own = ExclusionSet::Create({"local.**", "system.hostname"});
  const ExclusionSet effective = theirs->Union(*own);

  v1::ConfigSyncOpen open;
  open.set_epoch(4);
  open.set_revision(primary->revision());
  open.add_exclude("zone.**");
  open.set_root_checksum(primary->Checksum("", *theirs).checksum);

  v1::ConfigSyncMessage request;
  request.mutable_checksum_request()->add_prefixes("");

  v1::ConfigSyncMessage pull;
  v1::ConfigPullResponse* p = pull.mutable_pull_response();
  p->add_prefixes("");
  for (const StoredEntry& e : primary->List("")) {
    if (effective.Excludes(e.path)) continue;
    v1::ConfigEntry* entry = p->add_entries();
    entry->set_path(e.path);
    entry->set_value(e.value);
    entry->set_revision(e.revision);
  }
  p->set_complete(true);
  p->set_revision(primary->revision());
  p->set_root_checksum(primary->Checksum("", effective).checksum);

  written = primary->Apply({{"firewall.policy.10.action", "drop"},
                            {"firewall.policy.30.action", std::nullopt},
                            {"firewall.policy.40.action", "accept"}});
  v1::ConfigSyncMessage commit;
  v1::ConfigCommit* c = commit.mutable_commit();
  c->set_revision(written->revision);
  c->add_puts()->set_path("firewall.policy.10.action");
  c->mutable_puts(0)->set_value("drop");
  c->add_puts()->set_path("firewall.policy.40.action");
  c->mutable_puts(1)->set_value("accept");
  c->add_deletes("firewall.policy.30.action");
  c->set_root_checksum(primary->Checksum("", effective).checksum);

  std::string resync;
  AppendRecord(0, Byte(0) + open.SerializeAsString(), &resync);
  AppendRecord(1, Byte(0) + request.SerializeAsString(), &resync);
  AppendRecord(1, Byte(0) + pull.SerializeAsString(), &resync);
  AppendRecord(6, U16(20), &resync);
  AppendRecord(1, Byte(0) + commit.SerializeAsString(), &resync);
  AppendRecord(7, "", &resync);

  // Checked: a real follower, from the fuzzer's baseline, ends in sync
  // with b and acks the commit without asking for a resync.
  std::unique_ptr<ConfigStore> store = OpenStore("follower.db", &clock);
  // The baseline of config_follower_fuzzer.cc.
  absl::StatusOr<ConfigCommitResult> baseline = store->Apply({{"firewall.enabled", "yes"},
                {"firewall.policy.10.action", "accept"},
                {"firewall.policy.20.action", "drop"},
                {"local.note", "this node only"},
                {"local.deep.a", "1"},
                {"system.hostname", "fw-b"},
                {"system.dns", "198.18.0.53"}});
  if (!baseline.ok()) fuzz::Fail(baseline.status().ToString());
  ConfigCommitter committer(store.get(), nullptr, nullptr);
  ConfigFollowerOptions options;
  options.own = *own;
  ConfigFollower follower(std::move(options), &committer, &clock);
  absl::StatusOr<ConfigFollower::Opened> opened = follower.Open("b", open);
  if (!opened.ok()) fuzz::Fail(opened.status().ToString());
  for (const v1::ConfigSyncMessage* m : {&request, &pull, &commit}) {
    absl::StatusOr<std::optional<v1::ConfigSyncMessage>> reply =
        follower.OnMessage(opened->stream, *m);
    if (!reply.ok()) fuzz::Fail(reply.status().ToString());
    if (reply->has_value() && (*reply)->has_ack() && (*reply)->ack().resync()) {
      fuzz::Fail("the follower seed asks for a resync");
    }
  }
  if (follower.synced_with() != "b") fuzz::Fail("the follower seed does not sync");
  Write("config_follower_fuzzer", "resync-then-commit", resync);

  // The same stream superseded by one from c, and the old one closed.
  std::string takeover = resync;
  AppendRecord(0, Byte(1) + open.SerializeAsString(), &takeover);
  AppendRecord(1, Byte(1) + commit.SerializeAsString(), &takeover);
  AppendRecord(2, Byte(1), &takeover);
  AppendRecord(4, "", &takeover);
  AppendRecord(5, Byte(1), &takeover);
  AppendRecord(1, Byte(0) + pull.SerializeAsString(), &takeover);
  AppendRecord(3, "", &takeover);
  Write("config_follower_fuzzer", "takeover", takeover);
}

// --- configurations -------------------------------------------------------------

constexpr char kFullConfig[] = R"(cluster { name: "prod" group_id: 7 }
node { id: "a" priority: 200 }
listen: "0.0.0.0:7801"
peers { id: "b" addresses: "10.0.2.10:7801" addresses: "[fd00::2]:7801" sync_address: "10.9.2.10:7802" }
peers { id: "c" addresses: "10.0.3.10:7801" }
tls { ca_file: "certs/ca.crt" cert_file: "certs/a.crt" key_file: "certs/a.key" }
heartbeat { interval_ms: 200 lost_threshold: 6 }
admin { socket: "/run/cloudha/admin.sock" }
health { listen: "0.0.0.0:7901" }
state_dir: "/var/lib/cloudha"
log { format: JSON level: DEBUG }
election { override: true uptime_margin_s: 60 hello_holddown_s: 3 override_wait_s: 10 failover_hold_s: 20 }
sessions { pickup: true source: CONNTRACK pickup_delay_s: 5 max_sessions: 100000 zones: 0 zones: 7 }
monitors { name: "uplink" interface { name: "eth0" } weight: 50 }
monitors { name: "web" tcp { address: "127.0.0.1:443" } interval_ms: 500 timeout_ms: 200 rise: 2 fall: 3 }
monitors { name: "script" exec { command: "/bin/true" command: "--check" } }
hooks { on: TO_PRIMARY command: "/bin/true" command: "claim" timeout_ms: 60000 retries: 3 backoff_ms: 1000 }
hooks { on: PEER_LOST command: "/bin/true" }
config_sync { exclude: "system.interface.**" exclude: "system.hostname" on_change { prefix: "firewall." command: "/bin/true" } }
arbiter { witness { addresses: "10.0.9.10:7801" id: "witness" } lease_ttl_ms: 3000 on_isolation: KEEP max_clock_drift_ppm: 1000 }
)";

void AgentConfigSeeds(const std::string& deploy_example) {
  const std::vector<std::pair<std::string, std::string>> texts = {
      {"deploy-example", deploy_example}, {"full", kFullConfig}};
  for (const auto& [name, text] : texts) {
    LoadedConfig loaded = ParseAgentConfig("/etc/cloudha/agent.textproto", text,
                                           absl::FromUnixSeconds(1'800'000'000), TlsCheck::kSkip);
    if (!loaded.problems.empty()) fuzz::Fail(loaded.problems[0].ToString());
    Write("agent_config_fuzzer", absl::StrCat(name, ".textproto"), Byte(0) + text);
    // The same configuration as JSON, as it was written (relative paths
    // kept): the parse before defaults are filled.
    v1::AgentConfig raw;
    google::protobuf::util::JsonPrintOptions print;
    print.add_whitespace = true;
    std::string json;
    if (!google::protobuf::TextFormat::ParseFromString(text, &raw) ||
        !google::protobuf::util::MessageToJsonString(raw, &json, print).ok()) {
      fuzz::Fail("cannot print the JSON form");
    }
    Write("agent_config_fuzzer", absl::StrCat(name, ".json"), Byte(3) + json);
  }
}

// --- dictionaries ---------------------------------------------------------------

// Writes a libFuzzer dictionary of `words` (escaped as it wants them).
void WriteDictionary(const std::string& path, const std::string& comment,
                     const std::set<std::string>& words) {
  std::ofstream out(path, std::ios::trunc);
  out << comment;
  for (const std::string& w : words) {
    std::string escaped;
    for (char ch : w) {
      const auto byte = static_cast<unsigned char>(ch);
      if (ch == '"' || ch == '\\') {
        escaped.push_back('\\');
        escaped.push_back(ch);
      } else if (byte < 0x20 || byte >= 0x7f) {
        absl::StrAppend(&escaped, "\\x", absl::Hex(byte, absl::kZeroPad2));
      } else {
        escaped.push_back(ch);
      }
    }
    out << "\"" << escaped << "\"\n";
  }
  if (!out) fuzz::Fail(absl::StrCat("cannot write ", path));
}

// The message types `root` holds, itself included.
std::vector<const google::protobuf::Descriptor*> MessageClosure(
    const google::protobuf::Descriptor* root) {
  std::vector<const google::protobuf::Descriptor*> out;
  std::vector<const google::protobuf::Descriptor*> todo = {root};
  std::set<const google::protobuf::Descriptor*> seen;
  while (!todo.empty()) {
    const google::protobuf::Descriptor* d = todo.back();
    todo.pop_back();
    if (!seen.insert(d).second) continue;
    out.push_back(d);
    for (int i = 0; i < d->field_count(); ++i) {
      if (d->field(i)->message_type() != nullptr) todo.push_back(d->field(i)->message_type());
    }
  }
  return out;
}

std::string Varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}

// Every field's tag in the wire format of `roots` and what follows them,
// and varints at the edges of their ranges: what a structure-aware mutator
// would know of the messages a fuzzer decodes with ParseFromArray.
std::set<std::string> WireWords(std::vector<const google::protobuf::Descriptor*> roots) {
  std::set<std::string> words;
  for (const google::protobuf::Descriptor* root : roots) {
    for (const google::protobuf::Descriptor* d : MessageClosure(root)) {
      for (int i = 0; i < d->field_count(); ++i) {
        const google::protobuf::FieldDescriptor* f = d->field(i);
        int wire = 0;
        switch (f->type()) {
          case google::protobuf::FieldDescriptor::TYPE_FIXED64:
          case google::protobuf::FieldDescriptor::TYPE_SFIXED64:
          case google::protobuf::FieldDescriptor::TYPE_DOUBLE:
            wire = 1;
            break;
          case google::protobuf::FieldDescriptor::TYPE_STRING:
          case google::protobuf::FieldDescriptor::TYPE_BYTES:
          case google::protobuf::FieldDescriptor::TYPE_MESSAGE:
            wire = 2;
            break;
          case google::protobuf::FieldDescriptor::TYPE_FIXED32:
          case google::protobuf::FieldDescriptor::TYPE_SFIXED32:
          case google::protobuf::FieldDescriptor::TYPE_FLOAT:
            wire = 5;
            break;
          default:
            wire = 0;
        }
        words.insert(Varint((static_cast<uint64_t>(f->number()) << 3) | wire));
      }
    }
  }
  for (uint64_t v : {uint64_t{0x7f}, uint64_t{0x80}, uint64_t{0xffffffff},
                     uint64_t{0x7fffffffffffffff}, uint64_t{0x8000000000000000},
                     uint64_t{0xffffffffffffffff}}) {
    words.insert(Varint(v));
  }
  return words;
}

void Dictionaries(const std::string& dict_dir) {
  // The configuration: every field (textproto and JSON names) and enum
  // value, and the syntax around them.
  std::set<std::string> config;
  for (const google::protobuf::Descriptor* d : MessageClosure(v1::AgentConfig::descriptor())) {
    for (int i = 0; i < d->field_count(); ++i) {
      const google::protobuf::FieldDescriptor* f = d->field(i);
      config.insert(f->name());
      config.insert(absl::StrCat("\"", f->json_name(), "\""));
      if (f->enum_type() != nullptr) {
        for (int j = 0; j < f->enum_type()->value_count(); ++j) {
          config.insert(f->enum_type()->value(j)->name());
        }
      }
    }
  }
  for (const char* syntax : {"{", "}", ":", "[", "]", "\"", "#", "\n", "0.0.0.0:7801",
                             "[::1]:7801", "/bin/true", "certs/", "**"}) {
    config.insert(syntax);
  }
  WriteDictionary(absl::StrCat(dict_dir, "/agent_config.dict"),
                  "# Generated by test/fuzz/make_seeds.cc from cloudha.v1.AgentConfig: every\n"
                  "# field (textproto and JSON names) and enum value, and syntax.\n",
                  config);

  WriteDictionary(absl::StrCat(dict_dir, "/hello.dict"),
                  "# Generated by test/fuzz/make_seeds.cc: the wire tags of cloudha.v1.Hello\n"
                  "# and varints at the edges of their ranges, and node ids.\n",
                  [] {
                    std::set<std::string> w = WireWords({v1::Hello::descriptor()});
                    for (const char* id : {"a", "b", "c", "fuzz"}) w.insert(id);
                    return w;
                  }());
  WriteDictionary(absl::StrCat(dict_dir, "/config_follower.dict"),
                  "# Generated by test/fuzz/make_seeds.cc: the wire tags of\n"
                  "# cloudha.v1.ConfigSyncMessage and ConfigSyncOpen, varints at the edges\n"
                  "# of their ranges, and paths, prefixes and patterns.\n",
                  [] {
                    std::set<std::string> w = WireWords(
                        {v1::ConfigSyncMessage::descriptor(), v1::ConfigSyncOpen::descriptor()});
                    for (const char* p : {"firewall.", "firewall.policy.10.action", "local.**",
                                          "system.hostname", "zone.**", "**", "*", "."}) {
                      w.insert(p);
                    }
                    return w;
                  }());
  WriteDictionary(absl::StrCat(dict_dir, "/session_replica.dict"),
                  "# Generated by test/fuzz/make_seeds.cc: the wire tags of\n"
                  "# cloudha.v1.SessionBatch and SessionSyncOpen, varints at the edges of\n"
                  "# their ranges, and the session codec's record headers (op, family) and\n"
                  "# little-endian field values at the edges of theirs.\n",
                  [] {
                    std::set<std::string> w = WireWords(
                        {v1::SessionBatch::descriptor(), v1::SessionSyncOpen::descriptor()});
                    for (int op : {1, 2}) {
                      for (int family : {2, 10}) w.insert({static_cast<char>(op), static_cast<char>(family)});
                    }
                    w.insert(U16(0xffff));
                    w.insert(U16(0x8000));
                    w.insert(U32(0xffffffff));
                    w.insert(U32(0x80000000));
                    w.insert(U64(0x7fffffffffffffff));
                    w.insert(U64(0x8000000000000000));
                    w.insert(U64(0xffffffffffffffff));
                    return w;
                  }());
}

// --- text inputs -------------------------------------------------------------

void TextSeeds() {
  Write("config_json_fuzzer", "root", "\n{\"system\": {\"hostname\": \"fw-1\", \"dns\": \"198.18.0.53\"}}\n");
  Write("config_json_fuzzer", "prefix",
        "firewall\n{\"enabled\": \"yes\", \"policy\": {\"10\": {\"action\": \"accept\"}, "
        "\"20\": {\"action\": \"drop\", \"log\": true}}}\n");
  Write("config_json_fuzzer", "non-strings",
        "lb.\n{\"port\": 8080, \"ratio\": 1.5, \"on\": false, \"none\": null, "
        "\"list\": [1, \"two\", {\"b\": 2, \"a\": [true]}], \"big\": 1e20}\n");
  Write("config_json_fuzzer", "escapes",
        "\n{\"motd\": \"line 1\\nline 2\\t\\\"quoted\\\" \\u00e9 \\u2603 \\\\\", "
        "\"empty\": \"\", \"space\": \" x \"}\n");

  Write("config_path_fuzzer", "trailing-globstar",
        "system.interface.**\nsystem.interface.eth0.mtu\nrouter.*.gateway\nsystem.hostname\n");
  Write("config_path_fuzzer", "middle-globstar", "a.**.b\na.x.y.b\n**.b\na.**\n");
  Write("config_path_fuzzer", "star", "router.*.gateway\nrouter.r1.gateway\n**\n");
  Write("config_path_fuzzer", "prefix", "firewall\nfirewall.policy.10.action\nfirewall.**\n");

  Write("epoch_store_fuzzer", "small", "epoch 7\n");
  Write("epoch_store_fuzzer", "zero", "epoch 0\n");
  Write("epoch_store_fuzzer", "largest", "epoch 18446744073709551615\n");
}

}  // namespace
}  // namespace cloudha

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s CORPUS_DIR DICT_DIR DEPLOY_EXAMPLE_CONFIG\n", argv[0]);
    return 2;
  }
  cloudha::corpus_dir = argv[1];
  cloudha::ConfigureLogging(cloudha::LogFormat::kText, cloudha::LogLevel::kError);
  std::ifstream example(argv[3]);
  std::string example_text((std::istreambuf_iterator<char>(example)), std::istreambuf_iterator<char>());
  if (example_text.empty()) cloudha::fuzz::Fail(absl::StrCat("cannot read ", argv[3]));
  cloudha::SessionCodecSeeds();
  cloudha::SessionReplicaSeeds();
  cloudha::HelloSeeds();
  cloudha::ConfigFollowerSeeds();
  cloudha::AgentConfigSeeds(example_text);
  cloudha::Dictionaries(argv[2]);
  cloudha::TextSeeds();
  return 0;
}
