// The approver's preview of a held call's arguments (MaskedApprovalArgsPreview,
// gateway/approvals.h): the decision's `redact` targets and the upstream secrets are applied
// as for the forwarded arguments, and the preview is withheld when they cannot be (fail
// closed). The end-to-end check through `writ serve` is in serve_test.cc.
#include <doctest/doctest.h>

#include <string>

#include "gateway/approvals.h"
#include "gateway/dlp.h"
#include "gateway/secrets.h"

using namespace writ::gateway;
using nlohmann::json;

namespace {

constexpr char kCard[] = "4111 1111 1111 1111";

std::unique_ptr<const DlpScanner> Scanner(size_t max_scan_bytes = 4 * 1024 * 1024) {
  DlpConfig c;
  c.max_scan_bytes = max_scan_bytes;
  std::string error;
  auto s = DlpScanner::Create(c, &error);
  REQUIRE_MESSAGE(s != nullptr, error);
  return s;
}

json Args() {
  return {{"card", std::string("pay with ") + kCard},
          {"api_token", "tok-0123456789"},
          {"note", "keep me"}};
}

}  // namespace

TEST_CASE("approval preview: class and path targets are masked like the forwarded arguments") {
  auto dlp = Scanner();
  ApprovalPreviewMask mask;
  mask.redact = {"credit_card", "args.api_token"};
  mask.dlp = dlp.get();
  std::string why;
  std::string p = MaskedApprovalArgsPreview(Args(), mask, &why);
  CHECK(why.empty());
  CHECK(p ==
        R"({"api_token":"[REDACTED]","card":"pay with [REDACTED:credit_card]","note":"keep me"})");
  // The same masking the proxy applies before forwarding.
  json forwarded = Args();
  DlpRedaction red;
  std::string error;
  REQUIRE(dlp->RedactJson(&forwarded, "args", mask.redact, nullptr, &red, &error));
  CHECK(p == ApprovalArgsPreview(forwarded, {}));

  // A report passed in is used (here: the proxy's scan of the same arguments).
  DlpReport report = dlp->ScanJson(Args());
  mask.report = &report;
  CHECK(MaskedApprovalArgsPreview(Args(), mask) == p);

  // `*` masks every finding; result.* paths do not apply to arguments.
  mask = ApprovalPreviewMask{{"*", "result.api_token"}, dlp.get(), nullptr};
  p = MaskedApprovalArgsPreview(Args(), mask);
  CHECK(p.find(kCard) == std::string::npos);
  CHECK(p.find("[REDACTED:credit_card]") != std::string::npos);
  CHECK(p.find("tok-0123456789") != std::string::npos);  // not a dlp class, not redacted
}

TEST_CASE("approval preview: without redact targets only secrets are scrubbed") {
  ApprovalPreviewMask mask;  // no scanner needed
  CHECK(MaskedApprovalArgsPreview(Args(), mask) == ApprovalArgsPreview(Args(), {}));
  SecretScrubber scrubber(
      std::vector<std::pair<std::string, std::string>>{{"API_TOKEN", "tok-0123456789"}});
  mask.scrubber = &scrubber;
  mask.secrets = {"keep me"};
  std::string p = MaskedApprovalArgsPreview(Args(), mask);
  CHECK(p.find("tok-0123456789") == std::string::npos);
  CHECK(p.find("[REDACTED:secret:API_TOKEN]") != std::string::npos);
  CHECK(p.find("\"note\":\"[REDACTED]\"") != std::string::npos);
  CHECK(p.find(kCard) != std::string::npos);  // no redact obligation: shown as given
}

TEST_CASE("approval preview: withheld when the masking cannot be applied") {
  auto dlp = Scanner();
  std::string why;
  SUBCASE("a redact obligation but no scanner") {
    ApprovalPreviewMask mask{{"credit_card"}, nullptr, nullptr};
    CHECK(MaskedApprovalArgsPreview(Args(), mask, &why) == kApprovalPreviewWithheld);
    CHECK(why.find("no dlp scanner") != std::string::npos);
  }
  SUBCASE("a target the scanner does not know") {
    ApprovalPreviewMask mask{{"credit_card", "passport_no"}, dlp.get(), nullptr};
    CHECK(MaskedApprovalArgsPreview(Args(), mask, &why) == kApprovalPreviewWithheld);
    CHECK(why.find("passport_no") != std::string::npos);
  }
  SUBCASE("a malformed path") {
    ApprovalPreviewMask mask{{"args.items["}, dlp.get(), nullptr};
    CHECK(MaskedApprovalArgsPreview(Args(), mask, &why) == kApprovalPreviewWithheld);
    CHECK(why.find("args.items[") != std::string::npos);
  }
  SUBCASE("a class target over a truncated scan") {
    auto small = Scanner(/*max_scan_bytes=*/1024);
    json args = {{"a_padding", std::string(2000, 'x')}, {"b_card", kCard}};
    ApprovalPreviewMask mask{{"credit_card"}, small.get(), nullptr};
    CHECK(MaskedApprovalArgsPreview(args, mask, &why) == kApprovalPreviewWithheld);
    CHECK(why.find("truncated") != std::string::npos);
    // A path target does not depend on the scan: still shown, masked.
    mask.redact = {"args.b_card"};
    why.clear();
    std::string p = MaskedApprovalArgsPreview(args, mask, &why, 100000);
    CHECK(why.empty());
    CHECK(p.find("\"b_card\":\"[REDACTED]\"") != std::string::npos);
  }
}

TEST_CASE("approval preview: masking happens before the size cut") {
  auto dlp = Scanner();
  json args = {{"card", kCard}, {"z", std::string(5000, 'y')}};
  ApprovalPreviewMask mask{{"credit_card"}, dlp.get(), nullptr};
  std::string p = MaskedApprovalArgsPreview(args, mask, nullptr, 64);
  CHECK(p.size() <= 64);
  CHECK(p.rfind(R"({"card":"[REDACTED:credit_card]")", 0) == 0);
}
