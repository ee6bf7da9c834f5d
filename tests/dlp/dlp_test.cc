// dlp_test.cc -- DlpScanner: every detector with true positives and near misses, JSON paths,
// tool results, redaction targets, limits, and the non-PII corpus (tests/dlp/corpus/*.txt),
// which must produce zero findings.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "gateway/dlp.h"

using nlohmann::json;
using writ::gateway::DlpConfig;
using writ::gateway::DlpCustomPattern;
using writ::gateway::DlpRedaction;
using writ::gateway::DlpReport;
using writ::gateway::DlpScanner;

namespace {

const DlpScanner& Default() {
  static std::unique_ptr<const DlpScanner> s = [] {
    std::string error;
    auto p = DlpScanner::Create(DlpConfig{}, &error);
    REQUIRE_MESSAGE(p != nullptr, error);
    return p;
  }();
  return *s;
}

// "class:matched text" for every finding of Scan(text).
std::vector<std::string> Found(std::string_view text, const DlpScanner& s = Default()) {
  std::vector<std::string> out;
  for (const auto& f : s.Scan(text).findings)
    out.push_back(f.cls + ":" + std::string(text.substr(f.offset, f.length)));
  return out;
}

std::vector<std::string> V(std::initializer_list<std::string> l) { return l; }

}  // namespace

TEST_CASE("every built-in detector compiles and the set is complete") {
  CHECK(writ::gateway::BuiltinDlpClasses() ==
        V({"aws_access_key", "aws_secret_key", "bearer_token", "credit_card", "email",
           "github_token", "google_api_key", "iban", "jwt", "phone", "private_key",
           "slack_token", "ssn"}));
  std::string error;
  for (const auto& name : writ::gateway::BuiltinDlpClasses()) {
    DlpConfig c;
    c.detectors = {name};
    CHECK_MESSAGE(DlpScanner::Create(c, &error) != nullptr, name, error);
  }
}

TEST_CASE("email") {
  CHECK(Found("contact alice.smith+tag@example.co.uk today") ==
        V({"email:alice.smith+tag@example.co.uk"}));
  CHECK(Found("<bob_99@mail-server.example.org>") == V({"email:bob_99@mail-server.example.org"}));
  // Near misses: retina file names, hosts without a domain, npm versions, doubled dots.
  CHECK(Found("logo@2x.png and icon@3x.webp").empty());
  CHECK(Found("ssh deploy@localhost").empty());
  CHECK(Found("npm i @types/node@18.2.0 left-pad@1.3.0").empty());
  CHECK(Found("a..b@example.com").empty());
}

TEST_CASE("phone") {
  CHECK(Found("call +1 (415) 555-0134 now") == V({"phone:+1 (415) 555-0134"}));
  CHECK(Found("office: +44 20 7946 0958 - 10:30 to 18:00") == V({"phone:+44 20 7946 0958"}));
  CHECK(Found("mobile +4915123456789.") == V({"phone:+4915123456789"}));
  CHECK(Found("(212) 555-0134") == V({"phone:(212) 555-0134"}));
  CHECK(Found("tel 212-555-0134 or 212.555.0134") ==
        V({"phone:212-555-0134", "phone:212.555.0134"}));
  CHECK(Found("London 020 7946 0958") == V({"phone:020 7946 0958"}));
  CHECK(Found("Paris 01 23 45 67 89") == V({"phone:01 23 45 67 89"}));
  // Near misses: timestamps, versions, epoch seconds, IPs, offsets, ids, NANP rules.
  CHECK(Found("2024-01-15 12:30:45 and 2024-01-15T12:30:45+05:30").empty());
  CHECK(Found("Windows 10.0.19041.1415, build 22621.2715").empty());
  CHECK(Found("ts=1700000000 id=12345678901").empty());
  CHECK(Found("192.168.100.200 and 10.200.300.4000").empty());
  CHECK(Found("123-456-7890 112-555-0134 212-155-0134").empty());  // area/exchange 0/1
  CHECK(Found("212-555.0134").empty());                              // mixed separators
  CHECK(Found("shift 0930 1200").empty());
  CHECK(Found("v212.555.0134 x-212-555-0134").empty());
  CHECK(Found("score +12 points, +3.5%").empty());
}

