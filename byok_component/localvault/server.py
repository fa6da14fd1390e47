"""The local vault's HTTPS server: 127.0.0.1 only, TLS only, challenge auth, faults, then VaultService.

``LocalVault`` runs a ``ThreadingHTTPServer`` in a background thread. TLS is negotiated in each
connection's own thread, so a client speaking plain HTTP only loses its own connection (it gets no
answer, the handshake fails). ``stop()`` closes live keep-alive connections and joins every thread.

Authentication follows Key Vault's challenge protocol
(https://learn.microsoft.com/azure/key-vault/general/authentication-requests-and-responses): without a valid bearer token
the answer is 401 with ``WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/
<tenant>", resource="https://vault.azure.net"`` (``https://managedhsm.azure.net`` for sku managedhsm).
Nothing here logs headers, bodies, tokens or key material: the access log (logger
``byok_component.localvault``, DEBUG) holds method, path and status only.

Hostile local clients cannot exhaust it (``Limits``): at most ``max_connections`` are served at once (beyond it
the least recently idle keep-alive connection is closed, as nginx does, else the newcomer gets a 503 with
Retry-After from a small pool of refusal threads, else it is closed); the request line and headers must arrive
within ``header_seconds`` and the body within ``body_seconds`` whatever the pace of the bytes (slowloris); the
accept loop backs off when the process is out of file descriptors instead of spinning; the request log keeps the
last ``request_log_size`` entries with paths cut short, and counters for the rest.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import socket
import ssl
import threading
import time
import uuid
from collections import OrderedDict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Mapping
from urllib.parse import parse_qs, urlsplit

from .behaviour import RBAC_MESSAGE, Behaviour, RbacWindow
from .faults import FaultConfig, FaultState
from .policy import check_sku
from .service import DropConnection, Request, Response, VaultService, route_of
from .store import KeyStore
from .tls import TlsFiles, ensure_tls_files, server_context
from .tokens import READONLY_TOKEN_FILE, TOKEN_FILE, Tokens, load_or_create_tokens

__all__ = ["LocalVault", "Limits", "TENANT_ID", "DB_FILE"]

log = logging.getLogger("byok_component.localvault")

TENANT_ID = "00000000-0000-0000-0000-00000000b70c"  # a fixed, obviously fake tenant
DB_FILE = "vault.sqlite3"
MAX_BODY = 1024 * 1024
MAX_HEAD_BYTES = 256 * 1024  # request line + headers (the stdlib also caps each line at 64 KiB, 100 headers)
LOGGED_PATH_CHARS = 256


@dataclass(frozen=True, slots=True)
class Limits:
    """What one local vault grants its clients (defaults suit tests and demos; tests of the limits shrink them)."""

    max_connections: int = 64      # served at once, each on its own thread
    max_refusals: int = 8          # threads answering 503 beyond max_connections; past both a connection is closed
    refusal_seconds: float = 0.5   # a refused client's request head, before its 503 (short: attackers fill this pool too)
    header_seconds: float = 10.0   # the whole request line and headers, however slowly the bytes come
    body_seconds: float = 30.0     # the whole body (1 MiB at most)
    idle_seconds: float = 60.0     # a keep-alive connection waiting for its next request
    request_log_size: int = 10_000  # (method, path) entries kept; request_count counts them all


_HANDSHAKE_TIMEOUT = 10.0
_WRITE_TIMEOUT = 30.0
_OUT_OF_FDS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_RESOURCE = {"premium": "https://vault.azure.net", "standard": "https://vault.azure.net",
             "managedhsm": "https://managedhsm.azure.net"}


class _DeadlineReader(io.RawIOBase):
    """The socket as the handler's rfile, with a deadline for a whole phase (not per recv: 1 byte every 20 s
    beats any per-recv timeout) and a byte budget for the request head."""

    def __init__(self, sock: ssl.SSLSocket, idle_seconds: float) -> None:
        self._sock = sock
        self._idle_seconds = idle_seconds  # per recv, when no phase deadline is set
        self.deadline: float | None = None
        self.budget: int | None = None  # bytes still allowed in this phase (None: unlimited)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the client was too slow")
            self._sock.settimeout(left)
        else:
            self._sock.settimeout(self._idle_seconds)
        if self.budget is not None and self.budget <= 0:
            raise ConnectionAbortedError("the request head is too large")
        view = memoryview(buffer)
        if self.budget is not None:
            view = view[:self.budget]
        count = self._sock.recv_into(view)
        if self.budget is not None:
            self.budget -= count
        return count


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True

    def __init__(self, port: int, vault: "LocalVault", context: ssl.SSLContext, service: VaultService | None,
                 tokens: Tokens, faults: FaultState, rbac: RbacWindow) -> None:
        self.limits = vault.limits
        self.vault = vault
        self.rbac = rbac
        self.context = context
        self.service = service
        self.tokens = tokens
        self.faults = faults
        self.ready = threading.Event()
        self.closing = threading.Event()
        self._connections: set[ssl.SSLSocket] = set()
        self._idle: "OrderedDict[ssl.SSLSocket, None]" = OrderedDict()  # oldest idle first
        self._reclaimed: set[ssl.SSLSocket] = set()  # closed to make room; their threads are ending
        self._slots_lock = threading.Lock()
        self._serving = self._refusing = self._reclaiming = 0
        self._workers: set[threading.Thread] = set()
        self._accept_delay = 0.0
        self.stats = {"connections": 0, "refused_503": 0, "closed_at_capacity": 0, "reclaimed_idle": 0,
                      "timeouts": 0, "accept_errors": 0, "peak_connections": 0}
        super().__init__(("127.0.0.1", port), _Handler)

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self.ready.set()  # the socket has listened since __init__; from here connections are accepted
        super().serve_forever(poll_interval)

    # --- accepting ------------------------------------------------------------------------------------------
    def get_request(self) -> tuple[socket.socket, Any]:
        """accept(); out of file descriptors, wait (10 ms doubling to 1 s) instead of spinning on the readable
        listening socket."""
        try:
            accepted = super().get_request()
        except OSError as exc:
            if exc.errno in _OUT_OF_FDS:
                with self._slots_lock:
                    self.stats["accept_errors"] += 1
                self._accept_delay = min(max(self._accept_delay * 2, 0.01), 1.0)
                if self._accept_delay >= 1.0:
                    log.warning("out of file descriptors (%s); accepting again in %.0f s", errno.errorcode.get(
                        exc.errno, exc.errno), self._accept_delay)
                self.closing.wait(self._accept_delay)
            raise
        self._accept_delay = 0.0
        return accepted

    def process_request(self, request: Any, client_address: Any) -> None:
        """A thread per connection up to max_connections; beyond, reclaim an idle one, else refuse."""
        with self._slots_lock:
            self.stats["connections"] += 1
            if self._serving < self.limits.max_connections or self._reclaim_idle():
                self._serving += 1
                self.stats["peak_connections"] = max(self.stats["peak_connections"], self._serving)
                target = self._serve
            elif self._refusing < self.limits.max_refusals:
                self._refusing += 1
                self.stats["refused_503"] += 1
                target = self._refuse
            else:
                self.stats["closed_at_capacity"] += 1
                target = None
        if target is None:
            self.shutdown_request(request)
            return
        worker = threading.Thread(target=target, args=(request, client_address), daemon=True)
        with self._slots_lock:
            self._workers.add(worker)
        worker.start()

    def _reclaim_idle(self) -> bool:
        """Close the least recently idle keep-alive connection (its thread ends at once). Under _slots_lock."""
        if not self._idle or self._reclaiming >= self.limits.max_refusals:
            return False
        connection, _ = self._idle.popitem(last=False)
        self._reclaimed.add(connection)
        self._reclaiming += 1
        self.stats["reclaimed_idle"] += 1
        try:
            socket.socket.shutdown(connection, socket.SHUT_RDWR)
        except OSError:
            pass
        return True

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - one connection's failure ends that connection only
            self.handle_error(request, client_address)
        finally:
            self._release(request, refused=False)

    def _refuse(self, request: Any, client_address: Any) -> None:
        """503 + Retry-After on a TLS connection beyond the cap: a clear answer an SDK retries."""
        try:
            request.settimeout(2.0)
            connection = self.context.wrap_socket(request, server_side=True)
            try:
                head, deadline = b"", time.monotonic() + self.limits.refusal_seconds
                while b"\r\n\r\n" not in head and len(head) < 65536 and time.monotonic() < deadline:
                    connection.settimeout(max(0.01, deadline - time.monotonic()))
                    chunk = connection.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                body = json.dumps(_error(503, "ServiceUnavailable", f"the local vault is serving its maximum of "
                                         f"{self.limits.max_connections} connections; retry later").body).encode()
                connection.sendall(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n"
                                   b"Content-Type: application/json; charset=utf-8\r\n"
                                   b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            finally:
                connection.close()
        except (ssl.SSLError, OSError):
            pass
        finally:
            self._release(request, refused=True)

    def _release(self, request: Any, *, refused: bool) -> None:
        """A worker's end: close its socket, free its slot (serving or refusing) and forget its thread."""
        self.shutdown_request(request)
        with self._slots_lock:
            if refused:
                self._refusing -= 1
            else:
                self._serving -= 1
            self._workers.discard(threading.current_thread())

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(_HANDSHAKE_TIMEOUT)
        try:
            connection = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # not TLS (plain HTTP, a port scan) or a broken handshake: drop it silently
        with self._slots_lock:
            if self.closing.is_set():
                connection.close()
                return
            self._connections.add(connection)
        try:
            connection.settimeout(self.limits.idle_seconds)
            self.RequestHandlerClass(connection, client_address, self)
        finally:
            with self._slots_lock:
                self._connections.discard(connection)
                self._idle.pop(connection, None)
                if connection in self._reclaimed:
                    self._reclaimed.discard(connection)
                    self._reclaiming -= 1
            connection.close()

    def set_idle(self, connection: ssl.SSLSocket, idle: bool) -> bool:
        """Mark a connection idle (waiting for its next request) or busy; False if it was reclaimed meanwhile."""
        with self._slots_lock:
            if idle:
                self._idle[connection] = None
                return True
            if connection in self._idle:
                del self._idle[connection]
                return True
            return False

    def close_connections(self) -> None:
        """Wake every handler blocked on a read so that its thread ends."""
        with self._slots_lock:
            self.closing.set()
            for connection in self._connections:
                try:
                    socket.socket.shutdown(connection, socket.SHUT_RDWR)
                except OSError:
                    pass

    def server_close(self) -> None:
        super().server_close()
        while True:  # join every connection thread (stop() has woken them)
            with self._slots_lock:
                workers = list(self._workers)
            if not workers:
                return
            for worker in workers:
                worker.join()
                with self._slots_lock:
                    self._workers.discard(worker)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection ended with an error", exc_info=False)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Key Vault clients expect
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stalls
    server_version = "byok-local-vault"
    sys_version = ""
    server: _Server

    _log_path = "-"
    _served = 0

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # replaced by a reader with whole-phase deadlines
        self._reader = _DeadlineReader(self.connection, self.server.limits.idle_seconds)
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self) -> None:
        server, reader = self.server, self._reader
        if self._served:  # keep-alive: wait for the next request; reclaimable while waiting
            server.set_idle(self.connection, True)
            reader.deadline, reader.budget = time.monotonic() + server.limits.idle_seconds, None
            try:
                first = self.rfile.peek(1)
            except OSError:  # idle timeout, reclaimed, reset
                first = b""
            if not server.set_idle(self.connection, False) or not first:
                self.close_connection = True
                return
        self._served += 1
        reader.deadline, reader.budget = time.monotonic() + server.limits.header_seconds, MAX_HEAD_BYTES
        super().handle_one_request()  # reads the request line and headers, then calls do_<METHOD>

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if "timed out" in format:
            with self.server._slots_lock:  # noqa: SLF001
                self.server.stats["timeouts"] += 1

    # Never log the request line's query, headers or bodies: only method, path and status.
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.debug("%s %s %s", self.command, self._log_path, code)

    def do_GET(self) -> None:
        self._dispatch()

    do_PUT = do_POST = do_PATCH = do_DELETE = do_GET

    def _dispatch(self) -> None:
        server, vault = self.server, self.server.vault
        parts = urlsplit(self.path)
        path = parts.path
        self._log_path = path[:LOGGED_PATH_CHARS]
        vault._record(self.command, path)
        if server.closing.is_set():
            self.close_connection = True
        if self.headers.get("Transfer-Encoding"):
            return self._send(_error(411, "BadParameter", "send a Content-Length, not a chunked body"), close=True)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return self._send(_error(400, "BadParameter", "Content-Length is not a number"), close=True)
        if not 0 <= length <= MAX_BODY:
            return self._send(_error(413, "BadParameter", f"the request body is over {MAX_BODY} bytes"), close=True)
        self._reader.deadline, self._reader.budget = time.monotonic() + server.limits.body_seconds, None
        try:
            body = self._read_body(length)
        except TimeoutError:
            with server._slots_lock:  # noqa: SLF001
                server.stats["timeouts"] += 1
            return self._send(_error(408, "RequestTimeout", f"the body did not arrive within {server.limits.body_seconds:g} s"),
                              close=True)
        finally:
            self._reader.deadline = None
        if len(body) < length:  # the client went away mid-body
            self.close_connection = True
            return None

        access = server.tokens.access(self.headers.get("Authorization"))
        if access is None:
            message = ("AKV10000: Request is missing a Bearer or PoP token." if "Authorization" not in self.headers
                       else "The bearer token is not valid for this local vault.")
            challenge = f'Bearer authorization="https://login.microsoftonline.com/{TENANT_ID}", ' \
                        f'resource="{_RESOURCE[vault.sku]}"'
            return self._send(_error(401, "Unauthorized", message), {"WWW-Authenticate": challenge})
        route = route_of(self.command, path)
        if access == "readonly" and not route.read_only_ok:
            return self._send(_error(403, "Forbidden", "Caller is not authorized to perform action on resource "
                                     f"(read-only token). Action: '{route.operation}'", "ForbiddenByRbac"))
        if server.rbac.denies():  # behaviour.py: the role assignment has not taken effect yet
            return self._send(_error(403, "Forbidden", f"{RBAC_MESSAGE} Action: '{route.operation}' (local vault: "
                                     "role propagation window)", "ForbiddenByRbac"))
        if server.faults.take_fail_500(self.command, path):
            return self._send(_error(500, "InternalServerError", "fault injection: fail_500"))
        if server.faults.take_fail_429(self.command, path):
            return self._send(_error(429, "Throttled", "Request was not processed because too many requests were "
                                     "received. Reason: VaultRequestTypeLimitReached (fault injection: fail_429)"),
                              {"Retry-After": "1"} if server.faults.config.retry_after else None)
        if route.creates_version:
            retry_after = server.faults.throttle_write()
            if retry_after is not None:
                return self._send(_error(429, "Throttled", "Request was not processed because too many requests "
                                         "were received. Reason: VaultRequestTypeLimitReached"),
                                  {"Retry-After": str(retry_after)} if server.faults.config.retry_after else None)
        assert server.service is not None
        request = Request(self.command, path, {k: v[-1] for k, v in parse_qs(parts.query).items()}, body)
        try:
            response = server.service.handle(request)
        except DropConnection:
            log.debug("%s %s dropped (fault injection)", self.command, path)
            self.close_connection = True
            return None
        except Exception as exc:  # a bug: answer 500, log the type only (messages could quote input)
            log.warning("%s %s failed: %s", self.command, path, type(exc).__name__)
            response = _error(500, "InternalServerError", "the local vault failed to handle this request")
        delay = server.faults.delay_for(self.command, path)
        if delay:
            server.closing.wait(delay)  # stop() cuts a delay short
        return self._send(response)

    def _read_body(self, length: int) -> bytes:
        """Read in chunks: a Content-Length alone allocates nothing."""
        chunks: list[bytes] = []
        left = length
        while left > 0:
            chunk = self.rfile.read(min(left, 65536))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _send(self, response: Response, headers: Mapping[str, str] | None = None, *, close: bool = False) -> None:
        self.connection.settimeout(_WRITE_TIMEOUT)
        data = b"" if response.body is None else json.dumps(response.body, separators=(",", ":")).encode("utf-8")
        if close:
            self.close_connection = True
        self.send_response(response.status)
        if response.body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache")
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)


