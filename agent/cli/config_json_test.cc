#include "agent/cli/config_json.h"

#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cloudha {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

std::vector<v1::ConfigEntry> Entries(std::vector<std::pair<std::string, std::string>> pairs) {
  std::vector<v1::ConfigEntry> entries;
  for (auto& [path, value] : pairs) {
    v1::ConfigEntry e;
    e.set_path(path);
    e.set_value(value);
    entries.push_back(std::move(e));
  }
  return entries;
}

std::vector<std::pair<std::string, std::string>> Pairs(
    const std::vector<v1::ConfigEntry>& entries) {
  std::vector<std::pair<std::string, std::string>> pairs;
  for (const v1::ConfigEntry& e : entries) pairs.emplace_back(e.path(), e.value());
  return pairs;
}

TEST(ConfigJsonTest, ExportNestsPathsBelowThePrefix) {
  absl::StatusOr<std::string> json =
      ConfigEntriesToJson("firewall", Entries({{"firewall.enabled", "yes"},
                                               {"firewall.policy.10.action", "accept"},
                                               {"firewall.policy.10.src", "10.0.0.0/8"},
                                               {"firewall.policy.2.action", "deny"}}));
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(*json,
            "{\n"
            "  \"enabled\": \"yes\",\n"
            "  \"policy\": {\n"
            "    \"10\": {\n"
            "      \"action\": \"accept\",\n"
            "      \"src\": \"10.0.0.0/8\"\n"
            "    },\n"
            "    \"2\": {\n"
            "      \"action\": \"deny\"\n"
            "    }\n"
            "  }\n"
            "}\n");
}

TEST(ConfigJsonTest, ExportOfNothingIsAnEmptyObject) {
  absl::StatusOr<std::string> json = ConfigEntriesToJson("", {});
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(*json, "{}\n");
}

TEST(ConfigJsonTest, RoundTripsAtTheRootAndBelowAPrefix) {
  const std::vector<std::pair<std::string, std::string>> root = {
      {"a", "1"},
      {"b-c.d_e", "x"},
      {"system.dns.servers", "[\"1.1.1.1\",\"8.8.8.8\"]"},
      {"system.hostname", "fw-1"},
      {"text", "two\nlines, \"quoted\", tab\t, back\\slash, \x01, caf\xc3\xa9, <html>"},
      {"z", ""}};
  absl::StatusOr<std::string> json = ConfigEntriesToJson("", Entries(root));
  ASSERT_TRUE(json.ok()) << json.status();
  absl::StatusOr<std::vector<v1::ConfigEntry>> back = JsonToConfigEntries("", *json);
  ASSERT_TRUE(back.ok()) << back.status() << "\n" << *json;
  EXPECT_EQ(Pairs(*back), root);

  // The same document imported elsewhere lands below that prefix.
  absl::StatusOr<std::vector<v1::ConfigEntry>> moved = JsonToConfigEntries("site.b", *json);
  ASSERT_TRUE(moved.ok()) << moved.status();
  ASSERT_EQ(moved->size(), root.size());
  EXPECT_EQ((*moved)[3].path(), "site.b.system.hostname");
  EXPECT_EQ((*moved)[3].value(), "fw-1");
  absl::StatusOr<std::string> again = ConfigEntriesToJson("site.b", *moved);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *json);
}

TEST(ConfigJsonTest, ImportStoresStringsAsTheyAreAndOtherLeavesAsCompactJson) {
  absl::StatusOr<std::vector<v1::ConfigEntry>> entries = JsonToConfigEntries("app", R"({
    "name": "web",
    "number": "8080",
    "port": 8080,
    "ratio": 1.5,
    "big": 1e20,
    "on": true,
    "off": false,
    "none": null,
    "list": [1, "a b", {"z": 1, "a": [true, null]}, []],
    "deep": {"er": {"est": "x"}}
  })");
  ASSERT_TRUE(entries.ok()) << entries.status();
  EXPECT_THAT(
      Pairs(*entries),
      ElementsAre(Pair("app.big", "1e+20"), Pair("app.deep.er.est", "x"),
                  Pair("app.list", "[1,\"a b\",{\"a\":[true,null],\"z\":1},[]]"),
                  Pair("app.name", "web"), Pair("app.none", "null"), Pair("app.number", "8080"),
                  Pair("app.off", "false"), Pair("app.on", "true"), Pair("app.port", "8080"),
                  Pair("app.ratio", "1.5")));
}

