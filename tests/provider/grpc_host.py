"""Start ``python -m pulumi.dynamic`` the way the Pulumi engine starts a Python dynamic provider, and call it.

How the engine starts it (pulumi/pulumi, read at a 2026 snapshot): ``pkg/resource/plugin/provider_plugin.go``
``NewProvider`` runs the bundled plugin ``pulumi-resource-pulumi-python`` with the program directory as working
directory (``newPlugin(ctx, ctx.Pwd, ...)``), the CLI's own environment plus the runtime options as
``PULUMI_RUNTIME_*`` variables and ``PULUMI_PROJECT``, and the engine's host address as the only argument. That
script (``sdk/python/dist/pulumi-resource-pulumi-python``) resolves ``PULUMI_RUNTIME_VIRTUALENV`` (``venv`` in
our Pulumi.yaml) against the working directory, puts its ``bin`` first on PATH, unsets PYTHONHOME and runs
``<venv>/bin/python -u -m pulumi.dynamic <address>``. **Nobody sets PYTHONPATH**: ``-m`` puts the working directory
first on ``sys.path``, so ``byok_component`` imports from the project root there, and from anywhere else only
when it is installed in that venv. ``ProviderHost`` does the same (the project's venv python, the project root as
working directory, PYTHONPATH and PYTHONHOME removed from the environment); ``python``/``cwd`` point it at
another venv and directory (a library user's layout).

What this module does not do is plan: which RPCs follow which for ``up``, ``--replace``, refresh or destroy is
tests/provider/engine.py (the replay driver). The host prints its port on stdout once its gRPC server listens;
we wait for that line (no sleeps). Properties travel as protobuf Structs, so numbers come back as floats and
unknowns are the wire sentinel, as with the engine.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import grpc
from google.protobuf import json_format, struct_pb2
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "byok-component"
VIRTUALENV = "venv"  # Pulumi.yaml runtime.options.virtualenv
# The engine passes its host server's address; pulumi.dynamic ignores its arguments. Nothing listens here.
ENGINE_ADDRESS = "127.0.0.1:1"
_STARTUP_TIMEOUT = 60.0
_CALL_TIMEOUT = 120.0


def project_python(project: Path = ROOT) -> Path:
    """The project's virtualenv python, as pulumi-resource-pulumi-python resolves it (never sys.executable)."""
    python = project / VIRTUALENV / "bin" / "python"
    if not python.is_file():
        raise FileNotFoundError(f"{python} is missing: run ./dev once to create the project's venv")
    return python


def child_env(extra: Mapping[str, str] | None = None, *, venv: Path | None = None) -> dict[str, str]:
    """Env for the host: ours minus credentials, proxies, Pulumi settings and PYTHONPATH/PYTHONHOME, plus what the
    engine and its plugin script add (PULUMI_PROJECT, PULUMI_RUNTIME_*, the venv's bin first on PATH).

    ``extra`` may not put PYTHONPATH or PYTHONHOME back: the engine never sets them, and a host that finds
    ``byok_component`` only through them would pass here and fail under the engine. A process that is not a
    provider host (a benchmark worker) sets its own.
    """
    smuggled = sorted({"PYTHONPATH", "PYTHONHOME"} & set(extra or {}))
    if smuggled:
        raise ValueError(f"{', '.join(smuggled)}: the engine starts a provider host without it")
    out = {k: v for k, v in os.environ.items() if not k.startswith(("BYOK_", "AZURE_", "PULUMI_"))}
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "PYTHONPATH", "PYTHONHOME"):
        out.pop(name, None)
    venv = venv or ROOT / VIRTUALENV
    out.update({"PULUMI_PROJECT": PROJECT, "PULUMI_RUNTIME_TOOLCHAIN": "pip", "PULUMI_RUNTIME_VIRTUALENV": str(venv),
                "PATH": os.pathsep.join([str(venv / "bin"), out.get("PATH", "")]), **(extra or {})})
    return out


def struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    """A Struct of plain values, the way the engine sends them (no None: the engine drops unset inputs)."""
    message = struct_pb2.Struct()
    message.update({k: v for k, v in props.items() if v is not None})
    return message


