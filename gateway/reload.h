// reload.h -- policy hot reload (docs/gateway.md, "Policy hot reload"). Entry points:
// BundleHolder (the bundle every session decides with, swapped atomically) and
// PolicyReloader (SIGHUP and file-change triggers; compiles, verifies, swaps, audits).
//
// A reload compiles the policies again (or reads the bundle file) through a BundleLoader;
// Bundle::Load verifies the result. Only a bundle that compiled and verified replaces the
// current one; otherwise the old one stays and the diagnostics are logged. Every attempt
// writes a `reload` audit record (docs/audit.md) and counts in writ_policy_reloads_total.
// A call is decided with the bundle current when its decision is made; calls already
// forwarded are not decided again, so a swap never changes an in-flight call.
//
// Thread safety: BundleHolder is lock-free to read (std::atomic<std::shared_ptr>).
// PolicyReloader's methods may be called from any thread; reloads are serialized.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gateway/audit.h"
#include "gateway/config.h"
#include "runtime/evaluator.h"

namespace writ::gateway {

class BundleHolder {
 public:
  explicit BundleHolder(std::shared_ptr<const runtime::Bundle> b) : b_(std::move(b)) {}
  std::shared_ptr<const runtime::Bundle> Get() const { return b_.load(); }
  void Set(std::shared_ptr<const runtime::Bundle> b) { b_.store(std::move(b)); }

 private:
  std::atomic<std::shared_ptr<const runtime::Bundle>> b_;
};

// Builds a fresh bundle from the configured sources: null with *diagnostics (rendered
// compiler diagnostics or an I/O / bundle error) on failure.
using BundleLoader =
    std::function<std::shared_ptr<const runtime::Bundle>(std::string* diagnostics)>;

struct ReloadResult {
  bool ok = false;       // a new bundle was loaded and is now current
  bool changed = false;  // its hash differs from the old one
  std::string old_hash, new_hash;
  std::string error;  // the diagnostics when !ok
};

// A fingerprint of the files under `paths` (files, or directories walked recursively): each
// regular file's path, size and mtime in ns. Missing paths contribute "missing". Two equal
// fingerprints mean nothing visible to a poller changed.
std::string FilesFingerprint(const std::vector<std::string>& paths);

class PolicyReloader {
 public:
  // `watched`: the policy files/directories (or the bundle file) and the schema.
  PolicyReloader(std::shared_ptr<BundleHolder> holder, BundleLoader loader,
                 std::vector<std::string> watched, ReloadConfig config,
                 std::shared_ptr<AuditLog> audit);
  ~PolicyReloader();  // Stop()

  // Starts the worker thread: it serves Trigger() and, with config.watch, polls the files.
  void Start();
  // Requests a reload (e.g. from the SIGHUP handler thread); returns at once. Triggers that
  // arrive while one is pending are merged.
  void Trigger(const std::string& why);
  // Reloads on the calling thread and returns what happened (logged and audited).
  ReloadResult ReloadNow(const std::string& trigger);
  void Stop();

 private:
  void Loop();

  std::shared_ptr<BundleHolder> holder_;
  BundleLoader loader_;
  std::vector<std::string> watched_;
  ReloadConfig config_;
  std::shared_ptr<AuditLog> audit_;
  std::mutex reload_mu_;  // serializes reloads
  std::mutex mu_;         // guards pending_, stopping_
  std::condition_variable cv_;
  std::string pending_;  // the trigger waiting to be served; empty: none
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace writ::gateway
