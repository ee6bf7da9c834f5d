// dag_to_bytecode.cc -- BundleTables -> bytes.
#include "compiler/dag_to_bytecode.h"

namespace writ {

std::string SerializeBundle(const BundleTables& t, const std::array<uint8_t, 32>& source_hash) {
  using runtime::Section;
  std::string blob;
  std::vector<uint32_t> offsets{0};
  for (const auto& s : t.strings) {
    blob += s;
    offsets.push_back(static_cast<uint32_t>(blob.size()));
  }
  runtime::BundleWriter w;
  w.AddSection(Section::kStrings, 1, blob.size(), blob.data());
  w.Add(Section::kStringOffsets, offsets);
  w.Add(Section::kLongs, t.longs);
  w.Add(Section::kConstants, t.constants);
  w.Add(Section::kPathPool, t.path_pool);
  w.Add(Section::kSlots, t.slots);
  w.Add(Section::kInsns, t.insns);
  w.Add(Section::kPrograms, t.programs);
  w.Add(Section::kNodes, t.nodes);
  w.Add(Section::kOutcomes, t.outcomes);
  w.Add(Section::kStmtPool, t.stmt_pool);
  w.Add(Section::kPartitions, t.partitions);
  w.Add(Section::kPartitionPool, t.partition_pool);
  w.Add(Section::kSwitch, t.switch_entries);
  w.Add(Section::kStatements, t.statements);
  w.Add(Section::kRegexes, t.regexes);
  w.Add(Section::kLikes, t.likes);
  w.Add(Section::kRecordKeys, t.record_keys);
  w.Add(Section::kProgramPool, t.program_pool);
  w.Add(Section::kProgramText, t.program_text);
  return w.Finish(source_hash);
}

}  // namespace writ
