"""Shared pieces: run sizes, timing (interleaved medians), key files, a local vault, RSS, the table."""

from __future__ import annotations


import gc
import logging
import statistics
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from cryptography.hazmat.primitives import serialization

from tests.provider.grpc_host import PROJECT, ROOT, child_env  # one host environment for tests and benchmarks

__all__ = ["PROJECT", "ROOT", "child_env"]  # plus the helpers below, imported by name


# --- run sizes -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sizes:
    """How much work each measurement does. ``quick`` must finish in under two minutes on 2 cores."""

    name: str
    rsa_bits: int = 4096             # target RSA keys and the KEK
    rsa_pool: int = 2                # distinct RSA keys (generation costs seconds each); files cycle through them
    wrap_keys: int = 24              # keys wrapped per batch (each side of a pair)
    wrap_reps: int = 101             # pairs of batches
    preview_keys: int = 40           # keys per file kind, per repetition
    preview_reps: int = 5
    scaling_preview: tuple[int, ...] = (10, 100, 1000)
    scaling_preview_reps: tuple[int, ...] = (30, 6, 1)   # runs of each N per round, interleaved
    scaling_preview_rounds: int = 2
    lifecycle_keys: int = 10         # creates, reads and rotations counted at the vault
    scaling_create: tuple[int, ...] = (10, 100)   # the first N also gives create_ratio_vs_sdk_floor
    scaling_create_reps: tuple[int, ...] = (7, 1)
    create_rsa_keys: int = 0         # extra create-ratio row with RSA-2048 targets (full mode)
    start_reps: int = 7


QUICK = Sizes("quick")
FULL = Sizes("full", rsa_pool=4, wrap_reps=301, preview_keys=100, preview_reps=7,
             scaling_preview_rounds=4, lifecycle_keys=20, scaling_create_reps=(11, 3), create_rsa_keys=5,
             start_reps=11)
# The smoke test's mode: everything runs once on a handful of keys (RSA-2048 so that it is fast).
TINY = Sizes("tiny", rsa_bits=2048, rsa_pool=1, wrap_keys=4, wrap_reps=1, preview_keys=2, preview_reps=1,
             scaling_preview=(2, 4), scaling_preview_reps=(1, 1), scaling_preview_rounds=1, lifecycle_keys=2,
             scaling_create=(2, 4), scaling_create_reps=(1, 1), start_reps=1)


# --- timing ----------------------------------------------------------------------------------------------
def timed(fn: Callable[[], Any]) -> float:
    """Seconds taken by ``fn()`` (garbage collected first, so that no earlier garbage is charged to it)."""
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(runs: dict[str, Callable[[], Any]], reps: int) -> dict[str, list[float]]:
    """Run each of ``runs`` ``reps`` times, alternating which goes first; seconds per run, by name."""
    names = list(runs)
    out: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(reps):
        order = names if rep % 2 == 0 else names[::-1]
        for name in order:
            out[name].append(timed(runs[name]))
    return out


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def ms(seconds: float) -> float:
    return seconds * 1000.0


