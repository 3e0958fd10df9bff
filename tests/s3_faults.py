"""A loopback proxy in front of the S3 test server that fails chosen requests.

It forwards requests byte for byte (moto does not check signatures), except that the
first ``failures`` requests matching ``method`` and ``path_contains`` get the given S3
error instead: throttling (503 SlowDown) or a permission error (403 AccessDenied).
"""

from __future__ import annotations

import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

ERRORS = {
    "SlowDown": (503, "Please reduce your request rate."),
    "AccessDenied": (403, "Access Denied"),
}


class FaultyS3Proxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = urlparse(upstream)
        self.rule: tuple[str, str, str, int] | None = None
        self.injected = 0
        self.injected_at: list[float] = []  # when each failure was answered (monotonic)
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                body = self._read_body()
                code = proxy._should_fail(self.command, self.path)
                if code:
                    status, message = ERRORS[code]
                    payload = (
                        f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                        f"<Message>{message}</Message></Error>"
                    ).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                upstream = http.client.HTTPConnection(
                    proxy.upstream.hostname, proxy.upstream.port, timeout=60
                )
                skip = ("host", "transfer-encoding", "content-length")
                headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                headers["Host"] = proxy.upstream.netloc
                headers["Content-Length"] = str(len(body or b""))
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                # A HEAD response has no body but tells the object's size: pass it on.
                length = response.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                upstream.close()

            def _read_body(self) -> bytes | None:
                # The AWS C++ SDK (pyarrow) sends bodies with chunked transfer encoding.
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else None

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def fail(self, method: str, path_contains: str, code: str, failures: int) -> None:
        """Answer the next ``failures`` matching requests with S3 error ``code``."""
        with self._lock:
            self.rule = (method, path_contains, code, failures)
            self.injected = 0

    def _should_fail(self, method: str, path: str) -> str | None:
        with self._lock:
            if self.rule is None:
                return None
            want_method, fragment, code, failures = self.rule
            if method == want_method and fragment in path and self.injected < failures:
                self.injected += 1
                self.injected_at.append(time.monotonic())
                return code
            return None

    def __enter__(self) -> FaultyS3Proxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
