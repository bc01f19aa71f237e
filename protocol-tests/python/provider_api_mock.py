"""A git host's webhook API for one repository, replaying the wire format each host documents:
GitHub (REST `repos/{owner}/{repo}/hooks`), Gitea/Forgejo (`/api/v1/repos/{owner}/{repo}/hooks`),
GitLab (`/api/v4/projects/{id}/hooks`) and Bitbucket Cloud (`/2.0/repositories/{ws}/{repo}/hooks`).
The responses are the documented examples with the request's values filled in; the repository
starts with one unrelated hook.

usage: provider_api_mock.py PROVIDER TOKEN HOOKS_PATH LOG_FILE [MOVED_PREFIX [TO_ORIGIN]]
Only HOOKS_PATH (the exact raw path, query aside) exists; a request without the provider's
token header is answered 401 as the host does. Every request is appended to LOG_FILE as one JSON
line: method, path (with the query), headers, body (parsed JSON or null). Prints `port N`.
With MOVED_PREFIX, a request whose path starts with it is answered `301 Moved Permanently`
(RFC 9110 section 15.4.2) to the same path without the prefix, on TO_ORIGIN
(`http://HOST:PORT`) when given, else on this server: an API that moved.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NOW = "2019-06-03T00:57:16Z"


def auth_ok(provider, headers, token):
    if provider == "github":
        return headers.get("Authorization") == f"Bearer {token}"
    if provider == "gitea":
        return headers.get("Authorization") == f"token {token}"
    if provider == "gitlab":
        return headers.get("PRIVATE-TOKEN") == token
    if provider == "bitbucket":
        return headers.get("Authorization") == f"Bearer {token}"
    raise SystemExit(f"unknown provider {provider}")


UNAUTHORIZED = {
    "github": {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"},
    "gitea": {"message": "token is required", "url": "https://gitea.example.com/api/swagger"},
    "gitlab": {"message": "401 Unauthorized"},
    "bitbucket": {"type": "error", "error": {"message": "Access token expired."}},
}


def github_hook(hook_id, events, active, config):
    shown = {k: v for k, v in config.items() if k != "secret"}
    if "secret" in config:
        shown["secret"] = "********"
    base = f"https://api.github.com/repos/octocat/Hello-World/hooks/{hook_id}"
    return {
        "type": "Repository",
        "id": hook_id,
        "name": "web",
        "active": active,
        "events": events,
        "config": shown,
        "updated_at": NOW,
        "created_at": NOW,
        "url": base,
        "test_url": base + "/test",
        "ping_url": base + "/pings",
        "deliveries_url": base + "/deliveries",
        "last_response": {"code": None, "status": "unused", "message": None},
    }


def gitea_hook(hook_id, events, active, config, branch_filter="*"):
    return {
        "id": hook_id,
        "type": "gitea",
        "branch_filter": branch_filter,
        "config": {k: v for k, v in config.items() if k != "secret"},
        "events": events,
        "authorization_header": "",
        "active": active,
        "updated_at": NOW,
        "created_at": NOW,
    }


def gitlab_hook(hook_id, body):
    hook = {
        "id": hook_id,
        "url": body["url"],
        "name": body.get("name", ""),
        "description": body.get("description", ""),
        "project_id": 3,
        "push_events": body.get("push_events", True),
        "push_events_branch_filter": "",
        "issues_events": body.get("issues_events", False),
        "confidential_issues_events": False,
        "merge_requests_events": body.get("merge_requests_events", False),
        "tag_push_events": body.get("tag_push_events", False),
        "note_events": False,
        "confidential_note_events": False,
        "job_events": False,
        "pipeline_events": False,
        "wiki_page_events": False,
        "deployment_events": False,
        "releases_events": False,
        "enable_ssl_verification": body.get("enable_ssl_verification", True),
        "repository_update_events": False,
        "alert_status": "executable",
        "disabled_until": None,
        "url_variables": [],
        "created_at": "2012-10-12T17:04:47Z",
        "resource_access_token_events": False,
        "custom_webhook_template": "",
    }
    return hook


def bitbucket_hook(uuid, body):
    return {
        "uuid": uuid,
        "url": body["url"],
        "description": body.get("description", ""),
        "subject_type": "repository",
        "subject": {"type": "repository", "full_name": "team/site", "name": "site"},
        "active": body.get("active", True),
        "created_at": "2024-05-02T10:21:04.146397+00:00",
        "events": body.get("events", []),
        "secret_set": bool(body.get("secret")),
    }


def main():
    provider, token, hooks_path, log_file = sys.argv[1:5]
    moved_prefix = sys.argv[5] if len(sys.argv) > 5 else None
    to_origin = sys.argv[6] if len(sys.argv) > 6 else ""
    lock = threading.Lock()
    unrelated = "https://ci.example.com/notify"
    hooks = {
        "github": [github_hook(1, ["pull_request"], True, {"url": unrelated, "content_type": "json", "insecure_ssl": "0"})],
        "gitea": [gitea_hook(1, ["issues"], True, {"url": unrelated, "content_type": "json"})],
        "gitlab": [gitlab_hook(1, {"url": unrelated, "push_events": False, "issues_events": True})],
        "bitbucket": [bitbucket_hook("{0c9d6b2e-6f2a-4a5e-9c1d-8a7b6c5d4e3f}", {"url": unrelated, "events": ["issue:created"]})],
    }[provider]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self, status, value):
            data = json.dumps(value).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def handle_request(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = "<not JSON>"
            with lock:
                with open(log_file, "a") as log:
                    log.write(json.dumps({
                        "method": self.command,
                        "path": self.path,
                        "headers": {k: v for k, v in self.headers.items()},
                        "body": body,
                    }) + "\n")
            if moved_prefix and self.path.startswith(moved_prefix):
                self.send_response(301)
                self.send_header("Location", to_origin + self.path[len(moved_prefix):])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if not auth_ok(provider, self.headers, token):
                return self.answer(401, UNAUTHORIZED[provider])
            path = self.path.partition("?")[0]
            if path != hooks_path:
                return self.answer(404, {"message": "Not Found"})
            if self.command == "GET":
                with lock:
                    listed = list(hooks)
                if provider == "bitbucket":
                    return self.answer(200, {"pagelen": 10, "values": listed, "page": 1, "size": len(listed)})
                return self.answer(200, listed)
            if self.command != "POST" or not isinstance(body, dict):
                return self.answer(422, {"message": "Validation Failed"})
            with lock:
                new_id = len(hooks) + 1
                if provider == "github":
                    config = body.get("config") or {}
                    if body.get("name") != "web" or "url" not in config:
                        return self.answer(422, {"message": "Validation Failed"})
                    hook = github_hook(new_id, body.get("events", ["push"]), body.get("active", True), config)
                elif provider == "gitea":
                    config = body.get("config") or {}
                    if body.get("type") != "gitea" or "url" not in config or "content_type" not in config:
                        return self.answer(422, {"message": "Validation Failed"})
                    hook = gitea_hook(new_id, body.get("events", []), body.get("active", False), config,
                                      body.get("branch_filter", "*"))
                elif provider == "gitlab":
                    if "url" not in body:
                        return self.answer(400, {"error": "url is missing"})
                    hook = gitlab_hook(new_id, body)
                else:
                    if "url" not in body or not body.get("events"):
                        return self.answer(400, {"type": "error", "error": {"message": "Bad request"}})
                    hook = bitbucket_hook("{5d7e3f1a-2b4c-4d6e-8f0a-1b2c3d4e5f6a}", body)
                hooks.append(hook)
            return self.answer(201, hook)

        def do_GET(self):
            self.handle_request()

        def do_POST(self):
            self.handle_request()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"port {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
