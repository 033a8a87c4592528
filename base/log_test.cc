#include "base/log.h"

#include "gtest/gtest.h"

namespace cloudha {
namespace {

TEST(LogTest, TextQuotesWhatNeedsIt) {
  EXPECT_EQ(FormatEventForTest(LogFormat::kText, "peer_refused",
                               {{"peer", "b"}, {"reason", "wrong cluster \"x\""}, {"n", 3}}),
            "event=peer_refused peer=b reason=\"wrong cluster \\\"x\\\"\" n=3");
  EXPECT_EQ(FormatEventForTest(LogFormat::kText, "e", {{"empty", ""}}), "event=e empty=\"\"");
}

TEST(LogTest, JsonEscapes) {
  std::string json = FormatEventForTest(LogFormat::kJson, "peer_up",
                                        {{"peer", "b\"\n"}, {"rtt_ms", 0.5}});
  EXPECT_NE(json.find("\"event\":\"peer_up\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"peer\":\"b\\\"\\n\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"rtt_ms\":\"0.5\""), std::string::npos) << json;
}

}  // namespace
}  // namespace cloudha
