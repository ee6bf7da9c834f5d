// metrics.cc -- see metrics.h.
#include "gateway/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace writ::gateway {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      buckets_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double v) {
  size_t i =
      static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::BucketCounts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  for (size_t i = 0; i < out.size(); ++i) out[i] = buckets_[i].load(std::memory_order_relaxed);
  return out;
}

std::vector<double> LatencyBuckets() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,     10};
}

namespace {

template <class T>
std::unique_ptr<T> MakeSeries(const std::vector<double>&) {
  return std::make_unique<T>();
}
template <>
std::unique_ptr<Histogram> MakeSeries<Histogram>(const std::vector<double>& bounds) {
  return std::make_unique<Histogram>(bounds);
}

std::string Labels(const std::vector<std::string>& names, const std::vector<std::string>& values,
                   const std::string& extra = "") {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    out += out.empty() ? "{" : ",";
    out += names[i] + "=\"" + EscapeLabelValue(values[i]) + "\"";
  }
  if (!extra.empty()) out += (out.empty() ? "{" : ",") + extra;
  if (!out.empty()) out += "}";
  return out;
}

std::string EscapeHelp(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

void Header(const std::string& name, const std::string& help, const char* type, std::string* out) {
  *out += "# HELP " + name + " " + EscapeHelp(help) + "\n";
  *out += "# TYPE " + name + " " + type + "\n";
}

}  // namespace

std::string EscapeLabelValue(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string FormatMetricValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

template <class T>
T& Family<T>::With(const std::vector<std::string>& values) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = series_.find(values);
  if (it == series_.end()) it = series_.emplace(values, MakeSeries<T>(bounds_)).first;
  return *it->second;
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

Family<Counter>& Registry::AddCounter(const std::string& name, const std::string& help,
                                      std::vector<std::string> labels) {
  std::lock_guard<std::mutex> lock(mu_);
  counters_.push_back(std::make_unique<Family<Counter>>());
  Family<Counter>* f = counters_.back().get();
  f->name_ = name, f->help_ = help, f->labels_ = std::move(labels);
  order_.push_back(Entry{'c', f, nullptr, nullptr});
  return *f;
}

Family<Gauge>& Registry::AddGauge(const std::string& name, const std::string& help,
                                  std::vector<std::string> labels) {
  std::lock_guard<std::mutex> lock(mu_);
  gauges_.push_back(std::make_unique<Family<Gauge>>());
  Family<Gauge>* f = gauges_.back().get();
  f->name_ = name, f->help_ = help, f->labels_ = std::move(labels);
  order_.push_back(Entry{'g', nullptr, f, nullptr});
  return *f;
}

Family<Histogram>& Registry::AddHistogram(const std::string& name, const std::string& help,
                                          std::vector<std::string> labels,
                                          std::vector<double> bounds) {
  std::lock_guard<std::mutex> lock(mu_);
  histograms_.push_back(std::make_unique<Family<Histogram>>());
  Family<Histogram>* f = histograms_.back().get();
  f->name_ = name, f->help_ = help, f->labels_ = std::move(labels), f->bounds_ = std::move(bounds);
  order_.push_back(Entry{'h', nullptr, nullptr, f});
  return *f;
}

std::string Registry::Render() const {
  std::string out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const Entry& e : order_) {
    if (e.type == 'c' || e.type == 'g') {
      // Counters and gauges render the same way but for their TYPE.
      auto render = [&out](auto& f, const char* type) {
        Header(f.name_, f.help_, type, &out);
        std::lock_guard<std::mutex> fl(f.mu_);
        if (f.labels_.empty() && f.series_.empty()) out += f.name_ + " 0\n";
        for (const auto& [values, s] : f.series_)
          out += f.name_ + Labels(f.labels_, values) + " " + std::to_string(s->Value()) + "\n";
      };
      if (e.type == 'c') {
        render(*e.counter, "counter");
      } else {
        render(*e.gauge, "gauge");
      }
      continue;
    }
    Family<Histogram>& f = *e.histogram;
    Header(f.name_, f.help_, "histogram", &out);
    std::lock_guard<std::mutex> fl(f.mu_);
    auto one = [&](const std::vector<std::string>& values, const Histogram* h) {
      std::vector<uint64_t> counts =
          h ? h->BucketCounts() : std::vector<uint64_t>(f.bounds_.size() + 1, 0);
      uint64_t cum = 0;
      for (size_t i = 0; i <= f.bounds_.size(); ++i) {
        cum += counts[i];
        std::string le = i < f.bounds_.size() ? FormatMetricValue(f.bounds_[i]) : "+Inf";
        out += f.name_ + "_bucket" + Labels(f.labels_, values, "le=\"" + le + "\"") + " " +
               std::to_string(cum) + "\n";
      }
      // _count is the +Inf bucket by definition; reading it from the buckets keeps the two
      // equal while other threads observe.
      out += f.name_ + "_sum" + Labels(f.labels_, values) + " " +
             FormatMetricValue(h ? h->Sum() : 0.0) + "\n";
      out += f.name_ + "_count" + Labels(f.labels_, values) + " " + std::to_string(cum) + "\n";
    };
    if (f.labels_.empty() && f.series_.empty()) one({}, nullptr);
    for (const auto& [values, h] : f.series_) one(values, h.get());
  }
  return out;
}

