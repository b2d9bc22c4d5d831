#!/usr/bin/env python3
"""An HTTP server for vidnode's tests, on 127.0.0.1 only.

    http_test_server.py ROOT     prints "listening on PORT", then serves:

GET  /files/NAME               ROOT/files/NAME
PUT  /uploads/NAME             stores the body as ROOT/uploads/NAME
POST /hooks/NAME               appends the body as a line to ROOT/hooks/NAME
any  /status/CODE/...          answers CODE
any  /flaky/N/REST             answers 500 to the first N requests for the
                               path, then acts as /REST
any  /hold/NAME/REST           waits until /release/NAME is requested (at
                               most a minute), then acts as /REST
any  /release/NAME             releases the requests held under NAME
any  /stall/...                answers nothing until the client hangs up,
                               then logs "CLOSED PATH"
GET  /huge/N                   declares a body of N bytes, sends 16 of them,
                               then nothing until the client hangs up
any  /redirect/TARGET          answers 302 with Location: TARGET, URL-decoded
                               (e.g. /redirect/http%3A%2F%2F10.0.0.1%2F)
Every request is logged as "METHOD PATH" to ROOT/requests.log and to
stdout, which also gets "ANSWERED METHOD PATH" once a request was answered:
tests wait on those lines instead of sleeping.
"""
import http.server
import os
import sys
import threading
import urllib.parse

ROOT = sys.argv[1]
counts = {}
holds = {}
lock = threading.Lock()


def note(line):
    """Logs an event to requests.log and stdout."""
    with lock:
        with open(os.path.join(ROOT, "requests.log"), "a") as log:
            log.write(line + "\n")
        print(line, flush=True)


def hold(name):
    with lock:
        return holds.setdefault(name, threading.Event())


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, code, body=b""):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length)

    def wait_for_hang_up(self):
        """A hung peer: sends nothing more until the client gives up and
        closes the connection (at most a minute, so no thread lingers)."""
        self.connection.settimeout(60)
        try:
            while self.connection.recv(4096):
                pass
        except OSError:
            pass
        self.close_connection = True
        note(f"CLOSED {self.path}")

    def handle_any(self, method):
        note(f"{method} {self.path}")
        self.route(method)
        note(f"ANSWERED {method} {self.path}")

    def route(self, method):
        path = self.path
        if path.startswith("/flaky/"):
            _, _, n, rest = path.split("/", 3)
            with lock:
                counts[path] = counts.get(path, 0) + 1
                seen = counts[path]
            if seen <= int(n):
                self.body()
                return self.answer(500, b"not yet")
            path = "/" + rest
        if path.startswith("/release/"):
            self.body()
            hold(path[len("/release/"):]).set()
            return self.answer(200)
        if path.startswith("/hold/"):
            _, _, name, rest = path.split("/", 3)
            hold(name).wait(60)
            path = "/" + rest
        if path.startswith("/redirect/"):
            self.body()
            self.send_response(302)
            self.send_header("Location",
                             urllib.parse.unquote(path[len("/redirect/"):]))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        parts = path.strip("/").split("/")
        if parts[0] == "status":
            self.body()
            return self.answer(int(parts[1]))
        if parts[0] == "stall":
            return self.wait_for_hang_up()
        if method == "GET" and parts[0] == "huge":
            self.send_response(200)
            self.send_header("Content-Length", parts[1])
            self.end_headers()
            self.wfile.write(b"h" * 16)
            self.wfile.flush()
            return self.wait_for_hang_up()
        if method == "GET" and parts[0] == "files":
            try:
                with open(os.path.join(ROOT, "files", parts[1]), "rb") as f:
                    return self.answer(200, f.read())
            except OSError:
                return self.answer(404)
        if method == "PUT" and parts[0] == "uploads":
            os.makedirs(os.path.join(ROOT, "uploads"), exist_ok=True)
            with open(os.path.join(ROOT, "uploads", parts[1]), "wb") as f:
                f.write(self.body())
            return self.answer(200)
        if method == "POST" and parts[0] == "hooks":
            os.makedirs(os.path.join(ROOT, "hooks"), exist_ok=True)
            with open(os.path.join(ROOT, "hooks", parts[1]), "ab") as f:
                f.write(self.body() + b"\n")
            return self.answer(200)
        self.body()
        return self.answer(404)

    def do_GET(self):
        self.handle_any("GET")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_POST(self):
        self.handle_any("POST")


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(f"listening on {server.server_address[1]}", flush=True)
server.serve_forever()
