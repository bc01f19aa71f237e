"""A private git repository over HTTP: `git http-backend` (git's own smart-HTTP CGI program)
behind a small HTTP server that demands Basic credentials, as a git host does for a private
repository. Without them, or with others, it answers 401 with a `WWW-Authenticate` challenge.

usage: git_http_server.py PROJECT_ROOT USER PASSWORD
Prints `port N` once listening on 127.0.0.1; each request's method, path and whether it was
authorised go to stderr (never the credentials).
"""

import base64
import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    root, user, password = sys.argv[1:4]
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            self.serve()

        def do_POST(self):
            self.serve()

        def serve(self):
            authorised = self.headers.get("Authorization") == expected
            sys.stderr.write(f"{self.command} {self.path} authorised={authorised}\n")
            sys.stderr.flush()
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if not authorised:
                message = b"authentication required\n"
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="private repository"')
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(message)))
                self.end_headers()
                self.wfile.write(message)
                return
            path, _, query = self.path.partition("?")
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GIT_PROJECT_ROOT": root,
                "GIT_HTTP_EXPORT_ALL": "1",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "REMOTE_USER": user,
                "REMOTE_ADDR": self.client_address[0],
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "GATEWAY_INTERFACE": "CGI/1.1",
                "SERVER_PROTOCOL": "HTTP/1.1",
            }
            for name in ("Content-Encoding", "Git-Protocol"):
                if self.headers.get(name):
                    env["HTTP_" + name.upper().replace("-", "_")] = self.headers[name]
            result = subprocess.run(
                ["git", "http-backend"], input=body, env=env, capture_output=True
            )
            head, _, content = result.stdout.partition(b"\r\n\r\n")
            if not _:
                head, _, content = result.stdout.partition(b"\n\n")
            status = 200
            headers = []
            for line in head.decode("latin-1").splitlines():
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.split()[0])
                elif name:
                    headers.append((name, value.strip()))
            self.send_response(status)
            for name, value in headers:
                if name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"port {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
