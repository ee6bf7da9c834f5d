// request_test.cc -- PrepareRequest (runtime/request.h): the nesting limit at its exact
// boundary, entity uids with and without escapes, and a PreparedRequest reused for one
// request after another (as `writ replay` reuses one per thread) holding exactly what a fresh
// one would.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "compiler/compile.h"
#include "runtime/bundle.h"
#include "runtime/evaluator.h"

namespace writ::runtime {
namespace {

using nlohmann::json;

constexpr const char* kPolicies = R"(
@id("p") permit (principal in Role::"eng", action == Action::"tools/call", resource)
when { principal.level > 2 && args.repo == "acme/x" && context.zone.name == "eu" };
@id("f") forbid (principal in Team::"red", action, resource) when { args.repo == "acme/y" };
)";

std::shared_ptr<const Bundle> Compile() {
  std::string bytes, error;
  REQUIRE_MESSAGE(CompileText("request.writ", kPolicies, &bytes, &error), error);
  auto bundle = Bundle::Load(bytes, &error);
  REQUIRE_MESSAGE(bundle != nullptr, error);
  return bundle;
}

json Request(json parents, json args) {
  return {{"principal", {{"uid", "User::\"a\""}, {"attrs", {{"level", 3}}}, {"parents", parents}}},
          {"action", "tools/call"},
          {"resource", {{"uid", "Tool::\"t\""}}},
          {"args", args},
          {"context", {{"zone", {{"name", "eu"}}}}}};
}

// `levels` arrays nested in args.deep, around `inner`.
json Nested(int levels, json inner) {
  json v = inner;
  for (int i = 0; i < levels; ++i) v = json::array({v});
  return Request(json::array(), {{"deep", v}});
}

TEST_CASE("the request nesting limit holds at its exact boundary") {
  auto bundle = Compile();
  PreparedRequest req;
  std::string error;
  // The root object is depth 1, args depth 2 and args.deep's outer array depth 3: n arrays
  // around `inner` put inner at depth n + 3. The limit is 64.
  CHECK(PrepareRequest(*bundle, Nested(61, 1), &req, &error));
  CHECK_FALSE(PrepareRequest(*bundle, Nested(62, 1), &req, &error));
  CHECK(error.find("nests deeper than 64 levels") != std::string::npos);
  CHECK(PrepareRequest(*bundle, Nested(61, json::array()), &req, &error));
  CHECK_FALSE(PrepareRequest(*bundle, Nested(62, json::array()), &req, &error));
  CHECK(PrepareRequest(*bundle, Nested(61, json::object()), &req, &error));
  CHECK_FALSE(PrepareRequest(*bundle, Nested(61, json::object({{"k", 1}})), &req, &error));
  CHECK(PrepareRequest(*bundle, Nested(60, json::object({{"k", 1}})), &req, &error));
}

TEST_CASE("entity uids are canonical with and without escapes") {
  std::string canon;
  size_t type_len = 0;
  CHECK(ParseEntityUid("Role::\"eng\"", &canon, &type_len));
  CHECK(canon == "Role::\"eng\"");
  CHECK(type_len == 4);
  CHECK(ParseEntityUid("A::B::\"x\\\\y\\\"z\"", &canon, &type_len));
  CHECK(canon == "A::B::\"x\\\\y\\\"z\"");
  CHECK(type_len == 4);
  CHECK_FALSE(ParseEntityUid("Role::\"a\"b\"", &canon, &type_len));  // a bare quote
  CHECK_FALSE(ParseEntityUid("Role::\"a\\n\"", &canon, &type_len));  // an unknown escape
  CHECK_FALSE(ParseEntityUid("9Role::\"a\"", &canon, &type_len));
  CHECK_FALSE(ParseEntityUid("Role:\"a\"", &canon, &type_len));
  CHECK(ParseEntityUid("Role::\"\"", &canon, &type_len));  // an empty id
  CHECK(canon == "Role::\"\"");
}

TEST_CASE("a reused PreparedRequest holds what a fresh one would") {
  auto bundle = Compile();
  const std::vector<json> requests = {
      Request({"Role::\"eng\"", "Team::\"red\"", "Org::\"x\"", "Role::\"eng\""},
              {{"repo", "acme/y"}}),
      Request({"Role::\"eng\""}, {{"repo", "acme/x"}}),
      Request(json::array(), {{"repo", "acme/x"}}),
      Request({"Team::\"red\""}, json::object()),
  };
  PreparedRequest reused;
  reused.args_unknown = true;  // a reused request is for the next decision, not list time
  for (size_t round = 0; round < 2; ++round) {
    for (const json& doc : requests) {
      PreparedRequest fresh;
      std::string e1, e2;
      REQUIRE(PrepareRequest(*bundle, doc, &fresh, &e1));
      REQUIRE(PrepareRequest(*bundle, doc, &reused, &e2));
      CHECK_FALSE(reused.args_unknown);
      CHECK(reused.principal.uid == fresh.principal.uid);
      CHECK(reused.principal.parents == fresh.principal.parents);
      CHECK(reused.principal.parent_ids == fresh.principal.parent_ids);
      CHECK(reused.resource.parents.empty());
      CHECK(reused.action.uid == "Action::\"tools/call\"");
      REQUIRE(reused.slots.size() == fresh.slots.size());
      for (size_t i = 0; i < fresh.slots.size(); ++i) {
        CHECK(reused.slots[i].type == fresh.slots[i].type);
        CHECK(reused.slots[i].s == fresh.slots[i].s);
        CHECK(reused.slots[i].i == fresh.slots[i].i);
      }
      CHECK(reused.slot_ids == fresh.slot_ids);
      CHECK(DecisionToJson(*bundle, reused, Evaluate(*bundle, reused)) ==
            DecisionToJson(*bundle, fresh, Evaluate(*bundle, fresh)));
    }
  }
  // The decisions differ across the requests, so the comparison above is not vacuous.
  PreparedRequest a, b;
  std::string error;
  REQUIRE(PrepareRequest(*bundle, requests[0], &a, &error));
  REQUIRE(PrepareRequest(*bundle, requests[1], &b, &error));
  CHECK(Evaluate(*bundle, a).effect == Effect::kDeny);
  CHECK(Evaluate(*bundle, b).effect == Effect::kAllow);
}

TEST_CASE("malformed entities are rejected with the same messages") {
  auto bundle = Compile();
  PreparedRequest req;
  std::string error;
  json doc = Request(json::array(), json::object());
  doc["principal"]["parents"] = {"Role::\"eng\"", 7};
  CHECK_FALSE(PrepareRequest(*bundle, doc, &req, &error));
  CHECK(error == "`principal.parents` must hold entity uids like Role::\"admin\"");
  doc["principal"]["parents"] = "Role::\"eng\"";
  CHECK_FALSE(PrepareRequest(*bundle, doc, &req, &error));
  CHECK(error == "`principal.parents` must be an array of entity uids");
  doc["principal"] = {{"uid", 5}};
  CHECK_FALSE(PrepareRequest(*bundle, doc, &req, &error));
  CHECK(error ==
        "`principal` must be an object with a string `uid` such as \"User::\\\"alice\\\"\"");
  doc["principal"] = {{"uid", "alice"}};
  CHECK_FALSE(PrepareRequest(*bundle, doc, &req, &error));
  CHECK(error == "`principal.uid` is not an entity uid like User::\"alice\"");
  doc["principal"] = {{"uid", "User::\"a\""}, {"attrs", 1}};
  CHECK_FALSE(PrepareRequest(*bundle, doc, &req, &error));
  CHECK(error == "`principal.attrs` must be an object");
  doc.erase("principal");
  CHECK_FALSE(PrepareRequest(*bundle, doc, &req, &error));
  CHECK(error == "request has no `principal`");
}

}  // namespace
}  // namespace writ::runtime