TEST(ConfigJsonTest, ExportRefusesAPathWithAValueAndChildren) {
  absl::StatusOr<std::string> json =
      ConfigEntriesToJson("", Entries({{"a.b", "x"}, {"a.b.c", "y"}, {"a.d", "z"}}));
  ASSERT_FALSE(json.ok());
  EXPECT_EQ(json.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(json.status().message(), HasSubstr("a.b holds a value and also has paths below it"));
}

TEST(ConfigJsonTest, ExportRefusesAPrefixThatHoldsAValue) {
  absl::StatusOr<std::string> json =
      ConfigEntriesToJson("a.b", Entries({{"a.b", "x"}, {"a.b.c", "y"}}));
  ASSERT_FALSE(json.ok());
  EXPECT_EQ(json.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(json.status().message(), HasSubstr("a.b holds a value itself"));
  EXPECT_THAT(json.status().message(), HasSubstr("cloudha config get a.b"));
}

TEST(ConfigJsonTest, ExportRefusesEntriesOutsideThePrefix) {
  absl::StatusOr<std::string> json =
      ConfigEntriesToJson("firewall", Entries({{"firewallx.a", "1"}}));
  ASSERT_FALSE(json.ok());
  EXPECT_EQ(json.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(json.status().message(), HasSubstr("\"firewallx.a\" is not below the prefix"));
}

TEST(ConfigJsonTest, InvalidJsonSaysWhere) {
  absl::StatusOr<std::vector<v1::ConfigEntry>> r =
      JsonToConfigEntries("", "{\n  \"a\": {\n    \"b\": tru\n  }\n}\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("invalid JSON at line 3, column 10"));

  r = JsonToConfigEntries("", "{\"a\" 1}");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("invalid JSON at line 1, column 6"));

  r = JsonToConfigEntries("", "{\"a\": \"x\"} trailing");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("invalid JSON"));

  r = JsonToConfigEntries("", "{\"a\": 1, \"a\": 2}");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("invalid JSON"));

  r = JsonToConfigEntries("", "{\"a\": [1,\n");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(),
              HasSubstr("invalid JSON at line 2, column 1 (the end of the input)"));

  r = JsonToConfigEntries("", " \n");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("the input is empty"));
}

TEST(ConfigJsonTest, TheTopLevelMustBeANonEmptyObject) {
  for (const char* json : {"[1, 2]", "\"x\"", "42", "null"}) {
    absl::StatusOr<std::vector<v1::ConfigEntry>> r = JsonToConfigEntries("", json);
    ASSERT_FALSE(r.ok()) << json;
    EXPECT_THAT(r.status().message(), HasSubstr("the top level must be a JSON object")) << json;
  }
  absl::StatusOr<std::vector<v1::ConfigEntry>> r = JsonToConfigEntries("a", "{}");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("nothing to import"));
}

TEST(ConfigJsonTest, AnEmptyObjectBelowTheTopIsNamed) {
  absl::StatusOr<std::vector<v1::ConfigEntry>> r =
      JsonToConfigEntries("site", R"({"a": {"b": {}, "c": "x"}})");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("site.a.b: empty object, nothing to store"));
}