# --- key files -------------------------------------------------------------------------------------------
def pem_private(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def pem_public(key: Any) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass
class KeyFile:
    kind: str                 # "rsa" or "ec"
    private: str
    public: str


@dataclass
class KeyMaker:
    """Writes target key files under ``root``: EC P-256 keys are all distinct; RSA files cycle through a pool
    of distinct keys (each file its own path). The provider's one per-key cache is OpenSSL's prime test on
    create (once per RSA key per process); previews never run it and the timed RSA creates use fresh keys, so
    reusing the bytes makes no timed call cheaper."""

    root: Path
    rsa_bits: int
    rsa_pool: int
    _rsa: list[Any] = field(default_factory=list)
    _count: int = 0

    def rsa_keys(self) -> list[Any]:
        from cryptography.hazmat.primitives.asymmetric import rsa
        while len(self._rsa) < self.rsa_pool:
            self._rsa.append(rsa.generate_private_key(public_exponent=65537, key_size=self.rsa_bits))
        return self._rsa

    def make(self, kind: str) -> KeyFile:
        from cryptography.hazmat.primitives.asymmetric import ec
        self._count += 1
        if kind == "rsa":
            key = self.rsa_keys()[self._count % self.rsa_pool]
        else:
            key = ec.generate_private_key(ec.SECP256R1())
        private = self.root / f"{kind}-{self._count:05d}.pem"
        public = self.root / f"{kind}-{self._count:05d}.pub.pem"
        private.write_bytes(pem_private(key))
        public.write_bytes(pem_public(key))
        return KeyFile(kind, str(private), str(public))

    def many(self, kind: str, n: int) -> list[KeyFile]:
        return [self.make(kind) for _ in range(n)]


# --- the local vault -------------------------------------------------------------------------------------
class StatusLog(logging.Handler):
    """Collects the local vault's access log (method, path, status) — to tell challenge 401s from calls."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self._mutex = threading.Lock()
        self.records: list[tuple[str, str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "%s %s %s" and isinstance(record.args, tuple) and len(record.args) == 3:
            method, path, status = record.args
            with self._mutex:
                self.records.append((str(method), str(path), str(status)))

    def since(self, start: int) -> list[tuple[str, str, str]]:
        with self._mutex:
            return list(self.records[start:])

    def __len__(self) -> int:
        with self._mutex:
            return len(self.records)


@dataclass
class Bench:
    """What every measurement shares: sizes, a temp dir, a running local vault (premium), its KEK."""

    sizes: Sizes
    tmp: Path
    vault: Any
    kek_id: str
    keys: KeyMaker
    access: StatusLog

    def provider_env(self) -> dict[str, str]:
        """Env that points the provider at the local vault, as in production (BYOK_CA_BUNDLE, token file)."""
        return {"BYOK_CA_BUNDLE": self.vault.ca_cert, "BYOK_ACCESS_TOKEN_FILE": self.vault.token_file,
                "BYOK_RBAC_WAIT_SECONDS": "0"}

    def inputs(self, name: str, key: KeyFile, *, private: bool = True, public: bool = False) -> dict[str, Any]:
        """ByokKey inputs as a program would declare them."""
        props: dict[str, Any] = {"vault_url": self.vault.vault_url, "key_name": name, "kek_id": self.kek_id,
                                 "tags": {"team": "platform", "env": "bench"}}
        if private:
            props["key_file"] = key.private
        if public:
            props["public_key_file"] = key.public
        return props


@contextmanager
def bench_setup(sizes: Sizes) -> Iterator[Bench]:
    """A temp dir, a premium local vault (rate limit off: the default) and one RSA-HSM KEK made in it."""
    from byok_component.localvault import FaultConfig, LocalVault

    access = StatusLog()
    logger = logging.getLogger("byok_component.localvault")
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(access)
    logger.propagate = False
    with tempfile.TemporaryDirectory(prefix="byok-bench-") as tmp:
        root = Path(tmp)
        keydir = root / "keys"
        keydir.mkdir()
        vault = LocalVault(root / "vault", sku="premium", faults=FaultConfig())  # no faults, no rate limit
        assert vault.faults.rate_limit_writes_per_10s is None
        vault.start()
        try:
            kek_id = _make_kek(vault, sizes.rsa_bits)
            yield Bench(sizes, root, vault, kek_id, KeyMaker(keydir, sizes.rsa_bits, sizes.rsa_pool), access)
        finally:
            vault.stop()
            logger.removeHandler(access)
            logger.setLevel(old_level)
            logger.propagate = True


def _make_kek(vault: Any, bits: int) -> str:
    from byok_component import vault as V

    with V.pointed_at(vault.ca_cert, vault.token_file):
        kek = V.create_kek(V.client(vault.vault_url), "bench-kek", bits)
    return kek.kid


# --- processes -------------------------------------------------------------------------------------------
def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set size) of a live process, in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmHWM in /proc status")


# --- the table -------------------------------------------------------------------------------------------
def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    cells = [[str(c) for c in header]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value == 0:
            return "0"
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)
