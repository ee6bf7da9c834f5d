#!/usr/bin/env python3
"""A minimal MCP Streamable HTTP server over TLS for the HTTP upstream tests (stdlib only).

    tls_mcp_server.py CERT KEY

Binds 127.0.0.1 on a free port and prints "port N" on stdout. POST: initialize is answered
with application/json and an Mcp-Session-Id; any other request with an SSE stream (a
notifications/message event, then the result {"echo": <method>, "session": <the header>});
notifications and responses get 202. GET is 405, DELETE 200. Exits when stdin closes.
Connections are kept alive unless the request carries `X-Close: 1` (then the answer says
`Connection: close`); results carry "conn" (the connection's number, from 1) and "resumed"
(whether its TLS handshake resumed a session).
"""
import itertools
import http.server
import json
import ssl
import sys
import threading

CONNS = itertools.count(1)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        self.conn_no = next(CONNS)

    def do_GET(self):
        self.send_response(405)
        self.send_header("Allow", "POST, DELETE")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_DELETE(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        msg = json.loads(body)
        if "id" not in msg or "method" not in msg:
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if msg["method"] == "initialize":
            out = json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": {
                "protocolVersion": msg["params"]["protocolVersion"],
                "capabilities": {"tools": {}}, "serverInfo": {"name": "tls", "version": "1"}}})
            data = out.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Mcp-Session-Id", "tls-session-1")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        result = {"echo": msg["method"], "session": self.headers.get("Mcp-Session-Id"),
                  "version": self.headers.get("Mcp-Protocol-Version"),
                  "custom": self.headers.get("X-Custom"), "conn": self.conn_no,
                  "resumed": self.connection.session_reused}
        if msg["method"] == "tools/list":
            result = {"tools": [{"name": "hello", "inputSchema": {"type": "object"},
                                 "description": json.dumps(result)}]}
        events = [
            {"jsonrpc": "2.0", "method": "notifications/message",
             "params": {"level": "info", "data": "hi"}},
            {"jsonrpc": "2.0", "id": msg["id"], "result": result},
        ]
        payload = "".join("event: message\r\ndata: " + json.dumps(e) + "\r\n\r\n"
                          for e in events).encode()
        self.send_response(200)
        if self.headers.get("X-Close") == "1":
            self.send_header("Connection", "close")
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        # In pieces, so the client sees events split across reads.
        for i in range(0, len(payload), 7):
            self.wfile.write(payload[i:i + 7])
            self.wfile.flush()


def main():
    cert, key = sys.argv[1], sys.argv[2]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("port", server.server_address[1], flush=True)
    sys.stdin.read()  # until the test closes our stdin
    server.shutdown()


if __name__ == "__main__":
    main()