def plain(message: struct_pb2.Struct) -> dict[str, Any]:
    return json_format.MessageToDict(message)


class ProviderHost:
    """One ``python -m pulumi.dynamic`` process; ``stub`` is its ResourceProvider client."""

    def __init__(self, env: Mapping[str, str], *, python: Path | None = None, cwd: Path = ROOT) -> None:
        python = python or project_python()
        self.python, self.cwd = python, cwd
        host_env = child_env(env, venv=python.parent.parent)
        self._stderr = tempfile.TemporaryFile()
        started = time.perf_counter()
        self.process = subprocess.Popen([str(python), "-u", "-m", "pulumi.dynamic", ENGINE_ADDRESS], cwd=cwd,
                                        env=host_env, stdout=subprocess.PIPE,
                                        stderr=self._stderr, stdin=subprocess.DEVNULL)
        try:
            self.port = self._read_port()
            self.started = time.perf_counter() - started  # spawn -> port printed (its gRPC server is up)
            self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
            grpc.channel_ready_future(self.channel).result(timeout=_STARTUP_TIMEOUT)
        except BaseException:
            self.close()
            raise
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)

    @property
    def pid(self) -> int:
        return self.process.pid

    def __enter__(self) -> "ProviderHost":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read_port(self) -> int:
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout=_STARTUP_TIMEOUT):
                raise TimeoutError("python -m pulumi.dynamic printed no port")
        line = self.process.stdout.readline()
        if not line.strip():
            raise RuntimeError(f"python -m pulumi.dynamic exited: {self.stderr()}")
        return int(line)

    # --- the RPCs, with plain dicts in and out -------------------------------------------------------------
    def configure(self, config: Mapping[str, Any] | None = None) -> Any:
        return self.stub.Configure(provider_pb2.ConfigureRequest(args=struct(config or {}), acceptSecrets=True),
                                   timeout=_CALL_TIMEOUT)

    def check(self, olds: Mapping[str, Any], news: Mapping[str, Any]) -> Any:
        return self.stub.Check(provider_pb2.CheckRequest(urn=_URN, olds=struct(olds), news=struct(news)),
                               timeout=_CALL_TIMEOUT)

    def diff(self, id_: str, olds: Mapping[str, Any], news: Mapping[str, Any]) -> Any:
        return self.stub.Diff(provider_pb2.DiffRequest(id=id_, urn=_URN, olds=struct(olds), news=struct(news)),
                              timeout=_CALL_TIMEOUT)

    def create(self, props: Mapping[str, Any]) -> Any:
        return self.stub.Create(provider_pb2.CreateRequest(urn=_URN, properties=struct(props)),
                                timeout=_CALL_TIMEOUT)

    def read(self, id_: str, props: Mapping[str, Any], inputs: Mapping[str, Any] | None = None) -> Any:
        return self.stub.Read(provider_pb2.ReadRequest(id=id_, urn=_URN, properties=struct(props),
                                                       inputs=struct(inputs or {})), timeout=_CALL_TIMEOUT)

    def update(self, id_: str, olds: Mapping[str, Any], news: Mapping[str, Any]) -> Any:
        return self.stub.Update(provider_pb2.UpdateRequest(id=id_, urn=_URN, olds=struct(olds), news=struct(news)),
                                timeout=_CALL_TIMEOUT)

    def delete(self, id_: str, props: Mapping[str, Any]) -> Any:
        return self.stub.Delete(provider_pb2.DeleteRequest(id=id_, urn=_URN, properties=struct(props)),
                                timeout=_CALL_TIMEOUT)

    # --- teardown --------------------------------------------------------------------------------------------
    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")

    def close(self) -> str:
        """Stop the host (it only ends when killed, like under the engine) and return its stderr."""
        channel = getattr(self, "channel", None)
        if channel is not None:
            channel.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        text = self.stderr()
        self._stderr.close()
        return text


_URN = f"urn:pulumi:test::{PROJECT}::pulumi-python:dynamic/byok:ByokKey::key"
