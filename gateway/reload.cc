// reload.cc -- see reload.h.
#include "gateway/reload.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

#include "gateway/log.h"
#include "gateway/metrics.h"

namespace writ::gateway {
namespace {

void AddFile(const std::string& path, std::vector<std::string>* out) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    out->push_back(path + " missing");
    return;
  }
  out->push_back(path + " " + std::to_string(st.st_size) + " " +
                 std::to_string(static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL +
                                st.st_mtim.tv_nsec));
}

}  // namespace

std::string FilesFingerprint(const std::vector<std::string>& paths) {
  std::vector<std::string> items;
  for (const auto& p : paths) {
    std::error_code ec;
    if (std::filesystem::is_directory(p, ec)) {
      auto it = std::filesystem::recursive_directory_iterator(
          p, std::filesystem::directory_options::skip_permission_denied, ec);
      for (; !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
        if (it->is_regular_file(ec)) AddFile(it->path().string(), &items);
        if (items.size() > 100000) break;  // a bound; nobody has that many policy files
      }
    } else {
      AddFile(p, &items);
    }
  }
  std::sort(items.begin(), items.end());
  std::string out;
  for (const auto& i : items) out += i + "\n";
  return out;
}

PolicyReloader::PolicyReloader(std::shared_ptr<BundleHolder> holder, BundleLoader loader,
                               std::vector<std::string> watched, ReloadConfig config,
                               std::shared_ptr<AuditLog> audit)
    : holder_(std::move(holder)),
      loader_(std::move(loader)),
      watched_(std::move(watched)),
      config_(config),
      audit_(std::move(audit)) {}

PolicyReloader::~PolicyReloader() { Stop(); }

void PolicyReloader::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void PolicyReloader::Trigger(const std::string& why) {
  std::lock_guard<std::mutex> lock(mu_);
  if (pending_.empty()) pending_ = why;
  cv_.notify_all();
}

void PolicyReloader::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

ReloadResult PolicyReloader::ReloadNow(const std::string& trigger) {
  std::lock_guard<std::mutex> serial(reload_mu_);
  ReloadResult r;
  std::shared_ptr<const runtime::Bundle> old = holder_->Get();
  if (old) r.old_hash = old->source_hash_hex();
  std::shared_ptr<const runtime::Bundle> fresh;
  try {
    fresh = loader_(&r.error);
  } catch (const std::exception& e) {
    r.error = std::string("internal error: ") + e.what();
  }
  if (fresh == nullptr) {
    if (r.error.empty()) r.error = "the policies could not be loaded";
    LogError("policy reload failed; keeping the current bundle",
             {{"trigger", trigger}, {"bundle_hash", r.old_hash}, {"diagnostics", r.error}});
  } else {
    r.ok = true;
    r.new_hash = fresh->source_hash_hex();
    r.changed = r.new_hash != r.old_hash;
    holder_->Set(std::move(fresh));
    LogInfo(r.changed ? "policies reloaded" : "policies reloaded (unchanged)",
            {{"trigger", trigger}, {"old_bundle_hash", r.old_hash}, {"bundle_hash", r.new_hash}});
  }
  Metrics::Global().reloads().With({r.ok ? "ok" : "failed"}).Inc();
  if (audit_ != nullptr) {
    AuditReload a;
    a.trigger = trigger;
    a.result = r.ok ? "ok" : "failed";
    a.old_bundle_hash = r.old_hash;
    a.new_bundle_hash = r.new_hash;
    a.error = r.error;
    AuditStatus st = audit_->AppendReload(a);
    if (!st.ok()) LogError("audit: cannot record a policy reload", {{"error", st.message}});
  }
  return r;
}

void PolicyReloader::Loop() {
  using Clock = std::chrono::steady_clock;
  std::string seen = config_.watch ? FilesFingerprint(watched_) : std::string();
  std::string changed_to;  // a fingerprint that differs from `seen`, waiting to settle
  Clock::time_point changed_at;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    auto poll = std::chrono::milliseconds(config_.watch ? config_.poll_interval_ms : 3600000);
    if (!changed_to.empty())
      poll = std::min(poll, std::chrono::milliseconds(std::max(config_.debounce_ms / 2, 10)));
    cv_.wait_for(lock, poll, [this] { return stopping_ || !pending_.empty(); });
    if (stopping_) return;
    std::string trigger;
    std::swap(trigger, pending_);
    lock.unlock();
    if (!trigger.empty()) {
      ReloadNow(trigger);
      if (config_.watch) {
        seen = FilesFingerprint(watched_);
        changed_to.clear();
      }
    } else if (config_.watch) {
      std::string now = FilesFingerprint(watched_);
      if (now == seen) {
        changed_to.clear();
      } else if (now != changed_to) {
        changed_to = now;  // still being written: wait until it stays the same
        changed_at = Clock::now();
      } else if (Clock::now() - changed_at >= std::chrono::milliseconds(config_.debounce_ms)) {
        seen = now;
        changed_to.clear();
        ReloadNow("file_change");
      }
    }
    lock.lock();
  }
}

}  // namespace writ::gateway
