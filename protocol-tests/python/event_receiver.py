"""An HTTP server that receives ferry's event hooks: Python's http.server on 127.0.0.1.

Prints "READY <port>" on stdout once it listens, then answers each POST and appends it to FILE as
one JSON line: the path, the headers the tests check and the body as received (text). The first
--fail-first requests are answered 500 and not recorded, so retries can be seen. Stops when its
standard input closes or when killed.

    event_receiver.py --out FILE [--fail-first N]
"""

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--fail-first", type=int, default=0)
    args = parser.parse_args()
    state = {"failures_left": args.fail_first, "failed": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            with lock:
                if state["failures_left"] > 0:
                    state["failures_left"] -= 1
                    state["failed"] += 1
                    self.send_response(500)
                    self.end_headers()
                    return
                record = {
                    "path": self.path,
                    "content_type": self.headers.get("Content-Type"),
                    "event": self.headers.get("X-Ferry-Event"),
                    "signature": self.headers.get("X-Ferry-Signature-256"),
                    "body": body.decode("utf-8"),
                    "failed_before": state["failed"],
                }
                with open(args.out, "a", encoding="utf-8") as out:
                    out.write(json.dumps(record) + "\n")
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"READY {server.server_address[1]}", flush=True)
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
