// http_server.h -- the Streamable HTTP downstream (MCP 2025-03-26..2025-11-25) of `writ serve`:
// one endpoint (`http.path`) on Boost.Beast. docs/gateway.md ("HTTP") lists the status codes.
//
// Each MCP session (created by the first `initialize`) owns one Proxy and its own upstream
// processes; its id (MCP-Session-Id, 128 random bits in hex) is bound to the authenticated
// principal. POST carries one JSON-RPC message: a request is answered with application/json,
// or with an SSE stream (gateway/sse.h) when the client accepts one and the upstream sends
// related progress, logs or server-to-client requests before the reply; notifications and
// responses get 202. GET opens the session's SSE stream for server-initiated messages, or,
// with `Last-Event-ID`, resumes the GET stream (ids g<N>) or a POST's stream (ids p<k>-<n>)
// whose connection broke (docs/gateway.md, "Resuming the GET stream", "Resuming a POST stream").
// DELETE ends a session. docs/gateway.md, "Server-to-client messages over HTTP", has the
// routing rules. Host and Origin are checked (DNS rebinding) before anything else;
// credentials come from `Authorization` through gateway::Authenticator. Upstreams are child
// processes (gateway/upstream.h) or Streamable HTTP servers (gateway/http_upstream.h).
//
// Threading: one thread accepts; each connection gets a thread (at most
// http.max_connections, beyond that 503); an open SSE stream holds its connection's thread. Sessions are shared under one mutex; a Proxy is
// thread-safe. Run() returns after Stop() (callable from any thread, e.g. a signal handler
// thread): the listener closes, open connections are shut down and every session's
// upstreams are stopped.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/audit.h"
#include "gateway/trace.h"
#include "gateway/config.h"
#include "gateway/guards.h"
#include "gateway/identity.h"
#include "gateway/reload.h"
#include "runtime/evaluator.h"

namespace writ::gateway {

struct HttpServerOptions {
  Config config;
  std::shared_ptr<const runtime::Bundle> bundle;
  std::shared_ptr<AuditLog> audit;                 // may be null
  std::shared_ptr<const Guards> guards;  // shared tools/call protections; null: none
  std::shared_ptr<const Authenticator> auth;       // null: anonymous (allow_anonymous)
  std::shared_ptr<BundleHolder> bundles;           // optional: hot-reloadable (gateway/reload.h)
  std::string version = "0.1.0";
  std::shared_ptr<TraceWriter> trace;  // `record:`; may be null (docs/replay.md)
};

class HttpServer {
 public:
  explicit HttpServer(HttpServerOptions opts);
  ~HttpServer();

  // Binds the listener. False with *error. port() is the bound port afterwards.
  bool Listen(std::string* error);
  int port() const;
  // Serves until Stop(). REQUIRES: Listen() succeeded.
  void Run();
  void Stop();
  // Graceful shutdown, before Stop(): from now on new sessions and new requests get 503
  // ("the gateway is shutting down"; responses and notifications are still accepted so
  // in-flight calls can finish); waits until no session has a request in flight or `timeout`
  // passes. True if everything finished. Callable from any thread.
  bool Drain(std::chrono::milliseconds timeout);
  // Credential rotation (gateway/rotation.h): sessions opened from now on start their upstreams
  // from `upstreams` (resolved, same order as the config), and in every open session the stdio
  // upstreams listed in `changed` are restarted with their new env
  // (UpstreamSupervisor::RestartWithEnv); the sessions stay open. A `url:` upstream's changed
  // headers apply to new sessions only (logged). Callable from any thread.
  void RotateUpstreams(const std::vector<UpstreamConfig>& upstreams,
                       const std::vector<size_t>& changed);

  // The request dispatch without sockets, for the fuzz target (fuzz/fuzz_http_dispatch.cc)
  // and tests: `raw` is parsed as one HTTP request (Boost.Beast, the limits a connection
  // uses; at the end of `raw` the message ends) and handled exactly as a connection's request
  // is (Host/Origin, identity, MCP-Protocol-Version, POST/GET/DELETE, sessions), and the
  // serialized response is returned ("" if `raw` is not a complete request). A POST whose
  // answer is a stream waits up to `wait` for its reply and returns the events and the reply
  // as one text/event-stream body; a GET stream returns what was queued (replays, the
  // priming event) and then ends as if the client left; a GET resuming a POST stream
  // (Last-Event-ID p<k>-<n>) waits like the POST. A resumable POST still unanswered after
  // `wait` counts as primed (what a connection does after 1 s), and its end counts as the
  // client leaving (the call goes on; the stream can be resumed). Listen/Run are not needed.
  std::string DispatchForTesting(std::string_view raw, std::chrono::milliseconds wait);
  // Ends every session (their upstreams stop). For the fuzz target, between inputs.
  void CloseSessionsForTesting();
  // What session `session_id` holds for its POST requests (tests; all zero for an unknown id):
  // resumable POST streams still known (`streams`), their kept messages, how many have a
  // connection writing them (`live`) or have their reply (`replied`), how many times a resume
  // took a stream over (`attaches`), requests waiting for a reply and progress tokens mapped.
  struct PostState {
    size_t streams = 0, kept = 0, live = 0, replied = 0, attaches = 0, waiters = 0,
           progress = 0;
  };
  PostState PostStateForTesting(const std::string& session_id);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Whether the Host header value `host` is allowed (allowed_hosts; empty: loopback names with
// any port). Exposed for tests.
bool HostAllowed(const HttpConfig& c, std::string_view host);
// Whether the Origin header value is allowed (allowed_origins; empty: loopback origins).
bool OriginAllowed(const HttpConfig& c, std::string_view origin);

}  // namespace writ::gateway
