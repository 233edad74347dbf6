"""A real OTLP/HTTP logs receiver for tests: an HTTP/1.1 server in a thread that parses every
request body with the official protobuf classes (opentelemetry-proto), and answers as told."""

import gzip
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest


@dataclass
class Reply:
    """What the receiver answers to one request."""

    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Received:
    """One request as it came: its path, headers, size on the wire, and parsed body."""

    path: str
    headers: dict[str, str]
    wire_bytes: int
    request: ExportLogsServiceRequest
    status: int  # what it was answered


class Receiver:
    """Listens on 127.0.0.1:``port`` while started; ``replies`` are used up in order, then
    every request gets 200 ``{}``. A body that does not parse as an ExportLogsServiceRequest
    is answered 400 and kept in ``bad``: a test checks that ``bad`` is empty. A body cut short
    by its client's death (fewer bytes than its Content-Length, then the end of the connection)
    was never a request: it is neither received nor bad."""

    def __init__(self, delay: float = 0.0, tls: tuple[Path, Path] | None = None) -> None:
        """``tls``: (certificate, key) to answer HTTPS with. The port is bound from here on
        and refuses connections until ``start`` listens: no other socket can take it meanwhile
        (one only chosen could be, even by the sink's own attempts, as their local port)."""
        self.tls = tls
        self.delay = delay  # seconds before answering each request (a slow receiver)
        self.replies: deque[Reply] = deque()
        self.received: list[Received] = []
        self.bad: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.arrivals: list[float] = []  # monotonic time of each request
        self._lock = threading.Lock()
        self._server = self._make_server()
        self.port: int = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    def _make_server(self) -> ThreadingHTTPServer:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = 1 << 16  # an answer in one write (flushed after each request)

            def setup(self) -> None:
                super().setup()
                # As collectors do (Go sets it by default): no 40 ms delayed-ACK stalls.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                receiver._handle(self)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client killed mid-request (the SIGKILL test): not the test's failure

        server = Server(("127.0.0.1", 0), Handler, bind_and_activate=False)
        server.daemon_threads = True
        server.server_bind()
        return server

    def start(self) -> None:
        server = self._server
        server.server_activate()  # listens
        if self.tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*self.tls)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self._thread = threading.Thread(target=server.serve_forever, name="otlp-receiver")
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self.arrivals.append(time.monotonic())
        try:
            length = int(handler.headers.get("Content-Length", "0"))
            raw = handler.rfile.read(length)
            if len(raw) < length:
                return  # the client went away mid-body (SIGKILLed): no request, nothing to answer
            body = raw
            if handler.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(raw)
            if self.delay:
                time.sleep(self.delay)
            with self._lock:
                reply = self.replies.popleft() if self.replies else Reply()
            try:
                request = json_format.Parse(body, ExportLogsServiceRequest())
            except json_format.ParseError as error:
                with self._lock:
                    self.bad.append(f"{error}: {body[:200]!r}")
                reply = Reply(400, b'{"message": "does not parse"}')
            else:
                with self._lock:
                    self.received.append(
                        Received(
                            handler.path, dict(handler.headers), len(raw), request, reply.status
                        )
                    )
            handler.send_response(reply.status)
            for key, value in reply.headers.items():
                handler.send_header(key, value)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(reply.body)))
            handler.end_headers()
            handler.wfile.write(reply.body)
        finally:
            with self._lock:
                self.in_flight -= 1

    def bodies(self, delivered_only: bool = True) -> list[str]:
        """Every log record's body, in the order received (of requests answered 2xx)."""
        with self._lock:
            received = list(self.received)
        return [
            log.body.string_value
            for one in received
            if not delivered_only or 200 <= one.status < 300
            for resource in one.request.resource_logs
            for scope in resource.scope_logs
            for log in scope.log_records
        ]