TEST(ConfigJsonTest, KeysMustBePathSegments) {
  struct Case {
    std::string prefix;
    std::string json;
    std::string expected;
  };
  const std::string long_key(65, 'k');
  for (const Case& c : std::vector<Case>{
           {"", R"({"a.b": "x"})", "key \"a.b\" in the top-level object is not a path segment"},
           {"p", R"({"a": {"b c": "x"}})", "key \"b c\" in p.a is not a path segment"},
           {"", R"({"": "x"})", "key \"\" in the top-level object"},
           {"p", R"({"a": {"caf\u00e9": "x"}})", "key \"caf\xc3\xa9\" in p.a"},
           {"", "{\"" + long_key + "\": \"x\"}",
            "key \"" + long_key + "\" in the top-level object"},
       }) {
    absl::StatusOr<std::vector<v1::ConfigEntry>> r = JsonToConfigEntries(c.prefix, c.json);
    ASSERT_FALSE(r.ok()) << c.json;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(r.status().message(), HasSubstr(c.expected)) << c.json;
    EXPECT_THAT(r.status().message(), HasSubstr("1-64 characters of A-Z a-z 0-9 _ -"));
  }
  absl::StatusOr<std::vector<v1::ConfigEntry>> dotted = JsonToConfigEntries("", R"({"a.b": "x"})");
  ASSERT_FALSE(dotted.ok());
  EXPECT_THAT(dotted.status().message(), HasSubstr("nest objects instead of writing dots"));

  const std::string max_key(64, 'k');
  absl::StatusOr<std::vector<v1::ConfigEntry>> ok =
      JsonToConfigEntries("", "{\"" + max_key + "\": {\"A-z_09\": \"x\"}}");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_THAT(Pairs(*ok), ElementsAre(Pair(max_key + ".A-z_09", "x")));
}

TEST(ConfigJsonTest, InvalidPrefixIsRefused) {
  absl::StatusOr<std::vector<v1::ConfigEntry>> r = JsonToConfigEntries("a..b", R"({"c": "x"})");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("prefix \"a..b\""));
  absl::StatusOr<std::string> json = ConfigEntriesToJson("a/b", {});
  ASSERT_FALSE(json.ok());
  EXPECT_THAT(json.status().message(), HasSubstr("character '/' at offset 1"));
}

TEST(ConfigJsonTest, NormalizeConfigPrefixStripsOneTrailingDot) {
  EXPECT_EQ(NormalizeConfigPrefix("firewall."), "firewall");
  EXPECT_EQ(NormalizeConfigPrefix("firewall"), "firewall");
  EXPECT_EQ(NormalizeConfigPrefix("a.b."), "a.b");
  EXPECT_EQ(NormalizeConfigPrefix("."), "");
  EXPECT_EQ(NormalizeConfigPrefix(""), "");
}

TEST(ConfigJsonTest, JsonQuoteEscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(JsonQuote("plain"), "\"plain\"");
  EXPECT_EQ(JsonQuote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(JsonQuote("l1\nl2\r\t\b\f"), "\"l1\\nl2\\r\\t\\b\\f\"");
  EXPECT_EQ(JsonQuote(std::string("\x01\x1f\x7f", 3)), "\"\\u0001\\u001f\\u007f\"");
  EXPECT_EQ(JsonQuote("caf\xc3\xa9 <b>"), "\"caf\xc3\xa9 <b>\"");
}

TEST(ConfigJsonTest, DisplayConfigValueQuotesOnlyWhatWouldBeAmbiguous) {
  EXPECT_EQ(DisplayConfigValue("accept"), "accept");
  EXPECT_EQ(DisplayConfigValue("[1,2]"), "[1,2]");
  EXPECT_EQ(DisplayConfigValue("a b"), "a b");
  EXPECT_EQ(DisplayConfigValue("two\nlines"), "\"two\\nlines\"");
  EXPECT_EQ(DisplayConfigValue(""), "\"\"");
  EXPECT_EQ(DisplayConfigValue("\"quoted\""), "\"\\\"quoted\\\"\"");
  EXPECT_EQ(DisplayConfigValue(" padded"), "\" padded\"");
  EXPECT_EQ(DisplayConfigValue("<absent>"), "\"<absent>\"");
}

}  // namespace
}  // namespace cloudha