TEST_CASE("ssn") {
  CHECK(Found("ssn 234-56-7890.") == V({"ssn:234-56-7890"}));
  CHECK(Found("Social Security Number: 234 56 7890") == V({"ssn:234 56 7890"}));
  CHECK(Found("SSN=234567890") == V({"ssn:234567890"}));
  // Validity rules: area 000, 666, 9xx; group 00; serial 0000; advertised numbers.
  CHECK(Found("000-12-3456 666-12-3456 912-34-5678 234-00-5678 234-56-0000").empty());
  CHECK(Found("078-05-1120 219-09-9999").empty());
  // Without an SSN keyword, only the dashed form counts; no longer digit runs.
  CHECK(Found("234 56 7890 and 234567890").empty());
  CHECK(Found("1234-56-7890 234-56-78901 a234-56-7890").empty());
}

TEST_CASE("credit_card") {
  CHECK(Found("card 4111 1111 1111 1111 exp") == V({"credit_card:4111 1111 1111 1111"}));
  CHECK(Found("4111-1111-1111-1111") == V({"credit_card:4111-1111-1111-1111"}));
  CHECK(Found("mc 5555555555554444") == V({"credit_card:5555555555554444"}));
  CHECK(Found("amex 378282246310005 / 3782 822463 10005") ==
        V({"credit_card:378282246310005", "credit_card:3782 822463 10005"}));
  CHECK(Found("discover 6011111111111117") == V({"credit_card:6011111111111117"}));
  // The card inside a longer run of groups is still found.
  CHECK(Found("4111 1111 1111 1111 1225") == V({"credit_card:4111 1111 1111 1111"}));
  // Near misses: bad Luhn, unknown issuer, timestamps in ms / ns, mixed separators, repeats.
  CHECK(Found("4111 1111 1111 1112").empty());
  CHECK(Found("1234567812345678 9999999999999995").empty());
  CHECK(Found("4111111111111111 5555555555554444") ==
        V({"credit_card:4111111111111111", "credit_card:5555555555554444"}));
  CHECK(Found("ts 1700000000000 ns 1700000000000000000").empty());
  CHECK(Found("4111-1111 1111-1111").empty());
  CHECK(Found("0000 0000 0000 0000").empty());
  CHECK(Found("order 41111111111111111111111").empty());  // too long: an id
  CHECK(Found("v4111111111111111 4111111111111111.5").empty());
}

TEST_CASE("iban") {
  CHECK(Found("pay DE89 3704 0044 0532 0130 00 BIC COBADEFFXXX") ==
        V({"iban:DE89 3704 0044 0532 0130 00"}));
  CHECK(Found("GB82WEST12345698765432") == V({"iban:GB82WEST12345698765432"}));
  CHECK(Found("NL91ABNA0417164300, FR1420041010050500013M02606") ==
        V({"iban:NL91ABNA0417164300", "iban:FR1420041010050500013M02606"}));
  // Near misses: bad checksum, unknown country, wrong length for the country.
  CHECK(Found("DE89 3704 0044 0532 0130 01").empty());
  CHECK(Found("XX89370400440532013000").empty());
  CHECK(Found("GB82WEST1234569876543").empty());
}

