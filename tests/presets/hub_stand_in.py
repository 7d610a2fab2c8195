"""A local stand-in for the Hugging Face Hub's upload API, on a loopback port.

It answers the calls that `create_repo` and `upload_folder` make (create the repo, check
the model card's YAML, ask how to upload each file, commit), with the Hub's JSON shapes,
and keeps each commit's files in a folder: the real client code runs end to end and no
request leaves the machine. Files are asked for as "regular" (inline, base64), the
Hub's answer for small files, so no LFS or Xet storage is involved.
"""

import base64
import hashlib
import http.server
import json
import os
import threading


class HubStandIn:
    """`with HubStandIn(folder) as hub:` serves at `hub.endpoint`; commits land in
    `folder/<repo>/<commit>/` and `hub.requests` lists what was asked, in order."""

    def __init__(self, folder, token="hf_stand_in_token"):
        self.folder = os.fspath(folder)
        self.token = token
        self.requests = []
        self.cards, self.card_metadata = [], []
        self.repos = {}  # repo -> {"private": bool, "commits": [oid, ...]}

    def __enter__(self):
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                stand_in.requests.append(("POST", self.path))
                if self.headers.get("Authorization") != f"Bearer {stand_in.token}":
                    return self._reply(
                        401, {"error": "Invalid credentials in Authorization header"}
                    )
                path = self.path.split("?", 1)[0]
                if path == "/api/repos/create":
                    return self._reply(200, stand_in.create(json.loads(body)))
                if path == "/api/validate-yaml":
                    errors = stand_in.validate_card(json.loads(body)["content"])
                    return self._reply(400 if errors else 200, {"errors": errors, "warnings": []})
                parts = path.removeprefix("/api/models/").split("/")
                repo, action = "/".join(parts[:2]), parts[2] if len(parts) > 2 else ""
                if repo not in stand_in.repos:
                    return self._reply(404, {"error": "Repository not found"}, not_found=True)
                if action == "preupload":
                    files = json.loads(body)["files"]
                    return self._reply(
                        200,
                        {
                            "files": [
                                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                for f in files
                            ]
                        },
                    )
                if action == "commit":
                    return self._reply(200, stand_in.commit(repo, body))
                return self._reply(404, {"error": f"no such endpoint {path}"})

            def _reply(self, status, payload, not_found=False):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if not_found:
                    self.send_header("X-Error-Code", "RepoNotFound")
                self.end_headers()
                self.wfile.write(data)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    def create(self, payload):
        repo = f"{payload['organization']}/{payload['name']}"
        self.repos.setdefault(
            repo, {"private": payload.get("visibility") == "private", "commits": []}
        )
        return {"url": f"{self.endpoint}/{repo}", "name": repo}

    def validate_card(self, content):
        """The Hub's check of README.md: its front matter must be a YAML mapping."""
        import yaml  # a dependency of huggingface_hub

        self.cards.append(content)
        if not content.startswith("---\n"):
            return []
        try:
            front = yaml.safe_load(content.split("---\n", 2)[1])
        except yaml.YAMLError as error:
            return [{"message": f"invalid YAML: {error}"}]
        if not isinstance(front, dict):
            return [{"message": "the metadata is not a mapping"}]
        self.card_metadata.append(front)
        return []

    def commit(self, repo, body):
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        header = next(line["value"] for line in lines if line["key"] == "header")
        oid = hashlib.sha1(body).hexdigest()
        target = os.path.join(self.folder, repo, oid)
        os.makedirs(target, exist_ok=True)
        for line in lines:
            if line["key"] == "file":
                value = line["value"]
                with open(os.path.join(target, value["path"]), "wb") as file:
                    file.write(base64.b64decode(value["content"]))
        self.repos[repo]["commits"].append(oid)
        self.repos[repo]["summary"] = header["summary"]
        return {"commitOid": oid, "commitUrl": f"{self.endpoint}/{repo}/commit/{oid}"}