Metrics& Metrics::Global() {
  static Metrics* m = new Metrics();  // never destroyed: threads may record during exit
  return *m;
}

namespace {
constexpr const char* kEffects[] = {"allow", "deny", "require_approval", "error"};
}

Metrics::Metrics() {
  Family<Counter>& d =
      registry_.AddCounter("writ_decisions_total",
                           "Policy decisions on calls (tools/call, prompts/get, resources/read), "
                           "by effect; error: the request could not be decided and was denied.",
                           {"effect"});
  for (int i = 0; i < 4; ++i) decisions_[i] = &d.With({kEffects[i]});
  decision_seconds_ =
      &registry_
           .AddHistogram("writ_decision_duration_seconds",
                         "Time to prepare and evaluate one call's decision.", {}, LatencyBuckets())
           .With({});
  upstream_seconds_ =
      &registry_.AddHistogram("writ_upstream_request_duration_seconds",
                              "Time from forwarding a client request to an upstream to its reply.",
                              {"upstream"}, LatencyBuckets());
  upstream_errors_ = &registry_.AddCounter(
      "writ_upstream_errors_total",
      "Forwarded requests answered with a JSON-RPC error (by the upstream, or by the gateway "
      "because the upstream exited or could not be written to).",
      {"upstream"});
  upstream_restarts_ =
      &registry_.AddCounter("writ_upstream_restarts_total",
                            "Upstream processes restarted after they exited.", {"upstream"});
  sessions_ = &registry_.AddGauge("writ_sessions_active", "Open MCP sessions.").With({});
  in_flight_ = &registry_
                    .AddGauge("writ_in_flight_calls",
                              "Client requests forwarded upstream and not answered yet.")
                    .With({});
  reloads_ = &registry_.AddCounter("writ_policy_reloads_total",
                                   "Policy reload attempts by result (ok, failed).", {"result"});
  reloads_->With({"ok"});
  reloads_->With({"failed"});
  audit_failures_ = &registry_
                         .AddCounter("writ_audit_write_failures_total",
                                     "Audit records that could not be written.")
                         .With({});
  http_connections_ = &registry_.AddCounter(
      "writ_upstream_http_connections_total",
      "Connections opened to a Streamable HTTP upstream (its GET stream's included).",
      {"upstream"});
  http_reused_ = &registry_.AddCounter(
      "writ_upstream_http_reused_total",
      "Messages sent to a Streamable HTTP upstream on a kept-alive connection.", {"upstream"});
  http_resends_ = &registry_.AddCounter(
      "writ_upstream_http_resends_total",
      "Messages sent again on a fresh connection because a kept-alive one was closed.",
      {"upstream"});
  http_tls_resumptions_ = &registry_.AddCounter(
      "writ_upstream_http_tls_resumptions_total",
      "TLS handshakes with a Streamable HTTP upstream that resumed a kept session.",
      {"upstream"});
}

Counter& Metrics::Decision(std::string_view effect) {
  for (int i = 0; i < 4; ++i)
    if (effect == kEffects[i]) return *decisions_[i];
  return *decisions_[3];
}

}  // namespace writ::gateway
