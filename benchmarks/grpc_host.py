"""The test suite's gRPC provider host (tests/provider/grpc_host.py), driven with prebuilt messages.

Measuring wants the RPC alone in the timed region, so requests are built before the clock starts; the
host process, its environment, start-up timing (``started``) and ``pid`` (for RSS) are the tests' own.
"""

from __future__ import annotations

from typing import Any, Mapping

from google.protobuf import struct_pb2
from pulumi.runtime.proto import provider_pb2

from tests.provider.grpc_host import PROJECT, ProviderHost, plain, struct

__all__ = ["URN", "Host", "check_request", "diff_request", "state_from", "provider_token", "plain", "struct"]

URN = f"urn:pulumi:bench::{PROJECT}::pulumi-python:dynamic/byok:ByokKey::key"
_TIMEOUT = 120.0


def provider_token(provider: Any = None) -> str:
    """The ``__provider`` property a ByokKey carries (ByokKeyProvider pickled by reference), or another's."""
    from pulumi.dynamic.dynamic import serialize_provider

    from byok_component.provider import ByokKeyProvider
    return serialize_provider(provider if provider is not None else ByokKeyProvider())


def check_request(news: Mapping[str, Any], token: str, olds: Mapping[str, Any] | None = None) -> Any:
    return provider_pb2.CheckRequest(urn=URN, olds=struct({**(olds or {})}), news=struct({**news, "__provider": token}))


def diff_request(id_: str, olds: struct_pb2.Struct, news: struct_pb2.Struct) -> Any:
    return provider_pb2.DiffRequest(id=id_, urn=URN, olds=olds, news=news)


def state_from(checked: struct_pb2.Struct, kid: str) -> struct_pb2.Struct:
    """Plausible stored outputs for a key the last `pulumi up` created: its checked inputs, kid and version."""
    state = struct_pb2.Struct()
    state.CopyFrom(checked)
    state.update({"kid": kid, "version": kid.rsplit("/", 1)[1]})
    return state


class Host(ProviderHost):
    """A ProviderHost whose RPC methods take prebuilt messages (Configure as the engine sends it)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        super().__init__(dict(env or {}))

    def configure(self, config: Mapping[str, Any] | None = None) -> Any:  # the engine: acceptSecrets=False
        return self.stub.Configure(provider_pb2.ConfigureRequest(args=struct(config or {}), acceptSecrets=False),
                                   timeout=_TIMEOUT)

    def check(self, request: Any) -> Any:  # type: ignore[override]
        response = self.stub.Check(request, timeout=_TIMEOUT)
        if response.failures:
            raise RuntimeError(f"check failed: {[(f.property, f.reason) for f in response.failures]}")
        return response

    def diff(self, request: Any) -> Any:  # type: ignore[override]
        return self.stub.Diff(request, timeout=_TIMEOUT)

    def create(self, properties: struct_pb2.Struct) -> Any:  # type: ignore[override]
        return self.stub.Create(provider_pb2.CreateRequest(urn=URN, properties=properties), timeout=_TIMEOUT)

    def read(self, id_: str, properties: struct_pb2.Struct) -> Any:  # type: ignore[override]
        return self.stub.Read(provider_pb2.ReadRequest(id=id_, urn=URN, properties=properties), timeout=_TIMEOUT)

    def update(self, id_: str, olds: struct_pb2.Struct, news: struct_pb2.Struct) -> Any:  # type: ignore[override]
        return self.stub.Update(provider_pb2.UpdateRequest(id=id_, urn=URN, olds=olds, news=news), timeout=_TIMEOUT)
