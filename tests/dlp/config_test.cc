// config_test.cc -- the `dlp:` config section, and every YAML example in docs/dlp.md and
// docs/credentials.md (configs are parsed; the secrets-file example is loaded).
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gateway/config.h"
#include "gateway/dlp.h"
#include "gateway/secrets.h"

using writ::gateway::Config;
using writ::gateway::DlpScanner;
using writ::gateway::ParseConfig;

namespace {

std::string Errors(const std::string& yaml) {
  Config c;
  std::string errors;
  CHECK_FALSE(ParseConfig("policies: p\nupstreams: []\n" + yaml, "writ.yaml", "", &c, &errors));
  return errors;
}

bool Has(const std::string& haystack, const std::string& needle) {
  bool found = haystack.find(needle) != std::string::npos;
  if (!found) MESSAGE(haystack);
  return found;
}

}  // namespace

TEST_CASE("dlp: defaults and a full section") {
  Config c;
  std::string errors;
  REQUIRE(ParseConfig("policies: p\nupstreams: []\n", "writ.yaml", "", &c, &errors));
  CHECK(c.dlp.detectors == writ::gateway::BuiltinDlpClasses());
  CHECK(c.dlp.custom.empty());
  CHECK(c.dlp.max_scan_bytes == 4u * 1024 * 1024);
  CHECK(c.dlp.scan_results);

  REQUIRE(ParseConfig(R"(policies: p
upstreams: []
dlp:
  detectors: [email, credit_card, email]
  custom:
    - name: employee_id
      pattern: '\bEMP-(\d{6})\b'
  max_scan_bytes: 65536
  scan_results: false
)",
                      "writ.yaml", "", &c, &errors));
  CHECK(c.dlp.detectors == std::vector<std::string>{"email", "credit_card"});
  REQUIRE(c.dlp.custom.size() == 1);
  CHECK(c.dlp.custom[0].name == "employee_id");
  CHECK(c.dlp.custom[0].line == 6);
  CHECK(c.dlp.max_scan_bytes == 65536);
  CHECK_FALSE(c.dlp.scan_results);
  std::string error;
  CHECK(DlpScanner::Create(c.dlp, &error) != nullptr);
}

TEST_CASE("dlp: errors name the key and line, with help") {
  CHECK(Has(Errors("dlp: {detectors: [emial]}\n"),
            "writ.yaml:3:19: dlp.detectors[0]: unknown detector `emial`\nhelp: did you mean "
            "`email`?"));
  CHECK(Has(Errors("dlp: {detectors: email}\n"), "dlp.detectors: expected a list"));
  CHECK(Has(Errors("dlp:\n  custom:\n    - name: bad\n      pattern: 'a(b'\n"),
            "writ.yaml:6:16: dlp.custom[0].pattern: invalid regex: missing ): a(b\n"
            "help: RE2 syntax"));
  CHECK(Has(Errors("dlp:\n  custom:\n    - name: bad\n      pattern: '(?<=x)y'\n"),
            "dlp.custom[0].pattern: invalid regex"));
  CHECK(Has(Errors("dlp:\n  custom:\n    - {name: e, pattern: 'x*'}\n"),
            "dlp.custom[0].pattern: the pattern matches the empty string"));
  CHECK(Has(Errors("dlp:\n  custom:\n    - {name: email, pattern: x}\n"),
            "dlp.custom[0].name: `email` is reserved"));
  CHECK(Has(Errors("dlp:\n  custom:\n    - {name: Emp-Id, pattern: x}\n"),
            "dlp.custom[0].name: `Emp-Id` is not a valid class name"));
  CHECK(Has(Errors("dlp:\n  custom:\n    - {name: a, pattern: x}\n    - {name: a, pattern: y}\n"),
            "dlp.custom[1].name: duplicate class `a`"));
  CHECK(Has(Errors("dlp:\n  custom:\n    - {pattern: x, regex: y}\n"),
            "dlp.custom[0].regex: unknown key"));
  CHECK(Has(Errors("dlp:\n  custom:\n    - {pattern: x}\n"), "dlp.custom[0].name: missing"));
  CHECK(Has(Errors("dlp: {max_scan_bytes: 10}\n"), "dlp.max_scan_bytes: out of range"));
  CHECK(Has(Errors("dlp: {scan_result: true}\n"),
            "dlp.scan_result: unknown key\nhelp: did you mean `scan_results`?"));
  CHECK(Has(Errors("dlp: [email]\n"), "dlp: expected a mapping"));
}

TEST_CASE("every YAML example in docs/dlp.md and docs/credentials.md parses") {
  namespace fs = std::filesystem;
  fs::path tmp = fs::temp_directory_path() / ("writ_dlp_docs_" + std::to_string(getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  int configs = 0, secret_files = 0;
  for (const char* doc : {"docs/dlp.md", "docs/credentials.md"}) {
    std::ifstream in(fs::path(WRIT_SOURCE_DIR) / doc);
    REQUIRE(in.good());
    std::string line, block;
    bool inside = false;
    int start = 0, n = 0;
    while (std::getline(in, line)) {
      ++n;
      if (!inside && line == "```yaml") {
        inside = true;
        block.clear();
        start = n;
        continue;
      }
      if (inside && line == "```") {
        inside = false;
        INFO(doc << ":" << start);
        if (block.rfind("# secrets.yaml", 0) == 0) {
          // The secrets file itself: load it like the gateway does.
          fs::path p = tmp / "secrets.yaml";
          std::ofstream(p) << block;
          chmod(p.c_str(), 0600);
          writ::gateway::SecretsConfig sc;
          sc.file = p.string();
          std::string error;
          CHECK_MESSAGE(writ::gateway::SecretStore::Open(sc, &error) != nullptr, error);
          ++secret_files;
          continue;
        }
        std::string text = block;
        if (text.find("policies:") == std::string::npos) text = "policies: ./p\n" + text;
        if (text.find("upstreams:") == std::string::npos) text += "upstreams: []\n";
        Config c;
        std::string errors;
        CHECK_MESSAGE(ParseConfig(text, doc, tmp.string(), &c, &errors), errors);
        std::string error;
        CHECK_MESSAGE(DlpScanner::Create(c.dlp, &error) != nullptr, error);
        ++configs;
        continue;
      }
      if (inside) block += line + "\n";
    }
  }
  fs::remove_all(tmp);
  CHECK(configs >= 3);
  CHECK(secret_files == 1);
}
