#include "agent/metrics.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cloudha {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

v1::AgentConfig TwoPathConfig() {
  v1::AgentConfig config;
  config.mutable_cluster()->set_name("prod");
  v1::PeerConfig* b = config.add_peers();
  b->set_id("b");
  b->add_addresses("10.0.0.2:7900");
  b->add_addresses("10.1.0.2:7900");
  return config;
}

v1::StatusResponse PrimaryStatus() {
  v1::StatusResponse s;
  s.set_role(v1::PRIMARY);
  s.set_epoch(7);
  s.set_role_age_ms(2500);
  s.set_primary_ready(true);
  v1::PeerStatus* b = s.add_peers();
  b->set_id("b");
  b->set_state(v1::PeerStatus::UP);
  b->set_role(v1::SECONDARY);
  b->set_last_hello_age_ms(120);
  v1::PathStatus* p0 = b->add_paths();
  p0->set_address("10.0.0.2:7900");
  p0->set_state(v1::PeerStatus::UP);
  p0->set_hellos_sent(40);
  p0->set_hellos_received(39);
  p0->set_loss_pct(2.5);
  p0->set_last_reply_age_ms(250);
  v1::PathStatus* p1 = b->add_paths();
  p1->set_address("10.1.0.2:7900");
  p1->set_state(v1::PeerStatus::DOWN);
  p1->set_last_reply_age_ms(-1);
  b->mutable_sessions()->set_state("streaming");
  b->mutable_sessions()->set_lag_entries(12);
  b->mutable_sessions()->set_lag_ms(30);
  b->mutable_config()->set_compared(true);
  b->mutable_config()->set_checksum_match(false);
  s.mutable_sessions()->set_source("conntrack");
  s.mutable_sessions()->set_commit("on_promotion");
  s.mutable_sessions()->set_table_size(1000);
  s.mutable_sessions()->set_kernel_failed(3);
  s.mutable_sessions()->set_snapshots_sent(2);
  s.mutable_sessions()->set_snapshots_received(1);
  s.mutable_config()->set_revision(42);
  s.mutable_config()->set_in_sync(true);
  v1::MonitorStatus* m = s.add_monitors();
  m->set_name("gateway");
  m->set_passing(false);
  s.mutable_tls()->set_certificate_not_after_s(1'000'000 + 86'400);
  v1::TrustedCaStatus* ca = s.mutable_tls()->add_cas();
  ca->set_name("cloudha CA prod");
  ca->set_fingerprint("SHA256:old");
  ca->set_not_after_s(1'000'000 - 10);
  // A rotation's bundle: the new CA has the same name.
  v1::TrustedCaStatus* next = s.mutable_tls()->add_cas();
  next->set_name("cloudha CA prod");
  next->set_fingerprint("SHA256:new");
  next->set_not_after_s(1'000'000 + 3600);
  return s;
}

std::string ScrapeOf(const Metrics& metrics, const v1::StatusResponse& s) {
  return metrics.Scrape(s, absl::FromUnixSeconds(1'000'000));
}

TEST(MetricsTest, StatusSeriesCarryTheClusterAndTheStatusValues) {
  Metrics metrics(TwoPathConfig());
  std::string text = ScrapeOf(metrics, PrimaryStatus());
  EXPECT_THAT(text, HasSubstr("# TYPE cloudha_role gauge"));
  EXPECT_THAT(text, HasSubstr("cloudha_role{cluster=\"prod\",role=\"primary\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("cloudha_role{cluster=\"prod\",role=\"secondary\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("cloudha_epoch{cluster=\"prod\"} 7\n"));
  EXPECT_THAT(text, HasSubstr("cloudha_role_age_seconds{cluster=\"prod\"} 2.5\n"));
  EXPECT_THAT(text, HasSubstr("cloudha_primary_ready{cluster=\"prod\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("cloudha_peer_up{cluster=\"prod\",peer=\"b\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("cloudha_peer_last_hello_age_seconds{cluster=\"prod\",peer=\"b\"} 0.12\n"));
  EXPECT_THAT(text, HasSubstr("cloudha_peer_role{cluster=\"prod\",peer=\"b\",role=\"secondary\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("cloudha_path_up{cluster=\"prod\",peer=\"b\",path=\"0\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("cloudha_path_up{cluster=\"prod\",peer=\"b\",path=\"1\"} 0\n"));
  EXPECT_THAT(text, HasSubstr(
                        "cloudha_path_info{cluster=\"prod\",peer=\"b\",path=\"1\",address=\"10.1.0.2:7900\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE cloudha_path_hellos_sent_total counter"));
  EXPECT_THAT(text, HasSubstr("cloudha_path_hellos_sent_total{cluster=\"prod\",peer=\"b\",path=\"0\"} 40\n"));
  EXPECT_THAT(text, HasSubstr("cloudha_path_loss_ratio{cluster=\"prod\",peer=\"b\",path=\"0\"} 0.025\n"));
  EXPECT_THAT(text, HasSubstr("cloudha_sessions{cluster=\"prod\"} 1000\n"));
  EXPECT_THAT(text, HasSubstr("cloudha_sessions_kernel_changes_total{cluster=\"prod\",change=\"failed\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("cloudha_peer_sessions_lag_changes{cluster=\"prod\",peer=\"b\"} 12\n"));
  EXPECT_THAT(text, HasSubstr("cloudha_peer_sessions_lag_seconds{cluster=\"prod\",peer=\"b\"} 0.03\n"));
  EXPECT_THAT(text, HasSubstr("cloudha_config_revision{cluster=\"prod\"} 42\n"));
  EXPECT_THAT(text, HasSubstr("cloudha_config_checksum_match{cluster=\"prod\",peer=\"b\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("cloudha_monitor_up{cluster=\"prod\",monitor=\"gateway\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("cloudha_tls_certificate_expires_in_seconds{cluster=\"prod\"} 86400\n"));
  EXPECT_THAT(text, HasSubstr("cloudha_tls_ca_expires_in_seconds{cluster=\"prod\",ca=\"cloudha CA "
                              "prod\",fingerprint=\"SHA256:old\"} -10\n"));
  EXPECT_THAT(text, HasSubstr("cloudha_tls_ca_expires_in_seconds{cluster=\"prod\",ca=\"cloudha CA "
                              "prod\",fingerprint=\"SHA256:new\"} 3600\n"));
  EXPECT_THAT(text, HasSubstr(
                        "cloudha_path_last_reply_age_seconds{cluster=\"prod\",peer=\"b\",path=\"0\"} 0.25\n"));
  // Path 1 never had a reply: no age.
  EXPECT_THAT(text, Not(HasSubstr("cloudha_path_last_reply_age_seconds{cluster=\"prod\",peer=\"b\",path=\"1\"}")));
  EXPECT_THAT(text, HasSubstr("cloudha_sessions_snapshots_total{cluster=\"prod\",direction=\"sent\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("cloudha_sessions_snapshots_total{cluster=\"prod\",direction=\"received\"} 1\n"));
  // No arbiter configured: no arbiter series.
  EXPECT_THAT(text, Not(HasSubstr("cloudha_arbiter")));
  EXPECT_THAT(text, HasSubstr("cloudha_build_info{cluster=\"prod\",commit=\""));
}

TEST(MetricsTest, SeriesOfPeersWithoutStreamsOrComparisonsAreLeftOut) {
  Metrics metrics(TwoPathConfig());
  v1::StatusResponse s = PrimaryStatus();
  s.mutable_peers(0)->clear_sessions();
  s.mutable_peers(0)->clear_config();
  s.mutable_peers(0)->set_last_hello_age_ms(-1);
  std::string text = ScrapeOf(metrics, s);
  EXPECT_THAT(text, Not(HasSubstr("cloudha_peer_sessions_lag_changes")));
  EXPECT_THAT(text, Not(HasSubstr("cloudha_config_checksum_match")));
  EXPECT_THAT(text, Not(HasSubstr("cloudha_peer_last_hello_age_seconds")));
}

TEST(MetricsTest, NoSessionSeriesWithoutSessionSyncNoKernelSeriesWithoutConntrack) {
  Metrics metrics(TwoPathConfig());
  v1::StatusResponse s = PrimaryStatus();
  s.mutable_sessions()->set_source("publisher");
  s.mutable_sessions()->clear_commit();
  std::string text = ScrapeOf(metrics, s);
  EXPECT_THAT(text, HasSubstr("cloudha_sessions{cluster=\"prod\"} 1000\n"));
  EXPECT_THAT(text, Not(HasSubstr("cloudha_sessions_kernel_changes_total")));
  EXPECT_THAT(text, Not(HasSubstr("cloudha_sessions_promotion_commit_seconds")));
  s.clear_sessions();
  s.mutable_peers(0)->clear_sessions();
  EXPECT_THAT(ScrapeOf(metrics, s), Not(HasSubstr("cloudha_sessions")));
}

TEST(MetricsTest, ArbiterSeriesWhenOneIsConfigured) {
  Metrics metrics(TwoPathConfig());
  v1::StatusResponse s = PrimaryStatus();
  s.mutable_arbiter()->set_backend("witness");
  s.mutable_arbiter()->set_reachable(true);
  s.mutable_arbiter()->set_lease_held(true);
  s.mutable_arbiter()->set_lease_remaining_ms(800);
  std::string text = ScrapeOf(metrics, s);
  EXPECT_THAT(text, HasSubstr("cloudha_arbiter_reachable{cluster=\"prod\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("cloudha_arbiter_lease_remaining_seconds{cluster=\"prod\"} 0.8\n"));
}

TEST(MetricsTest, EventsCountWhereTheyHappen) {
  Metrics metrics(TwoPathConfig());
  metrics.RoleChanged(v1::PRIMARY, "peer_lost");
  metrics.RoleChanged(v1::PRIMARY, "peer_lost");
  metrics.RoleChanged(v1::SECONDARY, "");
  metrics.HelloRoundTrip("b", 1, absl::Microseconds(700));
  metrics.HelloRoundTrip("b", 1, absl::Milliseconds(30));
  metrics.HelloRoundTrip("b", 5, absl::Milliseconds(1));    // not a configured path
  metrics.HelloRoundTrip("zz", 0, absl::Milliseconds(1));   // not a configured peer
  metrics.ConnectionRefused("b", "wrong_group");
  metrics.ConnectionRefused("mallory", "wrong_node");
  metrics.HookRan("to_primary", "failed", absl::Milliseconds(300));
  metrics.HookRan("to_primary", "ok", absl::Seconds(2));
  metrics.ConfigWriteRefused(absl::StatusCode::kFailedPrecondition);
  std::string text = ScrapeOf(metrics, PrimaryStatus());
  EXPECT_THAT(text, HasSubstr(
                        "cloudha_role_changes_total{cluster=\"prod\",cause=\"peer_lost\",to=\"primary\"} 2\n"));
  EXPECT_THAT(text, HasSubstr(
                        "cloudha_role_changes_total{cluster=\"prod\",cause=\"other\",to=\"secondary\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE cloudha_path_rtt_seconds histogram"));
  EXPECT_THAT(text, HasSubstr(
                        "cloudha_path_rtt_seconds_count{cluster=\"prod\",path=\"1\",peer=\"b\"} 2\n"));
  EXPECT_THAT(text, HasSubstr(
                        "cloudha_path_rtt_seconds_bucket{cluster=\"prod\",path=\"1\",peer=\"b\",le=\"0.001\"} 1\n"));
  EXPECT_THAT(text, HasSubstr(
                        "cloudha_path_rtt_seconds_count{cluster=\"prod\",path=\"0\",peer=\"b\"} 0\n"));
  EXPECT_THAT(text, Not(HasSubstr("path=\"5\"")));
  EXPECT_THAT(text, Not(HasSubstr("peer=\"zz\"")));
  EXPECT_THAT(text, HasSubstr(
                        "cloudha_connections_refused_total{cluster=\"prod\",peer=\"b\",reason=\"wrong_group\"} 1\n"));
  EXPECT_THAT(text, HasSubstr(
                        "cloudha_connections_refused_total{cluster=\"prod\",peer=\"unknown\",reason=\"wrong_node\"} 1\n"));
  EXPECT_THAT(text, Not(HasSubstr("mallory")));
  EXPECT_THAT(text, HasSubstr(
                        "cloudha_hook_runs_total{cluster=\"prod\",hook=\"to_primary\",result=\"failed\"} 1\n"));
  EXPECT_THAT(text, HasSubstr(
                        "cloudha_hook_duration_seconds_count{cluster=\"prod\",hook=\"to_primary\"} 2\n"));
  EXPECT_THAT(text, HasSubstr(
                        "cloudha_hook_duration_seconds_sum{cluster=\"prod\",hook=\"to_primary\"} 2.3\n"));
  EXPECT_THAT(text, HasSubstr(
                        "cloudha_config_writes_refused_total{cluster=\"prod\",code=\"failed_precondition\"} 1\n"));
}

TEST(MetricsTest, CounterSeriesStartAtZero) {
  Metrics metrics(TwoPathConfig());
  std::string text = ScrapeOf(metrics, PrimaryStatus());
  EXPECT_THAT(text, HasSubstr(
                        "cloudha_role_changes_total{cluster=\"prod\",cause=\"peer_lost\",to=\"primary\"} 0\n"));
  EXPECT_THAT(text, HasSubstr(
                        "cloudha_hook_runs_total{cluster=\"prod\",hook=\"peer_found\",result=\"timeout\"} 0\n"));
  EXPECT_THAT(text, HasSubstr(
                        "cloudha_connections_refused_total{cluster=\"prod\",peer=\"b\",reason=\"refused_by_peer\"} 0\n"));
  EXPECT_THAT(text, HasSubstr(
                        "cloudha_connections_refused_total{cluster=\"prod\",peer=\"unknown\",reason=\"wrong_node\"} 0\n"));
  EXPECT_THAT(text, HasSubstr(
                        "cloudha_config_writes_refused_total{cluster=\"prod\",code=\"failed_precondition\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("cloudha_hook_duration_seconds_count{cluster=\"prod\",hook=\"to_fault\"} 0\n"));
}

TEST(MetricsTest, HookResults) {
  CommandOutcome ok;
  ok.exit_code = 0;
  CommandOutcome failed;
  failed.exit_code = 3;
  CommandOutcome timed_out;
  timed_out.timed_out = true;
  EXPECT_STREQ(HookResultLabel(ok), "ok");
  EXPECT_STREQ(HookResultLabel(failed), "failed");
  EXPECT_STREQ(HookResultLabel(timed_out), "timeout");
  Metrics metrics(TwoPathConfig());
  EXPECT_THAT(ScrapeOf(metrics, PrimaryStatus()),
              HasSubstr("cloudha_hook_runs_total{cluster=\"prod\",hook=\"config_apply\",result=\"failed\"} 0\n"));
}

TEST(MetricsTest, EveryFamilyHasHelpAndTypeOnce) {
  Metrics metrics(TwoPathConfig());
  metrics.HookRan("peer_lost", "timeout", absl::Seconds(1));
  std::string text = ScrapeOf(metrics, PrimaryStatus());
  for (const char* family : {"cloudha_role", "cloudha_sessions", "cloudha_hook_runs_total",
                             "cloudha_path_rtt_seconds", "cloudha_build_info"}) {
    std::string type = absl::StrCat("# TYPE ", family, " ");
    size_t first = text.find(type);
    ASSERT_NE(first, std::string::npos) << family;
    EXPECT_EQ(text.find(type, first + 1), std::string::npos) << family;
    EXPECT_THAT(text, HasSubstr(absl::StrCat("# HELP ", family, " "))) << family;
  }
}

}  // namespace
}  // namespace cloudha