TEST_CASE("cloud and service credentials") {
  CHECK(Found("key AKIAIOSFODNN7EXAMPLE") == V({"aws_access_key:AKIAIOSFODNN7EXAMPLE"}));
  CHECK(Found("ASIAY34FZKBOKMUTVV7A,") == V({"aws_access_key:ASIAY34FZKBOKMUTVV7A"}));
  CHECK(Found("AKIAIOSFODNN7EXAMPL XAKIAIOSFODNN7EXAMPLE AKIAIOSFODNN7EXAMPLE1").empty());

  CHECK(Found("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n") ==
        V({"aws_secret_key:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}));
  CHECK(Found(R"({"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"})") ==
        V({"aws_secret_key:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}));
  CHECK(Found("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY").empty());  // no context
  CHECK(Found("AWS_SECRET_ACCESS_KEY=${AWS_SECRET}").empty());
  CHECK(Found("secret_access_key: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").empty());

  const std::string ghp = "ghp_" + std::string("aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5");
  CHECK(Found("token " + ghp) == V({"github_token:" + ghp}));
  const std::string pat = "github_pat_11ABCDEFG0" + std::string(72, 'x');
  CHECK(Found(pat) == V({"github_token:" + pat}));
  CHECK(Found("ghp_short gho_ ghx_aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5").empty());

  const std::string slack = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx";
  CHECK(Found("SLACK=" + slack) == V({"slack_token:" + slack}));
  CHECK(Found("xoxo-gossip xoxb- xoxp-abc-def").empty());

  const std::string gkey = "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe";
  CHECK(Found("key=" + gkey + "&q=1") == V({"google_api_key:" + gkey}));
  CHECK(Found("AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGew").empty());  // too short
}

TEST_CASE("private keys, JWTs, bearer tokens") {
  const std::string pem =
      "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7\n"
      "-----END RSA PRIVATE KEY-----";
  CHECK(Found("key:\n" + pem + "\nbye") == V({"private_key:" + pem}));
  const std::string openssh = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA";
  CHECK(Found(openssh) == V({"private_key:" + openssh}));  // truncated: still found
  CHECK(Found("-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkq\n-----END PUBLIC KEY-----").empty());
  CHECK(Found("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----").empty());

  const std::string jwt =
      "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiw"
      "iaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
  CHECK(Found("id_token=" + jwt) == V({"jwt:" + jwt}));
  // Header without "alg": not a JWT.
  CHECK(Found("eyJmb28iOiJiYXIifQ.eyJhIjoxfQ.c2ln").empty());

  CHECK(Found("Authorization: Bearer abc123def456ghi789jkl") ==
        V({"bearer_token:abc123def456ghi789jkl"}));
  CHECK(Found("Authorization: Bearer " + jwt) == V({"bearer_token:" + jwt, "jwt:" + jwt}));
  CHECK(Found("a Bearer token is required; send Bearer ${TOKEN} or bearer authentication_scheme")
            .empty());
}

TEST_CASE("custom patterns: span is the first matching group; errors name the pattern") {
  DlpConfig c;
  c.detectors = {};
  c.custom = {{"employee_id", R"(\bEMP-(\d{6})\b)"}, {"project_code", R"(PRJ[A-Z]{3}\d{2})"}};
  std::string error;
  auto s = DlpScanner::Create(c, &error);
  REQUIRE_MESSAGE(s != nullptr, error);
  CHECK(Found("badge EMP-123456, PRJABC12", *s) ==
        V({"employee_id:123456", "project_code:PRJABC12"}));
  CHECK(Found("EMP-12345 alice@example.com", *s).empty());  // built-ins disabled

  c.custom = {{"bad", "a(b"}};
  CHECK(DlpScanner::Create(c, &error) == nullptr);
  CHECK(error.find("`bad`") != std::string::npos);
  c.custom = {{"email", "x+"}};
  CHECK(DlpScanner::Create(c, &error) == nullptr);
  CHECK(error.find("taken") != std::string::npos);
  c.custom = {{"empty", "x*"}};
  CHECK(DlpScanner::Create(c, &error) == nullptr);
  CHECK(error.find("empty string") != std::string::npos);
  c = DlpConfig{};
  c.detectors = {"emali"};
  CHECK(DlpScanner::Create(c, &error) == nullptr);
  CHECK(error.find("emali") != std::string::npos);
}

TEST_CASE("a custom pattern never matches across two JSON strings") {
  DlpConfig c;
  c.detectors = {};
  c.custom = {{"tagged", R"(TAG[^;]*;)"}};  // [^;] also matches the NUL separator
  std::string error;
  auto s = DlpScanner::Create(c, &error);
  REQUIRE(s != nullptr);
  DlpReport r = s->ScanJson(json{{"a", "xx TAG open"}, {"b", "close; TAG ok;"}});
  REQUIRE(r.findings.size() == 1);
  CHECK(r.findings[0].path == "/b");
  CHECK(r.findings[0].offset == 7);
}

TEST_CASE("findings on either side of the scanner's internal chunk boundaries") {
  // Chunks are 2 KiB; put items so they start, end or sit across every boundary position.
  const std::string pem = "-----BEGIN PRIVATE KEY-----\n" + std::string(5000, 'A') +
                          "\n-----END PRIVATE KEY-----";
  for (size_t at = 1900; at < 2100; at += 7) {
    std::string text(at, ' ');
    text += "longer.local.part@example.com ";
    text += std::string(4096 - text.size() % 4096 + 4096 - 40, ' ');
    text += "4111 1111 1111 1111 ";
    text += pem;
    text += " ann@example.com";
    auto got = Found(text);
    REQUIRE_MESSAGE(got.size() == 4, at);
    CHECK(got[0] == "email:longer.local.part@example.com");
    CHECK(got[1] == "credit_card:4111 1111 1111 1111");
    CHECK(got[2] == "private_key:" + pem);
    CHECK(got[3] == "email:ann@example.com");
  }
}

TEST_CASE("long matches that start in a triggered chunk are found whole") {
  const std::string jwt = "eyJhbGciOiJIUzI1NiJ9.eyJ" + std::string(6000, 'x') + ".c2ln";
  const std::string pem = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n" +
                          std::string(3000, 'Q') + "\n-----END ENCRYPTED PRIVATE KEY-----";
  for (size_t at : {0, 2000, 2040, 4090}) {
    std::string text = std::string(at, ' ') + jwt + " " + pem + ". Then " + jwt;
    auto got = Found(text);
    REQUIRE_MESSAGE(got.size() == 3, at);
    CHECK(got[0] == "jwt:" + jwt);
    CHECK(got[1] == "private_key:" + pem);
    CHECK(got[2] == "jwt:" + jwt);
  }
}

TEST_CASE("ScanJson reports JSON pointers for values, keys and large integers") {
  json doc = {{"user", {{"email", "ann@example.com"}, {"tags", {"x", "call 212-555-0134"}}}},
              {"card", 4111111111111111ULL},
              {"bob@example.com", true},
              {"a/b~c", "AKIAIOSFODNN7EXAMPLE"},
              {"count", 1234567890123LL}};
  DlpReport r = Default().ScanJson(doc);
  std::vector<std::string> got;
  for (const auto& f : r.findings)
    got.push_back(f.cls + "@" + f.path + (f.in_key ? "(key)" : "") + (f.in_number ? "(num)" : ""));
  std::sort(got.begin(), got.end());
  CHECK(got == V({"aws_access_key@/a~1b~0c", "credit_card@/card(num)",
                  "email@/bob@example.com(key)", "email@/user/email", "phone@/user/tags/1"}));
  CHECK(DlpScanner::Classes(r) == V({"aws_access_key", "credit_card", "email", "phone"}));
  CHECK_FALSE(r.truncated);
}

TEST_CASE("ScanToolResult covers text, resources, structuredContent; skips base64 payloads") {
  json result = {
      {"content",
       {{{"type", "text"}, {"text", "customer ann@example.com"}},
        {{"type", "image"}, {"data", "AKIAIOSFODNN7EXAMPLE"}, {"mimeType", "image/png"}},
        {{"type", "resource"},
         {"resource", {{"uri", "file:///x"}, {"text", "ssn 234-56-7890"}}}},
        {{"type", "resource"},
         {"resource", {{"uri", "file:///y"}, {"blob", "AKIAIOSFODNN7EXAMPLE"}}}}}},
      {"structuredContent", {{"iban", "GB82WEST12345698765432"}}}};
  DlpReport r = Default().ScanToolResult(result);
  std::vector<std::string> got;
  for (const auto& f : r.findings) got.push_back(f.cls + "@" + f.path);
  CHECK(got == V({"email@/content/0/text", "ssn@/content/2/resource/text",
                  "iban@/structuredContent/iban"}));
  // ScanJson does look at the payloads.
  CHECK(DlpScanner::Classes(Default().ScanJson(result)).size() == 4);
}

TEST_CASE("max_scan_bytes truncates and says so") {
  DlpConfig c;
  c.max_scan_bytes = 1024;
  std::string error;
  auto s = DlpScanner::Create(c, &error);
  REQUIRE(s != nullptr);
  std::string text(1100, ' ');
  text.replace(10, 15, "ann@example.com");
  text.replace(1050, 15, "bob@example.com");
  DlpReport r = s->Scan(text);
  CHECK(r.truncated);
  CHECK(r.scanned_bytes == 1024);
  CHECK(r.findings.size() == 1);
  CHECK(DlpScanner::Classes(r) == V({"email", "truncated"}));
  json doc = json::array({std::string(1000, 'x'), "ann@example.com", "bob@example.com"});
  r = s->ScanJson(doc);
  CHECK(r.truncated);
  CHECK(r.findings.size() == 1);
}

TEST_CASE("deeply nested JSON does not recurse") {
  json doc = "ann@example.com";
  for (int i = 0; i < 100000; ++i) doc = json::array({std::move(doc)});
  DlpReport r = Default().ScanJson(doc);
  REQUIRE(r.findings.size() == 1);
  CHECK(r.findings[0].path.size() == 200000);
  // nlohmann's destructor recurses; unwind iteratively.
  while (doc.is_array()) {
    json inner = std::move(doc[0]);
    doc = std::move(inner);
  }
}

TEST_CASE("redaction by class masks spans inside strings, keys and integers") {
  json args = {{"note", "mail ann@example.com or bob@example.com, card 4111 1111 1111 1111"},
               {"ann@example.com", 1},
               {"pan", 4111111111111111ULL}};
  DlpRedaction red;
  std::string error;
  REQUIRE(Default().RedactJson(&args, "args", {"email"}, nullptr, &red, &error));
  CHECK(args["note"] ==
        "mail [REDACTED:email] or [REDACTED:email], card 4111 1111 1111 1111");
  CHECK(args.contains("[REDACTED:email]"));
  CHECK_FALSE(args.contains("ann@example.com"));
  CHECK(args["pan"] == 4111111111111111ULL);
  CHECK(red.items.size() == 3);

  REQUIRE(Default().RedactJson(&args, "args", {"*"}, nullptr, &red, &error));
  CHECK(args["note"] == "mail [REDACTED:email] or [REDACTED:email], card [REDACTED:credit_card]");
  CHECK(args["pan"] == "[REDACTED:credit_card]");
}

TEST_CASE("overlapping findings are masked once, with a precomputed report") {
  const std::string jwt =
      "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlMTIz";
  json r = {{"content", {{{"type", "text"}, {"text", "Authorization: Bearer " + jwt}}}}};
  DlpReport rep = Default().ScanToolResult(r);
  CHECK(DlpScanner::Classes(rep) == V({"bearer_token", "jwt"}));
  DlpRedaction red;
  std::string error;
  REQUIRE(Default().RedactJson(&r, "result", {"all"}, &rep, &red, &error));
  CHECK(r["content"][0]["text"] == "Authorization: Bearer [REDACTED:bearer_token]");
}

TEST_CASE("redaction by path: whole values, wildcards, quoted keys, the other side ignored") {
  json args = {{"card", {{"number", "4111111111111111"}, {"exp", "12/29"}}},
               {"items", {{{"email", "a@x.io"}}, {{"email", "b@x.io"}}, {{"name", "c"}}}},
               {"odd.key", "v"},
               {"keep", "k"}};
  DlpRedaction red;
  std::string error;
  REQUIRE(Default().RedactJson(
      &args, "args",
      {"args.card.number", "args.items[*].email", R"(args["odd.key"])", "args.missing.x",
       "result.structuredContent.ssn"},
      nullptr, &red, &error));
  CHECK(args["card"]["number"] == "[REDACTED]");
  CHECK(args["card"]["exp"] == "12/29");
  CHECK(args["items"][0]["email"] == "[REDACTED]");
  CHECK(args["items"][1]["email"] == "[REDACTED]");
  CHECK(args["items"][2] == json{{"name", "c"}});
  CHECK(args["odd.key"] == "[REDACTED]");
  CHECK(args["keep"] == "k");
  std::vector<std::string> paths;
  for (const auto& i : red.items) paths.push_back(i.path + "=" + i.target);
  CHECK(paths == V({"/card/number=args.card.number", "/items/0/email=args.items[*].email",
                    "/items/1/email=args.items[*].email", "/odd.key=args[\"odd.key\"]"}));

  json result = {{"structuredContent", {{"ssn", "234-56-7890"}, {"rows", {1, 2, 3}}}}};
  REQUIRE(Default().RedactJson(&result, "result",
                               {"result.structuredContent.ssn", "result.structuredContent.rows[1]"},
                               nullptr, &red, &error));
  CHECK(result["structuredContent"]["ssn"] == "[REDACTED]");
  CHECK(result["structuredContent"]["rows"] == json({1, "[REDACTED]", 3}));
  // A bare root masks everything on that side.
  REQUIRE(Default().RedactJson(&result, "result", {"result"}, nullptr, &red, &error));
  CHECK(result == "[REDACTED]");
}

TEST_CASE("invalid redact targets fail without touching the document") {
  json args = {{"e", "ann@example.com"}};
  const json before = args;
  DlpRedaction red;
  std::string error;
  for (std::string bad : {"creditcard", "foo.bar", "args.", "args[x]", "args[\"x",
                          "args.a..b", "args[1"}) {
    CHECK_FALSE_MESSAGE(Default().RedactJson(&args, "args", {"email", bad}, nullptr, &red, &error),
                        bad);
    CHECK(args == before);
    CHECK(!error.empty());
  }
  CHECK(error.find("args[1") != std::string::npos);
  CHECK(Default().ValidTarget("credit_card", &error));
  CHECK(Default().ValidTarget("args.items[0][\"a b\"].*", &error));
  CHECK_FALSE(Default().ValidTarget("truncated", &error));
}

TEST_CASE("the non-PII corpus produces zero findings") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(WRIT_SOURCE_DIR) / "tests/dlp/corpus";
  size_t files = 0, bytes = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".txt") continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    ++files;
    bytes += text.size();
    for (const auto& f : Default().Scan(text).findings) {
      FAIL_CHECK(e.path().filename().string() << ": " << f.cls << ": `"
                                              << text.substr(f.offset, f.length) << "`");
    }
    // The JSON file is also scanned as JSON.
    if (e.path().filename().string().find("json") != std::string::npos) {
      json doc = json::parse(text, nullptr, false);
      REQUIRE(!doc.is_discarded());
      CHECK(Default().ScanJson(doc).findings.empty());
    }
  }
  CHECK(files >= 4);
  CHECK(bytes >= 8000);
}

TEST_CASE("FindingsJson carries classes and paths, never the values") {
  json args = {{"to", "ann@example.com"}, {"cards", {"4111 1111 1111 1111", "5555555555554444"}}};
  json j = DlpScanner::FindingsJson(Default().ScanJson(args), 2);
  CHECK(j["classes"] == json({"credit_card", "email"}));
  CHECK(j["truncated"] == false);
  REQUIRE(j["findings"].size() == 2);
  CHECK(j["findings"][0] == json{{"class", "credit_card"}, {"path", "/cards/0"}, {"offset", 0},
                                  {"length", 19}});
  CHECK(j["findings_omitted"] == 1);
  CHECK(j.dump().find("ann@") == std::string::npos);
  CHECK(j.dump().find("4111") == std::string::npos);
}

// Property: masking every class leaves nothing to find, whatever noise surrounds the PII.
TEST_CASE("redacting `*` removes every finding (randomized, deterministic seed)") {
  const std::vector<std::string> pii = {
      "ann@example.com", "+44 20 7946 0958", "(212) 555-0134", "234-56-7890",
      "4111 1111 1111 1111", "378282246310005", "GB82WEST12345698765432",
      "AKIAIOSFODNN7EXAMPLE", "Bearer abc123def456ghi789jkl",
      "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
      "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
      "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlMTIz",
      "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg\n-----END EC PRIVATE KEY-----"};
  const std::string noise = " \n\t.,;:-/_()[]{}\"'@+=#0123456789abcXYZ";
  std::mt19937 rng(12345);
  size_t total = 0;
  for (int round = 0; round < 1000; ++round) {
    json doc = json::array();
    for (int k = 0; k < 4; ++k) {
      std::string s;
      size_t count = 0;
      for (int part = 0; part < 6; ++part) {
        if (rng() % 3 == 0) {
          s += " " + pii[rng() % pii.size()] + " ";  // PII glued to other tokens is not PII
          ++count;
        } else {
          for (int c = rng() % 12; c > 0; --c) s += noise[rng() % noise.size()];
        }
      }
      doc.push_back(k % 2 ? json(s) : json{{s.substr(0, 10), s}});
      // Recall: every delimited item is found (a JWT sent as a bearer token counts twice).
      CHECK_MESSAGE(Default().Scan(s).findings.size() >= count, s);
    }
    DlpReport r = Default().ScanJson(doc);
    total += r.findings.size();
    for (const auto& f : r.findings) CHECK(f.length > 0);
    DlpRedaction red;
    std::string error;
    REQUIRE(Default().RedactJson(&doc, "args", {"*"}, &r, &red, &error));
    DlpReport after = Default().ScanJson(doc);
    if (!after.findings.empty()) {
      FAIL_CHECK(doc.dump() << " still has " << after.findings[0].cls << " at "
                            << after.findings[0].path);
    }
  }
  CHECK(total > 300);  // the generator does produce findings
}
