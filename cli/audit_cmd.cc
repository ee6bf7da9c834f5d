// audit_cmd.cc -- `writ audit verify FILE [--key-file K]`
//
// Checks an audit log's hash chain (gateway/audit_verify.h, docs/audit.md) and names the
// first bad record. Exit: 0 every record checks (prints `ok: N records, last hash H` on
// stdout), 1 a bad record or torn last line (`FILE:LINE: record SEQ: what` on stderr),
// 2 usage or I/O error (unreadable log or key file).
#include <iostream>

#include "cli/command.h"
#include "gateway/audit_format.h"
#include "gateway/audit_verify.h"

namespace writ::cli {
namespace {

struct VerifyOptions {
  std::string file;
  std::string key_file;
};

int RunVerify(const VerifyOptions& o) {
  std::string key;
  if (!o.key_file.empty()) {
    std::string err;
    if (!gateway::ReadAuditKeyFile(o.key_file, &key, &err)) {
      std::cerr << "error: " << err << "\n";
      return kExitUsage;
    }
  }
  gateway::AuditVerifyResult r =
      gateway::VerifyAuditFile(o.file, o.key_file.empty() ? nullptr : &key);
  switch (r.kind) {
    case gateway::AuditVerifyResult::Kind::kOk:
      std::cout << r.Format(o.file) << "\n";
      return kExitOk;
    case gateway::AuditVerifyResult::Kind::kBad:
      std::cerr << r.Format(o.file) << "\n";
      std::cerr << "writ audit verify: " << r.records << " good record"
                << (r.records == 1 ? "" : "s") << " before it, last good hash " << r.last_hash
                << "\n";
      return kExitFailure;
    case gateway::AuditVerifyResult::Kind::kIoError:
      std::cerr << "error: " << r.Format(o.file) << "\n";
      return kExitUsage;
  }
  return kExitUsage;
}

CommandRegistrar reg(80, [](CLI::App& app, int* exit_code) {
  CLI::App* audit = app.add_subcommand("audit", "Work with the gateway's audit trail.");
  audit->require_subcommand(1);
  auto opts = std::make_shared<VerifyOptions>();
  CLI::App* verify = audit->add_subcommand(
      "verify", "Check an audit log's hash chain; name the first bad record.");
  verify->footer(
      "Exit codes: 0 intact, 1 a bad record or torn last line, 2 usage or I/O error.\n"
      "A log cut at a record boundary still verifies: compare the printed last hash with\n"
      "one anchored elsewhere (docs/audit.md).\n"
      "Examples:\n"
      "  writ audit verify /var/lib/writ/audit.jsonl\n"
      "  writ audit verify audit.jsonl --key-file /etc/writ/audit.key");
  verify->add_option("file", opts->file, "Audit log (JSONL)")->required();
  verify->add_option("--key-file,-k", opts->key_file,
                     "HMAC key the log was written with (required for a keyed log)");
  verify->callback([opts, exit_code] { *exit_code = RunVerify(*opts); });
});

}  // namespace
}  // namespace writ::cli
