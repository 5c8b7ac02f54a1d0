"""A real webhook receiver on 127.0.0.1 for the tests, built the way integrators are told to build one.

It serves each webhook on a path of its own (``receiver.url("a")``), verifies every request with the
independent ``standardwebhooks`` package against the secrets registered for that path (which also
refuses timestamps more than 5 minutes old or ahead), processes each ``webhook-id`` once and answers a
repeat with 200 without processing it again. Everything is recorded.

It can be told to answer the next n requests with an error or a redirect (``fail_next``) or to hang on
them (``hang_next``: it processes the request, then keeps the connection waiting, like a receiver that is
slow to answer), until ``release()`` or the given time. It counts every connection it accepts
(``connections``), so a test can show that nothing connected at all; it listens on any loopback address
(``host``) and, given a certificate (``tls_files``), speaks HTTPS.

``EgressProxy`` stands in for the way out to the internet: a real HTTP proxy on 127.0.0.1 that records
where each request wanted to go and refuses it, so a test can see which public address a delivery was
aimed at without reaching the internet.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


@dataclass(frozen=True)
class Request:
    """One verified request as it arrived."""

    path: str
    msg_id: str
    headers: dict[str, str]
    body: str
    outcome: str  # processed | duplicate | failed | hung

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)


class Receiver:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, tls: tuple[Path, Path] | None = None) -> None:
        self._lock = threading.Lock()
        self.connections = 0  # every connection accepted, verified or not
        self._secrets: dict[str, list[str]] = {}
        self.requests: list[Request] = []  # every verified request, in order of arrival
        self.rejected: list[tuple[str, str]] = []  # (path, why) of requests that failed verification
        self._processed: dict[str, list[dict[str, Any]]] = {}  # path -> payloads processed, once per id
        self._seen: dict[str, set[str]] = {}
        self._fail: list[int] = []
        self._fail_path: str | None = None
        self._location: str | None = None
        self._hang = 0
        self._hang_seconds = 0.0
        self._hang_path: str | None = None
        self.hanging = threading.Event()  # set when a request starts hanging
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                receiver._handle(self)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        class Server(ThreadingHTTPServer):
            def verify_request(self, request: Any, client_address: Any) -> bool:
                with receiver._lock:
                    receiver.connections += 1
                return True

        self._server = Server((host, port), Handler)
        self._server.daemon_threads = True
        self.host = host
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # --- control -------------------------------------------------------------------------------------

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, path: str = "hook", *, host: str | None = None) -> str:
        """This receiver's address for ``path``; ``host`` names it another way (a name a test resolves)."""
        return f"{self.scheme}://{host or self.host}:{self.port}/{path}"

    def expect(self, path: str, *secrets: str) -> None:
        """Accept requests on ``path`` signed with any of ``secrets`` (replacing those registered before)."""
        with self._lock:
            self._secrets[path] = list(secrets)

    def fail_next(self, count: int, status: int = 500, *, path: str | None = None, location: str | None = None) -> None:
        """Answer the next ``count`` verified requests (on ``path``, or on any) with ``status`` (and a
        ``Location`` header: a redirect); ``count`` 0 ends a run of failures."""
        with self._lock:
            self._fail, self._fail_path, self._location = [status] * count, path, location

    def hang_next(self, count: int = 1, seconds: float = 60.0, *, path: str | None = None) -> None:
        """Process the next ``count`` new requests (on ``path``, or on any), then keep each waiting for
        ``seconds`` or until ``release()``."""
        with self._lock:
            self._hang, self._hang_seconds, self._hang_path = count, seconds, path
            self._release.clear()
            self.hanging.clear()

    def release(self) -> None:
        self._release.set()

    # --- what arrived --------------------------------------------------------------------------------

    def events(self, path: str = "hook") -> list[dict[str, Any]]:
        """Payloads processed on ``path``, each ``webhook-id`` once, in the order they were processed."""
        with self._lock:
            return list(self._processed.get(path, []))

    def ids(self, path: str = "hook") -> list[str]:
        return [event["id"] for event in self.events(path)]

    def arrivals(self, path: str = "hook") -> list[str]:
        """Every verified request's ``webhook-id`` on ``path``, repeats included."""
        with self._lock:
            return [r.msg_id for r in self.requests if r.path == path]

    def duplicates(self, path: str = "hook") -> list[str]:
        with self._lock:
            return [r.msg_id for r in self.requests if r.path == path and r.outcome == "duplicate"]

    # --- serving -------------------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.strip("/")
        body = handler.rfile.read(int(handler.headers.get("content-length") or 0)).decode()
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self._lock:
            secrets = list(self._secrets.get(path, []))
        why = None
        for secret in secrets:
            try:
                Webhook(secret).verify(body, headers)
                break
            except WebhookVerificationError as exc:
                why = str(exc)
        else:
            with self._lock:
                self.rejected.append((path, why or "no secret registered for this path"))
            self._answer(handler, 400)
            return
        msg_id = headers["webhook-id"]
        location = None
        with self._lock:
            if self._fail and self._fail_path in (None, path):
                status, outcome, location = self._fail.pop(0), "failed", self._location
            elif msg_id in self._seen.setdefault(path, set()):
                status, outcome = 200, "duplicate"
            else:
                self._seen[path].add(msg_id)
                self._processed.setdefault(path, []).append(json.loads(body))
                status, outcome = 200, "processed"
                if self._hang and self._hang_path in (None, path):
                    self._hang -= 1
                    outcome = "hung"
            self.requests.append(Request(path, msg_id, headers, body, outcome))
        if outcome == "hung":
            self.hanging.set()
            self._release.wait(self._hang_seconds)
        self._answer(handler, status, location)

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, status: int, location: str | None = None) -> None:
        with contextlib.suppress(OSError):  # the sender may have given up (timeout, killed)
            payload = b'{"ok": true}' if status < 300 else b'{"error": "try again later"}'
            handler.send_response(status)
            if location:
                handler.send_header("location", location)
            handler.send_header("content-type", "application/json")
            handler.send_header("content-length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)


class EgressProxy:
    """An HTTP proxy on 127.0.0.1 that records each request's target (``CONNECT host:port`` for HTTPS,
    the absolute URL for HTTP) and refuses it with 403: where a delivery would have gone, with nothing
    leaving the machine."""

    def __init__(self) -> None:
        self.targets: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _refuse(self) -> None:
                proxy.targets.append(self.path)
                self.send_response(403)
                self.send_header("content-length", "0")
                self.end_headers()

            do_CONNECT = do_POST = do_GET = _refuse  # noqa: N815 (http.server's names)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> EgressProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"


def tls_files(directory: Path, name: str) -> tuple[Path, Path, Path]:
    """A certificate for ``name`` signed by a CA made here: (certificate, key, CA certificate), as files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Minyi test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / f"{name}.crt", directory / f"{name}.key", directory / f"{name}-ca.crt"
    paths[0].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    paths[2].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return paths
