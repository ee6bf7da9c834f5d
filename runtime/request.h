// request.h -- a request converted once into the slots a bundle reads (docs/semantics.md has
// the JSON form). Preparation allocates; evaluation of a prepared request does not.
//
// A PreparedRequest borrows from the JSON document it was prepared from and from the bundle:
// both must outlive it.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace writ::runtime {

class Bundle;

enum class VType : uint8_t { kError, kBool, kLong, kString, kDuration, kEntity, kSet, kRecord, kIp, kUnknown };

// A runtime value. Scalars are inline; strings and entity uids view bytes owned by the request
// JSON or the bundle; sets and records point at JSON nodes (request or bundle constants).
struct Value {
  VType type = VType::kError;
  bool b = false;
  int64_t i = 0;           // Long, Duration; Entity: -1 or the index of principal/resource
  std::string_view s;      // String bytes; Entity: canonical uid text
  const nlohmann::json* j = nullptr;  // Set (array), Record (object), Ip (string)
  uint32_t n = 0;  // VM-built Set/Record (j == null): element count; elements at VM arena[i]
};

// One entity of the request (principal, action, resource).
struct RequestEntity {
  std::string uid;                 // canonical Type::"id"
  std::string_view type;           // view into uid
  uint32_t uid_id = 0xFFFFFFFFu;   // interned in the bundle, or kAnyKey
  std::vector<std::string> parents;
  // The interned parents, sorted, each once, without uid_id itself (unknown parents are kept
  // only as text).
  std::vector<uint32_t> parent_ids;
  const nlohmann::json* attrs = nullptr;  // JSON object, or null
};

struct PreparedRequest {
  const nlohmann::json* doc = nullptr;
  RequestEntity principal, action, resource;
  std::vector<Value> slots;  // one per Bundle slot
  // Per slot: for a String, Bundle::Find of its text (kAnyKey if the bundle does not hold it);
  // otherwise kAnyKey. Lets `slot == "s"` compare ids instead of bytes.
  std::vector<uint32_t> slot_ids;
  bool args_unknown = false;  // list-time visibility: args atoms evaluate to unknown
};

// Validates the request JSON and fills `out`. Returns false with *error for a malformed
// request (wrong types at the top level, a bad uid). `doc` must outlive `out`. `out` may be
// reused across requests (its buffers are kept); after a false return it holds a mix of this
// and an earlier request and must not be evaluated: the caller denies (fail closed).
bool PrepareRequest(const Bundle& bundle, const nlohmann::json& doc, PreparedRequest* out,
                    std::string* error);

// Parses `Type::"id"` (with \" and \\ escapes) into canonical form. False if malformed.
bool ParseEntityUid(std::string_view text, std::string* canonical, size_t* type_len);

// Converts a JSON value into a runtime Value: error for null, fractions, numbers beyond int64,
// malformed `{"__entity": ...}` objects, and arrays holding such an error at any depth.
// A JSON object is a Record even if some fields are errors (see JsonDeepError).
Value FromJson(const nlohmann::json& j);

// True if `j` holds, at any depth, a value that converts to an error. A record for which this
// is true is an error wherever it is used as a whole (==, in, set operations, literals).
bool JsonDeepError(const nlohmann::json& j);

}  // namespace writ::runtime
