"""A real HTTP server on loopback that plays a Nightscout site from recorded answers.

/site/api/v1/entries/sgv.json serves tests/fixtures/nightscout_api_entries_sgv.json (a recorded
/api/v1/entries/sgv.json answer) with its dates shifted so the newest entry is two minutes old,
and honours count, find[date][$gt|$gte|$lt|$lte] and token like Nightscout does.
/site/api/v1/treatments.json serves tests/fixtures/nightscout_api_treatments.json (AndroidAPS'
treatments as a Nightscout site answers them: created_at with the uploader's offset) shifted the
same way, newest first, honouring count and find[created_at][...] (ISO text). Other paths
misbehave on purpose: slow, 500, redirects, oversized, a slow drip.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import FIXTURES

SITE_TOKEN = "glucast-reader-4f1c2a9e7b3d5c60"


class NightscoutSite:
    def __init__(self):
        recorded = json.loads((FIXTURES / "nightscout_api_entries_sgv.json").read_text())
        shift = int(time.time() * 1000) - 120_000 - max(e["date"] for e in recorded)
        self.entries = []
        for entry in recorded:
            entry = dict(entry, date=entry["date"] + shift)
            stamp = time.gmtime(entry["date"] / 1000)
            entry["dateString"] = entry["sysTime"] = time.strftime("%Y-%m-%dT%H:%M:%S", stamp) + f".{entry['date'] % 1000:03d}Z"
            self.entries.append(entry)
        self.treatments = []
        recorded = json.loads((FIXTURES / "nightscout_api_treatments.json").read_text())
        newest = max(datetime.fromisoformat(t["created_at"]) for t in recorded)
        offset = datetime.now(timezone.utc) - timedelta(minutes=2) - newest
        for treatment in recorded:
            moment = datetime.fromisoformat(treatment["created_at"]) + offset
            shifted = dict(treatment, created_at=moment.isoformat(timespec="milliseconds"))
            shifted["date"] = int(moment.timestamp() * 1000)
            self.treatments.append(shifted)
        self.requests: list[str] = []
        self.redirect_to = "http://169.254.169.254/latest/meta-data/"
        self.require_token = True

    def answer(self, query: dict) -> list:
        selected = sorted(self.entries, key=lambda e: -e["date"])
        for op, test in (("$gt", lambda d, v: d > v), ("$gte", lambda d, v: d >= v),
                         ("$lt", lambda d, v: d < v), ("$lte", lambda d, v: d <= v)):
            key = f"find[date][{op}]"
            if key in query:
                selected = [e for e in selected if test(e["date"], int(query[key][0]))]
        return selected[: int(query.get("count", ["10"])[0])]

    def answer_treatments(self, query: dict) -> list:
        def at(text):
            return datetime.fromisoformat(text.replace("Z", "+00:00"))

        selected = sorted(self.treatments, key=lambda t: at(t["created_at"]), reverse=True)
        for op, test in (("$gt", lambda d, v: d > v), ("$gte", lambda d, v: d >= v),
                         ("$lt", lambda d, v: d < v), ("$lte", lambda d, v: d <= v)):
            key = f"find[created_at][{op}]"
            if key in query:
                selected = [t for t in selected if test(at(t["created_at"]), at(query[key][0]))]
        return selected[: int(query.get("count", ["100"])[0])]


def _handler(site: NightscoutSite):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, status: int, body: bytes, headers: dict | None = None):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            if "Content-Length" not in (headers or {}):
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            site.requests.append(self.path)
            kind = parts.path.split("/")[1]
            if kind == "site":
                if site.require_token and query.get("token") != [SITE_TOKEN]:
                    return self._send(401, b'{"status":401,"message":"Unauthorized","description":"Invalid/Missing"}')
                if parts.path.endswith("/treatments.json"):
                    return self._send(200, json.dumps(site.answer_treatments(query)).encode())
                return self._send(200, json.dumps(site.answer(query)).encode())
            if kind == "slow":
                time.sleep(3)
                return self._send(200, b"[]")
            if kind == "error":
                return self._send(500, b'{"status":500,"message":"MongoError"}')
            if kind == "redirect":
                self.send_response(302)
                self.send_header("Location", site.redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            if kind == "redirect-site":
                self.send_response(301)
                self.send_header("Location", "/site" + parts.path[len("/redirect-site"):] + "?" + parts.query)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            if kind == "huge":  # declared honestly
                return self._send(200, b"[" + b" " * 200_000 + b"]")
            if kind == "huge-undeclared":  # no Content-Length: only streaming can stop it
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    self.wfile.write(b"[")
                    for _ in range(100):
                        self.wfile.write(b" " * 10_000)
                    self.wfile.write(b"]")
                except (BrokenPipeError, ConnectionResetError):
                    pass
                return None
            if kind == "drip":  # a byte every 0.2 s: each read is quick, the whole is not
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "100")
                self.end_headers()
                try:
                    for _ in range(100):
                        self.wfile.write(b" ")
                        self.wfile.flush()
                        time.sleep(0.2)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                return None
            if kind == "html":
                return self._send(200, b"<html>not nightscout</html>", {"Content-Type": "text/html"})
            return self._send(404, b'{"status":404}')

    return Handler


@pytest.fixture
def nightscout_site():
    """(base URL on 127.0.0.1, the site) for one test; the server stops after it."""
    site = NightscoutSite()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(site))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", site
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def allow_loopback(settings):
    """The operator setting, in these tests only: the loopback server may be reached."""
    settings.GLUCAST_NIGHTSCOUT_ALLOW_NETWORKS = ["127.0.0.0/8"]
    settings.GLUCAST_NIGHTSCOUT_PULL_CONNECT_TIMEOUT_S = 1.0
    settings.GLUCAST_NIGHTSCOUT_PULL_READ_TIMEOUT_S = 1.0
    return settings
