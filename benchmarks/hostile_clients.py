"""``python -m benchmarks.hostile_clients [--quick]``: the local vault under hostile local clients, measured.

Bounded and loopback only: it starts ``byok local-vault serve`` (its own process, so the memory and CPU read
from /proc are the vault's alone), sends at most a few thousand requests, and stops the vault at the end.

- memory (VmRSS) before and after each of three bursts of unauthenticated GETs with 60 KB paths (the reported leak);
- the latency of a legitimate authenticated GET (median) alone, then while N slow clients hold connections
  (each trickles one header byte a second: slowloris) below the connection cap, and what a legitimate request
  gets past the cap (a 503 with Retry-After, and how soon);
- the vault's CPU while it is out of file descriptors (RLIMIT_NOFILE 64 and more connections than that).

Figures, not assertions: a table, then one JSON line (the last line of stdout).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def served(data: Path, nofile: int | None = None) -> Iterator[dict[str, Any]]:
    """``python -m byok_component.localvault`` in its own process; yields its JSON line plus ``pid``."""
    def limit() -> None:
        if nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    process = subprocess.Popen([sys.executable, "-m", "byok_component.localvault", "--data", str(data)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, preexec_fn=limit)
    try:
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())  # printed once the vault accepts connections
        info["pid"] = process.pid
        info["token"] = Path(info["token_file"]).read_text().strip()
        yield info
    finally:
        process.terminate()
        process.wait(30)


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _cpu_seconds(pid: int) -> float:
    parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def _connection(info: dict[str, Any]) -> http.client.HTTPSConnection:
    port = int(info["vault_url"].rsplit(":", 1)[1])
    return http.client.HTTPSConnection("127.0.0.1", port, timeout=60,
                                       context=ssl.create_default_context(cafile=info["ca_cert"]))


def _get(connection: http.client.HTTPSConnection, path: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    connection.request("GET", f"{path}?api-version=7.5", headers=headers)
    response = connection.getresponse()
    response.read()
    return response.status


def _latency_ms(info: dict[str, Any], count: int) -> tuple[float, set[int]]:
    """Median ms of ``count`` authenticated GET /keys, each on a new connection (a new client's view)."""
    times, statuses = [], set()
    for _ in range(count):
        connection = _connection(info)
        t0 = time.perf_counter()
        try:
            statuses.add(_get(connection, "/keys", info["token"]))
        except (OSError, http.client.HTTPException):
            statuses.add(0)
        times.append((time.perf_counter() - t0) * 1000)
        connection.close()
    return statistics.median(times), statuses


class SlowClients:
    """N TLS connections each sending one byte of a request head per second until cut off or stopped."""

    def __init__(self, info: dict[str, Any], count: int) -> None:
        self.info, self.count, self.stop = info, count, threading.Event()
        self.sockets: list[socket.socket] = []
        self.cut_off = 0
        self._thread = threading.Thread(target=self._trickle, daemon=True)

    def __enter__(self) -> "SlowClients":
        port = int(self.info["vault_url"].rsplit(":", 1)[1])
        context = ssl.create_default_context(cafile=self.info["ca_cert"])
        for _ in range(self.count):
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            try:
                self.sockets.append(context.wrap_socket(raw, server_hostname="127.0.0.1"))
            except (ssl.SSLError, OSError):
                raw.close()
                self.cut_off += 1
        self._thread.start()
        return self

    def _trickle(self) -> None:
        head = b"GET /keys?api-version=7.5 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"s" * 1000
        position = 0
        while not self.stop.wait(1.0):
            for sock in list(self.sockets):
                try:
                    sock.send(head[position:position + 1])
                except OSError:
                    self.sockets.remove(sock)
                    self.cut_off += 1
            position = min(position + 1, len(head) - 1)

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self._thread.join()
        for sock in self.sockets:
            sock.close()


def run(quick: bool) -> dict[str, Any]:
    burst, samples = (300, 15) if quick else (1000, 30)
    results: dict[str, Any] = {}
    with TemporaryDirectory(prefix="byok-hostile-bench-") as tmp:
        with served(Path(tmp) / "vault") as info:
            pid = info["pid"]
            _latency_ms(info, 5)  # warm-up: imports, TLS, the first threads
            rss = [_status(pid, "VmRSS")]
            unauthenticated: set[int] = set()
            for _ in range(3):  # equal bursts: a bounded vault grows on the first (buffers, arenas), then levels off
                connection = _connection(info)
                unauthenticated |= {_get(connection, f"/keys/{'a' * 60_000}{i}", None) for i in range(burst)}
                connection.close()
                rss.append(_status(pid, "VmRSS"))
            results["burst"] = {"requests": 3 * burst, "statuses": sorted(unauthenticated),
                                "rss_mib": [round(kib / 1024, 1) for kib in rss]}
            alone, _ = _latency_ms(info, samples)
            with SlowClients(info, 48) as slow:  # below the cap of 64
                besieged, statuses = _latency_ms(info, samples)
                threads = _status(pid, "Threads")
            results["below_cap"] = {"slow_clients": 48, "alone_ms": round(alone, 2), "besieged_ms": round(besieged, 2),
                                    "ratio": round(besieged / alone, 2), "statuses": sorted(statuses),
                                    "vault_threads": threads}
            with SlowClients(info, 100) as slow:  # past the cap (64) and the refusal pool (8)
                t0 = time.perf_counter()
                connection = _connection(info)
                try:
                    status = _get(connection, "/keys", info["token"])
                except (OSError, http.client.HTTPException):
                    status = 0
                connection.close()
                refusal_ms = (time.perf_counter() - t0) * 1000
                held = len(slow.sockets)
                threads = _status(pid, "Threads")
                # How long until a legitimate client is served again: the slow ones are cut at the header deadline.
                t0 = time.perf_counter()
                served_again = 0
                while time.perf_counter() - t0 < 30 and not served_again:
                    _, statuses = _latency_ms(info, 1)
                    served_again = 200 in statuses
                recovery_s = time.perf_counter() - t0
            results["past_cap"] = {"slow_clients": 100, "held": held, "legit_status": status,
                                   "refusal_ms": round(refusal_ms, 2), "vault_threads": threads,
                                   "served_again_after_s": round(recovery_s, 1)}
        with served(Path(tmp) / "vault-fds", nofile=64) as info:
            pid, port = info["pid"], int(info["vault_url"].rsplit(":", 1)[1])
            cpu0, t0 = _cpu_seconds(pid), time.perf_counter()
            time.sleep(2.0)  # a measurement window, not a wait for the server
            idle = (_cpu_seconds(pid) - cpu0) / (time.perf_counter() - t0)
            flood = [socket.create_connection(("127.0.0.1", port)) for _ in range(100)]
            try:
                cpu0, t0 = _cpu_seconds(pid), time.perf_counter()
                time.sleep(3.0)
                out_of_fds = (_cpu_seconds(pid) - cpu0) / (time.perf_counter() - t0)
            finally:
                for sock in flood:
                    sock.close()
            _, statuses = _latency_ms(info, 1)
            results["out_of_fds"] = {"nofile": 64, "connections": 100, "idle_cpu_share": round(idle, 3),
                                     "cpu_share": round(out_of_fds, 3), "served_after": sorted(statuses)}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hostile_clients", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smaller burst and fewer samples")
    args = parser.parse_args(argv)
    r = run(args.quick)
    rows = [
        ("unauthenticated bursts (60 KB paths)", f"3 x {r['burst']['requests'] // 3} requests, "
         f"statuses {r['burst']['statuses']}"),
        ("vault RSS before / after each burst", " / ".join(map(str, r["burst"]["rss_mib"])) + " MiB"),
        ("legit GET alone / beside 48 slow", f"{r['below_cap']['alone_ms']} / {r['below_cap']['besieged_ms']} ms "
         f"(x{r['below_cap']['ratio']}), statuses {r['below_cap']['statuses']}, "
         f"{r['below_cap']['vault_threads']} vault threads"),
        ("legit GET beside 100 slow", f"status {r['past_cap']['legit_status']} in {r['past_cap']['refusal_ms']} ms, "
         f"{r['past_cap']['vault_threads']} vault threads; served again after {r['past_cap']['served_again_after_s']} s"),
        ("out of fds (nofile 64, 100 conns)", f"vault CPU {r['out_of_fds']['cpu_share']:.1%} of a core "
         f"(idle {r['out_of_fds']['idle_cpu_share']:.1%}), then served {r['out_of_fds']['served_after']}"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key.ljust(width)} | {value}")
    print(json.dumps(r, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
