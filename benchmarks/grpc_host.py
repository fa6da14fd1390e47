"""A ``python -m pulumi.dynamic`` process driven over gRPC as the Pulumi engine drives it (reference/pulumi.md §2).

A variant of tests/provider/grpc_host.py for measuring: it exposes the pid (for RSS), the time the host took
to print its port, and takes prebuilt request messages so that timing covers only the RPC.
"""

from __future__ import annotations

import selectors
import subprocess
import sys
import tempfile
import time
from typing import Any, Mapping

import grpc
from google.protobuf import json_format, struct_pb2
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from .common import PROJECT, ROOT, child_env

URN = f"urn:pulumi:bench::{PROJECT}::pulumi-python:dynamic/byok:ByokKey::key"
_TIMEOUT = 120.0


def provider_token(provider: Any = None) -> str:
    """The ``__provider`` property a ByokKey carries (ByokKeyProvider pickled by reference), or another's."""
    from pulumi.dynamic.dynamic import serialize_provider

    from byok_component.provider import ByokKeyProvider
    return serialize_provider(provider if provider is not None else ByokKeyProvider())


def struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update({k: v for k, v in props.items() if v is not None})
    return message


def plain(message: struct_pb2.Struct) -> dict[str, Any]:
    return json_format.MessageToDict(message)


def check_request(news: Mapping[str, Any], token: str, olds: Mapping[str, Any] | None = None) -> Any:
    return provider_pb2.CheckRequest(urn=URN, olds=struct({**(olds or {})}), news=struct({**news, "__provider": token}))


class Host:
    """One provider host. ``started`` is seconds from spawn to the port line (the gRPC server is up)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._stderr = tempfile.TemporaryFile()
        t0 = time.perf_counter()
        self.process = subprocess.Popen([sys.executable, "-u", "-m", "pulumi.dynamic"], cwd=ROOT,
                                        env=child_env(dict(env or {})), stdout=subprocess.PIPE,
                                        stderr=self._stderr, stdin=subprocess.DEVNULL)
        try:
            self.port = self._read_port()
            self.started = time.perf_counter() - t0
            self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
            grpc.channel_ready_future(self.channel).result(timeout=_TIMEOUT)
        except BaseException:
            self.close()
            raise
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read_port(self) -> int:
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout=_TIMEOUT):
                raise TimeoutError("python -m pulumi.dynamic printed no port")
        line = self.process.stdout.readline()
        if not line.strip():
            raise RuntimeError(f"python -m pulumi.dynamic exited: {self.stderr()}")
        return int(line)

    def configure(self) -> Any:
        return self.stub.Configure(provider_pb2.ConfigureRequest(args=struct({}), acceptSecrets=False),
                                   timeout=_TIMEOUT)

    def check(self, request: Any) -> Any:
        response = self.stub.Check(request, timeout=_TIMEOUT)
        if response.failures:
            raise RuntimeError(f"check failed: {[(f.property, f.reason) for f in response.failures]}")
        return response

    def diff(self, request: Any) -> Any:
        return self.stub.Diff(request, timeout=_TIMEOUT)

    def create(self, properties: struct_pb2.Struct) -> Any:
        return self.stub.Create(provider_pb2.CreateRequest(urn=URN, properties=properties), timeout=_TIMEOUT)

    def read(self, id_: str, properties: struct_pb2.Struct) -> Any:
        return self.stub.Read(provider_pb2.ReadRequest(id=id_, urn=URN, properties=properties), timeout=_TIMEOUT)

    def update(self, id_: str, olds: struct_pb2.Struct, news: struct_pb2.Struct) -> Any:
        return self.stub.Update(provider_pb2.UpdateRequest(id=id_, urn=URN, olds=olds, news=news), timeout=_TIMEOUT)

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")

    def close(self) -> None:
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
        self._stderr.close()

    def __enter__(self) -> "Host":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def diff_request(id_: str, olds: struct_pb2.Struct, news: struct_pb2.Struct) -> Any:
    return provider_pb2.DiffRequest(id=id_, urn=URN, olds=olds, news=news)


def state_from(checked: struct_pb2.Struct, kid: str) -> struct_pb2.Struct:
    """Plausible stored outputs for a key the last `pulumi up` created: its checked inputs, kid and version."""
    state = struct_pb2.Struct()
    state.CopyFrom(checked)
    state.update({"kid": kid, "version": kid.rsplit("/", 1)[1]})
    return state
