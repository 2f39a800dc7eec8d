"""Real HTTP servers for the serve tests: a folder of images on 127.0.0.1 (stands for an internal
service the caption server must not reach) and on 127.0.0.2 (an internal network the operator allowed
with --allow-url-network), each recording the requests it got, with a few hostile answers."""

from __future__ import annotations

import http.server
import threading
import time
import urllib.parse
from pathlib import Path


class _Handler(http.server.SimpleHTTPRequestHandler):
    host: Host

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.host.requests.append((self.path, self.headers.get("Host")))
        parts = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(parts.query)
        if parts.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", query["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif parts.path == "/endless":  # no Content-Length: the cap must hold while reading
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            try:
                for _ in range(64):
                    self.wfile.write(b"\x89PNG\r\n\x1a\n" + b"\x00" * 65536)
            except OSError:
                pass
        elif parts.path == "/slow":
            time.sleep(float(query.get("s", ["5"])[0]))
            self.path = "/x.png"
            super().do_GET()
        elif parts.path == "/page":
            body = b"<!DOCTYPE html><html>internal dashboard</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            super().do_GET()


class Host:
    def __init__(self, address: str, folder: Path):
        self.requests: list[tuple[str, str]] = []
        handler = type("Handler", (_Handler,), {"host": self})
        self.httpd = http.server.ThreadingHTTPServer((address, 0), lambda *a: handler(*a, directory=str(folder)))
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda *a: None  # a client that gave up (the timeout test): no noise
        self.port = self.httpd.server_address[1]
        self.url = f"http://{address}:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class ImageHosts:
    def __init__(self, folder: Path):
        self.folder = folder
        self.internal_host = Host("127.0.0.1", folder)
        self.allowed_host = Host("127.0.0.2", folder)
        self.internal, self.allowed = self.internal_host.url, self.allowed_host.url

    def close(self) -> None:
        self.internal_host.close()
        self.allowed_host.close()
