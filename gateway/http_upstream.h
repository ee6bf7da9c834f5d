// http_upstream.h -- an upstream MCP server reached over Streamable HTTP (MCP 2025-03-26 ..
// 2025-11-25), http:// or https:// (TLS via OpenSSL through boost/beast/ssl). Entry point:
// class HttpUpstream, which has the shape of ChildProcess (Start with a line callback and an
// exit callback, Send, Shutdown), so the Proxy drives both the same way (Proxy::AddUpstream +
// OnUpstreamLine / OnUpstreamExit). docs/gateway.md, "Streamable HTTP upstreams".
//
// Each message is POSTed with `Accept: application/json, text/event-stream`, the
// `MCP-Session-Id` the server assigned at initialize and the negotiated
// `MCP-Protocol-Version`. The answer is a JSON body or an SSE stream (parsed by
// gateway/sse.h; every `message` event is one JSON-RPC message); each message goes to
// on_line as if it were a line from a child. After `notifications/initialized` the GET stream
// is opened for server-initiated messages (a 405 means the server offers none) and reopened
// with `Last-Event-ID` when it drops. Shutdown sends DELETE for the session.
//
// Connections are kept alive: after a complete answer the connection goes to a small pool
// (spec.pool_size, idle at most spec.idle_timeout or the server's `Keep-Alive: timeout`) and
// the next message takes it. A kept connection that turns out closed is replaced: before
// use (it is readable or hung up), when writing fails (the request did not get out), or,
// for read-only methods only (ping, */list, resources/read, prompts/get,
// completion/complete), when it closes after the request was written and before any byte
// of the answer (sent again once on a fresh connection; a tools/call is never sent twice:
// it fails with -32003). New TLS connections offer the last TLS session (resumption).
//
// Failures are per message: a request whose POST fails (connect, TLS, HTTP error status, the
// stream ends without the response) gets a JSON-RPC error reply (-32003) through on_line, so
// only that call fails. on_exit is called once, when the server forgets the session (404 to a
// request carrying MCP-Session-Id): the session cannot continue.
//
// Timeouts: connecting, the TLS handshake and writing a message are bounded by
// `connect_timeout`; the response headers of a notification or response too. A request's
// answer is not bounded here (tool calls may be long; the Proxy bounds fan-outs).
//
// Threads: each Send runs its exchange on a thread of its own (bounded by `max_in_flight`
// exchanges; beyond that Send fails); one more thread holds the GET stream. Writes take
// turns in the order of the Send calls (a message is written completely before the next
// one starts), and messages sent after `initialize` wait (at most connect_timeout) until its
// answer has come, since they need the session id it assigns. (On different connections the
// server may still start reading them in another order; a resend after a broken connection
// goes out of turn.)
//
// Thread safety: Send may be called from any thread; Start, Shutdown from one thread.
// on_line and on_exit run on exchange threads and must not call Shutdown.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/config.h"

#include "gateway/http_url.h"

namespace writ::gateway {


struct HttpUpstreamSpec {
  std::string name;  // for logs and error messages
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;  // sent with every request
  bool tls_verify = true;  // verify the server's certificate chain and host name
  std::string ca_file;     // PEM CA bundle; empty: the system's default paths
  size_t max_message_bytes = 4 * 1024 * 1024;
  int max_in_flight = 64;  // concurrent exchanges
  std::chrono::milliseconds connect_timeout{10000};
  int pool_size = 4;  // kept-alive idle connections (0: a connection per message)
  std::chrono::milliseconds idle_timeout{15000};  // an idle connection is closed after this
};

// Counters of one upstream's connections (for tests and metrics).
struct HttpUpstreamStats {
  int64_t connections = 0;  // TCP connections opened (the GET stream's included)
  int64_t reused = 0;       // messages sent on a kept-alive connection
  int64_t retried = 0;      // sends repeated on another connection (see Exchange)
  int64_t tls_resumed = 0;  // TLS handshakes that resumed a kept session
};

// The spec for an upstream with `url:` (upstream_timeout_ms bounds connecting).
HttpUpstreamSpec HttpUpstreamSpecFor(const UpstreamConfig& u, const LimitsConfig& limits);

class HttpUpstream {
 public:
  using LineFn = std::function<void(std::string_view line)>;
  using ExitFn = std::function<void(const std::string& why)>;

  explicit HttpUpstream(HttpUpstreamSpec spec);
  ~HttpUpstream();  // runs Shutdown
  HttpUpstream(const HttpUpstream&) = delete;
  HttpUpstream& operator=(const HttpUpstream&) = delete;

  // Checks the URL and sets up TLS (CA file); no I/O yet. False with *error.
  bool Start(LineFn on_line, ExitFn on_exit, std::string* error);

  // Sends one JSON-RPC message (asynchronously). False when shut down or too many exchanges
  // are running (the Proxy then fails the request at once).
  bool Send(std::string_view line);

  // DELETEs the session (bounded by connect_timeout), stops every exchange and the GET
  // stream, waits for their threads. Idempotent.
  void Shutdown();

  std::string session_id() const;
  HttpUpstreamStats stats() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace writ::gateway
