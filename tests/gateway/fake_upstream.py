#!/usr/bin/env python3
"""A tiny MCP server over stdio for the gateway's integration tests (stdlib only).

    fake_upstream.py --record FILE [--version 2025-06-18] [--progress] [--flood]

Implements initialize, ping, tools/list (two pages), tools/call. Tools:
  echo        readOnlyHint      returns its arguments as text
  write_note  (no annotations)  returns "noted"
  wipe        destructiveHint   returns "wiped"
  secret      readOnlyHint      hidden by the test policy
  crash       (page 2)          the process exits with status 3 without answering
  ask         (page 2)          sends sampling/createMessage to the client and returns its answer
  progress    (page 2, only with --progress) sends notifications/progress (to the call's progressToken) and
                                notifications/message, then returns "done"
  ask_progress (page 2, only with --progress) sends notifications/progress 1 and 2 (to the call's
                                progressToken), notifications/message, then sampling/createMessage,
                                and returns "client said: ..." once the client answers (a call
                                that stays in flight until the test answers)
  flood       (page 2, only with --flood) sends arguments.count notifications/message whose
                                data is {"i": 0..count-1, "pad": arguments.size x's}, then
                                returns "flooded" (a slow-client test's traffic)
Every tools/call received is appended to FILE as one JSON line before it is handled.
"""
import json
import os
import sys

args = sys.argv[1:]
record = args[args.index("--record") + 1] if "--record" in args else None
version = args[args.index("--version") + 1] if "--version" in args else None

PAGE1 = [
    {"name": "echo", "description": "echo", "inputSchema": {"type": "object"},
     "annotations": {"readOnlyHint": True}},
    {"name": "write_note", "description": "note", "inputSchema": {"type": "object"}},
    {"name": "wipe", "description": "wipe", "inputSchema": {"type": "object"},
     "annotations": {"destructiveHint": True}},
]
PAGE2 = [
    {"name": "secret", "description": "secret", "inputSchema": {"type": "object"},
     "annotations": {"readOnlyHint": True}},
    {"name": "crash", "description": "crash", "inputSchema": {"type": "object"}},
    {"name": "ask", "description": "ask the client", "inputSchema": {"type": "object"}},
]
if "--progress" in args:
    PAGE2.append({"name": "progress", "description": "reports progress",
                  "inputSchema": {"type": "object"}})
    PAGE2.append({"name": "ask_progress", "description": "progress, then asks the client",
                  "inputSchema": {"type": "object"}})
if "--flood" in args:
    PAGE2.append({"name": "flood", "description": "many log messages",
                  "inputSchema": {"type": "object"}})

waiting = {}  # our server-to-client request id -> the tools/call id to answer


def send(msg):
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


def text(rid, s):
    send({"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "text", "text": s}]}})


for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    msg = json.loads(line)
    method = msg.get("method")
    rid = msg.get("id")
    if method is None:  # a response to our request
        call_id = waiting.pop(msg.get("id"), None)
        if call_id is not None:
            text(call_id, "client said: " + json.dumps(msg.get("result")))
        continue
    if method == "initialize":
        p = msg["params"]
        send({"jsonrpc": "2.0", "id": rid, "result": {
            "protocolVersion": version or p["protocolVersion"],
            "capabilities": {"tools": {"listChanged": False}, "logging": {}},
            "serverInfo": {"name": "fake", "version": "1"},
            "_clientInfo": p.get("clientInfo")}})
    elif method == "ping":
        send({"jsonrpc": "2.0", "id": rid, "result": {}})
    elif method == "tools/list":
        cursor = (msg.get("params") or {}).get("cursor")
        if cursor == "p2":
            send({"jsonrpc": "2.0", "id": rid, "result": {"tools": PAGE2}})
        else:
            send({"jsonrpc": "2.0", "id": rid, "result": {"tools": PAGE1, "nextCursor": "p2"}})
    elif method == "tools/call":
        p = msg["params"]
        if record:
            with open(record, "a") as f:
                f.write(json.dumps({"id": rid, "name": p["name"], "arguments": p.get("arguments")}) + "\n")
        name = p["name"]
        if name == "crash":
            sys.stderr.write("crashing as asked\n")
            sys.stderr.flush()
            os._exit(3)
        elif name == "echo":
            text(rid, json.dumps(p.get("arguments"), sort_keys=True))
        elif name == "write_note":
            text(rid, "noted")
        elif name == "wipe":
            text(rid, "wiped")
        elif name == "ask":
            waiting["s1"] = rid
            send({"jsonrpc": "2.0", "id": "s1", "method": "sampling/createMessage",
                  "params": {"messages": [], "maxTokens": 5}})
        elif name == "progress":
            token = (p.get("_meta") or {}).get("progressToken")
            if token is not None:
                for i in (1, 2):
                    send({"jsonrpc": "2.0", "method": "notifications/progress",
                          "params": {"progressToken": token, "progress": i, "total": 2}})
            send({"jsonrpc": "2.0", "method": "notifications/message",
                  "params": {"level": "info", "data": "working"}})
            text(rid, "done")
        elif name == "ask_progress" and "--progress" in args:
            token = (p.get("_meta") or {}).get("progressToken")
            if token is not None:
                for i in (1, 2):
                    send({"jsonrpc": "2.0", "method": "notifications/progress",
                          "params": {"progressToken": token, "progress": i, "total": 3}})
            send({"jsonrpc": "2.0", "method": "notifications/message",
                  "params": {"level": "info", "data": "asking"}})
            waiting["s2"] = rid
            send({"jsonrpc": "2.0", "id": "s2", "method": "sampling/createMessage",
                  "params": {"messages": [], "maxTokens": 5}})
        elif name == "flood" and "--flood" in args:
            a = p.get("arguments") or {}
            pad = "x" * int(a.get("size", 0))
            for i in range(int(a.get("count", 0))):
                sys.stdout.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/message",
                                             "params": {"level": "info",
                                                        "data": {"i": i, "pad": pad}}}) + "\n")
            sys.stdout.flush()
            text(rid, "flooded")
        else:
            send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32602, "message": "no such tool"}})
    elif rid is not None:
        send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "not found"}})
