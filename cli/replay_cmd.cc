// replay_cmd.cc -- `writ replay (--policies PATH... [--schema S] | --bundle B)
// [--baseline DIR|BUNDLE] [--expect] [--format text|json|markdown|github] TRACE...`:
// re-decides recorded requests and prints the impact diff (docs/replay.md).
//
// Exit: 0 replayed, 1 with --expect when a decision differs from the recorded one,
// 2 usage or I/O error, policies that do not compile, or a corrupt trace.
#include <iostream>

#include "cli/command.h"
#include "harness/replay.h"
#include "harness/runner.h"

namespace writ::cli {
namespace {

struct ReplayOptions {
  std::vector<std::string> traces, policies, baseline;
  std::string schema, baseline_schema, bundle;
  std::string format = "text";
  bool expect = false;
  size_t show = 20;
  int jobs = 0;
};

int RunReplayCmd(const ReplayOptions& o) {
  if (o.policies.empty() == o.bundle.empty()) {
    std::cerr << "error: give either --policies PATH... or --bundle FILE\n"
                 "help: e.g. writ replay --policies policies/ traces/session.jsonl\n";
    return kExitUsage;
  }
  std::vector<harness::ReplayRecord> records;
  for (const auto& t : o.traces) {
    std::string error;
    if (!harness::ReadTrace(t, &records, &error, o.jobs)) {
      std::cerr << "error: " << error
                << "\nhelp: a trace is the JSONL the gateway's `record:` writes "
                   "(docs/replay.md); fix or remove the damaged line\n";
      return kExitUsage;
    }
  }
  std::string rendered;
  auto bundle = harness::LoadPolicySet(o.bundle.empty() ? o.policies : std::vector{o.bundle},
                                       o.schema, DiagnosticFormat::kText, &rendered);
  if (bundle == nullptr) {
    std::cerr << rendered << "writ replay: the policies do not compile; nothing was replayed\n";
    return kExitUsage;
  }
  std::shared_ptr<const runtime::Bundle> baseline;
  std::string label = "the recorded decisions";
  if (!o.baseline.empty()) {
    baseline =
        harness::LoadPolicySet(o.baseline, o.baseline_schema, DiagnosticFormat::kText, &rendered);
    if (baseline == nullptr) {
      std::cerr << rendered << "writ replay: the baseline does not compile\n";
      return kExitUsage;
    }
    label = "the baseline";
    for (const auto& b : o.baseline) label += " " + b;
  }
  harness::ReplayResult r =
      harness::Replay(std::move(records), *bundle, baseline.get(), label, o.jobs);
  r.traces = o.traces.size();
  harness::ReplayFormat f = o.format == "json"       ? harness::ReplayFormat::kJson
                            : o.format == "markdown" ? harness::ReplayFormat::kMarkdown
                            : o.format == "github"   ? harness::ReplayFormat::kGithub
                                                     : harness::ReplayFormat::kText;
  std::cout << harness::RenderReplay(r, f, o.show);
  if (o.expect && r.differs_from_recorded > 0) {
    std::cerr << "writ replay: " << r.differs_from_recorded << " of " << r.records.size()
              << " request(s) are decided differently than recorded\n"
                 "help: if the change is intended, record a new trace with the new policies\n";
    return kExitFailure;
  }
  return kExitOk;
}

CommandRegistrar reg(45, [](CLI::App& app, int* exit_code) {
  auto o = std::make_shared<ReplayOptions>();
  CLI::App* cmd = app.add_subcommand(
      "replay", "Re-decide recorded requests (traces) and print what the policies change.");
  cmd->footer(
      "The trace format and the report are in docs/replay.md.\n"
      "Exit codes: 0 replayed, 1 with --expect when a decision differs from the recorded one,\n"
      "2 usage or I/O error, policies that do not compile, or a corrupt trace.\n"
      "Examples:\n"
      "  writ replay --policies policies/ --expect traces/*.jsonl\n"
      "  writ replay --policies policies/ --baseline main/policies --format markdown "
      "traces/*.jsonl");
  cmd->add_option("traces", o->traces, "Trace files (JSONL written by the gateway's record:)")
      ->required();
  // One value per flag (repeat it), so the positional traces are not swallowed.
  cmd->add_option("--policies,-p", o->policies,
                  "Policy file or directory to replay with (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--schema,-s", o->schema, "Schema for --policies");
  cmd->add_option("--bundle,-b", o->bundle, "A bundle from `writ build` instead of --policies");
  cmd->add_option("--baseline", o->baseline,
                  "Policies (file or directory; repeatable) or a bundle to compare with")
      ->allow_extra_args(false);
  cmd->add_option("--baseline-schema", o->baseline_schema, "Schema for --baseline policies");
  cmd->add_flag("--expect", o->expect,
                "Exit 1 when any decision differs from the one recorded in the trace");
  cmd->add_option("--format,-f", o->format, "Report format")
      ->check(CLI::IsMember({"text", "json", "markdown", "github"}));
  cmd->add_option("--show", o->show, "List at most N changed requests (text, markdown)");
  cmd->add_option("--jobs,-j", o->jobs, "Threads (default: one per core, at most 16)")
      ->check(CLI::Range(0, 256));
  cmd->callback([o, exit_code] { *exit_code = RunReplayCmd(*o); });
});

}  // namespace
}  // namespace writ::cli
