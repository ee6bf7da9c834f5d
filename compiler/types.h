// types.h -- the types of Writ values as the schema declares them and the type checker infers
// them. Used by compiler/schema (which builds them) and compiler/typecheck (which reads them).
//
// Invariants: types are immutable once built and shared by TypePtr; a kRecord lists its
// attributes by name; `open` records (and kAny) accept any attribute without checking, which
// is how "no schema" and "dynamic" are represented.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/span.h"

namespace writ::types {

enum class Kind : uint8_t {
  kAny,       // unknown / dynamic: every operation is allowed, checked at run time
  kBool,      // true false
  kLong,      // 64-bit integer
  kString,    // UTF-8 string
  kDuration,  // 15m, 2h
  kIpAddr,    // ip("10.0.0.0/8")
  kSet,       // Set<elem>
  kRecord,    // {attrs...}
  kEntity,    // Type::"id"; entity_types lists the possible types (empty = unknown)
};

struct Type;
using TypePtr = std::shared_ptr<const Type>;

struct Attribute {
  TypePtr type;
  bool optional = false;  // declared `name?`: needs a `has` guard before use
  Span span;              // where the schema declares it (file 0/empty when built in)
};

struct Type {
  Kind kind = Kind::kAny;
  TypePtr elem;                             // kSet
  std::map<std::string, Attribute> attrs;   // kRecord
  bool open = false;                        // kRecord: undeclared attributes are dynamic
  std::vector<std::string> entity_types;    // kEntity, sorted, unique
};

TypePtr Any();
TypePtr Bool();
TypePtr Long();
TypePtr String();
TypePtr Duration();
TypePtr IpAddr();
TypePtr SetOf(TypePtr elem);
TypePtr Entity(std::vector<std::string> types);  // empty = an entity of unknown type
TypePtr Record(std::map<std::string, Attribute> attrs, bool open = false);
TypePtr OpenRecord();

// "Long", "Set<String>", "User", "User | Agent", "{amount: Long, currency?: String}".
std::string ToString(const Type& t);

// True when values of `a` and `b` can ever be equal (kAny is compatible with everything).
bool Comparable(const Type& a, const Type& b);

// A type covering both (for `if` branches and set elements); kAny when they differ.
TypePtr Join(const TypePtr& a, const TypePtr& b);

}  // namespace writ::types