def _error(status: int, code: str, message: str, inner: str | None = None) -> Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if inner:
        error["innererror"] = {"code": inner}
    return Response(status, {"error": error})


class LocalVault:
    """A Key Vault-compatible HTTPS server on 127.0.0.1 that enforces the BYOK spec. A test double:
    its keys sit unprotected in ``data_dir``; never put real key material in it.
    """

    def __init__(self, data_dir: str | Path, *, port: int = 0, sku: str = "premium",
                 faults: FaultConfig | None = None, behaviour: Behaviour | None = None,
                 limits: Limits | None = None) -> None:
        # Absolute: the paths in info() are exported and used from other directories (byok local-vault env).
        self.data_dir = Path(data_dir).absolute()
        self.limits = limits or Limits()
        self.sku = check_sku(sku)
        self.faults = faults or FaultConfig()
        self.behaviour = behaviour or Behaviour()
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._store: KeyStore | None = None
        self._stats_lock = threading.Lock()
        self._request_count = 0
        self._requests: deque[tuple[str, str]] = deque(maxlen=self.limits.request_log_size)

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> "LocalVault":
        """Prepare the data dir, bind 127.0.0.1 and serve; return once connections are accepted."""
        if self._server is not None:
            raise RuntimeError("the local vault is already running")
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        tls: TlsFiles = ensure_tls_files(self.data_dir)
        tokens = load_or_create_tokens(self.data_dir)
        store = KeyStore(self.data_dir / DB_FILE)
        try:
            server = _Server(self._port, self, server_context(tls), None, tokens, FaultState(self.faults),
                             RbacWindow(self.behaviour.rbac_window_seconds, self.behaviour.rbac_window_requests))
        except BaseException:
            store.close()
            raise
        self._port = server.server_address[1]  # a restart of this object keeps its port (and its kids)
        server.service = VaultService(store, sku=self.sku, vault_url=self.vault_url,
                                      vault_urls=(self.vault_url, f"https://localhost:{self._port}"),
                                      faults=server.faults, behaviour=self.behaviour)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                  name=f"local-vault-{self._port}", daemon=True)
        self._server, self._thread, self._store = server, thread, store
        thread.start()
        server.ready.wait()
        log.debug("local vault serving %s (sku %s)", self.vault_url, self.sku)
        return self

    def stop(self) -> None:
        """Stop serving, close live connections, join every thread, close the store. Idempotent."""
        server, thread, store = self._server, self._thread, self._store
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()  # joins the request threads
        if thread is not None:
            thread.join()
        if store is not None:
            store.close()
        self._server = self._thread = self._store = None

    def __enter__(self) -> "LocalVault":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # --- what clients need -----------------------------------------------------------------------
    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the local vault has no port until it is started")
        return self._port

    @property
    def vault_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_cert(self) -> str:
        return str(self.data_dir / "ca.pem")

    @property
    def token_file(self) -> str:
        return str(self.data_dir / TOKEN_FILE)

    @property
    def readonly_token_file(self) -> str:
        return str(self.data_dir / READONLY_TOKEN_FILE)

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def faults_injected(self) -> dict[str, int]:
        """Faults injected since the last start, by kind (see faults.py); all zero when stopped."""
        server = self._server
        return server.faults.injected() if server is not None else FaultState(self.faults).injected()

    def assign_role(self) -> None:
        """The named event of behaviour.py: a role was just assigned, so the RBAC propagation window opens again."""
        if self._server is None:
            raise RuntimeError("the local vault is not running")
        self._server.rbac.start()

    @property
    def harsh_answers(self) -> dict[str, int]:
        """How often behaviour.py's harsh sides answered since the last start, by kind: ``forbidden_by_rbac``
        (the propagation window), ``purge_protected``, ``being_deleted``/``being_recovered`` (409s while in
        flight), ``not_yet_visible`` (404s while in flight). All zero when stopped."""
        server = self._server
        if server is None or server.service is None:
            return dict.fromkeys(("forbidden_by_rbac", "purge_protected", "being_deleted", "being_recovered",
                                  "not_yet_visible"), 0)
        return {"forbidden_by_rbac": server.rbac.denied, **server.service.harsh_answers()}

    def info(self) -> dict[str, str]:
        """The one JSON line ``byok local-vault serve`` prints."""
        return {"vault_url": self.vault_url, "ca_cert": self.ca_cert, "token_file": self.token_file}

    # --- counters for tests and benchmarks ---------------------------------------------------------
    def _record(self, method: str, path: str) -> None:
        """Count every request; keep the last ``limits.request_log_size`` with their paths cut short (bounded memory)."""
        if len(path) > LOGGED_PATH_CHARS:
            path = path[:LOGGED_PATH_CHARS - 3] + "..."
        with self._stats_lock:
            self._request_count += 1
            self._requests.append((method[:16], path))

    @property
    def request_count(self) -> int:
        """HTTP requests handled since construction (the SDK's bodiless challenge requests included)."""
        with self._stats_lock:
            return self._request_count

    @property
    def requests(self) -> list[tuple[str, str]]:
        """The last ``limits.request_log_size`` ``(method, path)`` handled, oldest first (path without the query string)."""
        with self._stats_lock:
            return list(self._requests)

    def requests_since(self, count: int) -> list[tuple[str, str]]:
        """The ``(method, path)`` handled after ``request_count`` was ``count``; an error if the log dropped some."""
        with self._stats_lock:
            wanted = self._request_count - count
            if wanted > len(self._requests):
                raise RuntimeError(f"the request log keeps the last {self.limits.request_log_size} requests; "
                                   f"{wanted} were asked for")
            return list(self._requests)[len(self._requests) - wanted:] if wanted > 0 else []

    @property
    def connection_stats(self) -> dict[str, int]:
        """Connections accepted, refused (503 / closed at capacity), idle ones reclaimed, slow clients timed out,
        accept() failures for want of file descriptors, and the peak served at once since the last start; plus
        the connections being served and being refused now."""
        server = self._server
        if server is None:
            return {}
        with server._slots_lock:  # noqa: SLF001
            return dict(server.stats, serving=server._serving, refusing=server._refusing)  # noqa: SLF001

    def __repr__(self) -> str:
        state = self.vault_url if self.running else "stopped"
        return f"LocalVault({str(self.data_dir)!r}, sku={self.sku!r}, {state})"
