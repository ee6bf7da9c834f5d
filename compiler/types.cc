// types.cc -- construction and printing of Writ types (see types.h).
#include "compiler/types.h"

#include <algorithm>

namespace writ::types {
namespace {

TypePtr Make(Kind k) {
  auto t = std::make_shared<Type>();
  t->kind = k;
  return t;
}

}  // namespace

TypePtr Any() {
  static const TypePtr t = Make(Kind::kAny);
  return t;
}
TypePtr Bool() {
  static const TypePtr t = Make(Kind::kBool);
  return t;
}
TypePtr Long() {
  static const TypePtr t = Make(Kind::kLong);
  return t;
}
TypePtr String() {
  static const TypePtr t = Make(Kind::kString);
  return t;
}
TypePtr Duration() {
  static const TypePtr t = Make(Kind::kDuration);
  return t;
}
TypePtr IpAddr() {
  static const TypePtr t = Make(Kind::kIpAddr);
  return t;
}

TypePtr SetOf(TypePtr elem) {
  auto t = std::make_shared<Type>();
  t->kind = Kind::kSet;
  t->elem = elem ? std::move(elem) : Any();
  return t;
}

TypePtr Entity(std::vector<std::string> names) {
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  auto t = std::make_shared<Type>();
  t->kind = Kind::kEntity;
  t->entity_types = std::move(names);
  return t;
}

TypePtr Record(std::map<std::string, Attribute> attrs, bool open) {
  auto t = std::make_shared<Type>();
  t->kind = Kind::kRecord;
  t->attrs = std::move(attrs);
  t->open = open;
  return t;
}

TypePtr OpenRecord() {
  static const TypePtr t = Record({}, true);
  return t;
}

std::string ToString(const Type& t) {
  switch (t.kind) {
    case Kind::kAny: return "Any";
    case Kind::kBool: return "Bool";
    case Kind::kLong: return "Long";
    case Kind::kString: return "String";
    case Kind::kDuration: return "Duration";
    case Kind::kIpAddr: return "IpAddr";
    case Kind::kSet: return "Set<" + ToString(*t.elem) + ">";
    case Kind::kEntity: {
      if (t.entity_types.empty()) return "entity";
      std::string s;
      for (const auto& n : t.entity_types) s += (s.empty() ? "" : " | ") + n;
      return s;
    }
    case Kind::kRecord: {
      if (t.open && t.attrs.empty()) return "Record";
      std::string s = "{";
      for (const auto& [name, a] : t.attrs) {
        if (s.size() > 1) s += ", ";
        s += name + (a.optional ? "?" : "") + ": " + ToString(*a.type);
      }
      return s + "}";
    }
  }
  return "?";
}

bool Comparable(const Type& a, const Type& b) {
  if (a.kind == Kind::kAny || b.kind == Kind::kAny) return true;
  if (a.kind != b.kind) return false;
  if (a.kind == Kind::kSet) return Comparable(*a.elem, *b.elem);
  return true;  // entities of different types compare false, which is not a type error
}

TypePtr Join(const TypePtr& a, const TypePtr& b) {
  if (a->kind != b->kind) return Any();
  switch (a->kind) {
    case Kind::kSet: return SetOf(Join(a->elem, b->elem));
    case Kind::kEntity: {
      if (a->entity_types.empty() || b->entity_types.empty()) return Entity({});
      std::vector<std::string> u = a->entity_types;
      u.insert(u.end(), b->entity_types.begin(), b->entity_types.end());
      return Entity(std::move(u));
    }
    case Kind::kRecord: return a->attrs.size() == b->attrs.size() && !a->open ? a : OpenRecord();
    default: return a;
  }
}

}  // namespace writ::types
