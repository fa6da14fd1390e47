"""Run the real ``__main__.py`` (or a ByokVault built from JSON) under ``pulumi.runtime.set_mocks`` in a
fresh interpreter, and hand back the resource graph the mock engine saw, as JSON.

``set_mocks`` is process-global, so every run gets its own process: no test can poison another. These
processes are not started the way the engine's language host starts a program (they put the repository on
PYTHONPATH; what is checked here is the resource graph): tests/engine runs the program under the real engine.
``run_all`` forks the runs from one server that has imported Pulumi, azure-native and the component
once (a run then costs milliseconds); ``run``/``collect`` start one interpreter per run. A run's spec:

    {"mode": "program" | "component", "program": FILE (default: the project's __main__.py), "cwd": DIR, "config": {"byok-component:key": "value", ...},
     "secret_keys": [...], "component": {ByokVaultArgs fields, "keys": [ByokKeySpec fields]},
     "preview": false, "client_id": <getClientConfig's clientId>}

Config reaches the program the way the engine hands it over: env ``PULUMI_CONFIG`` (JSON, string values)
and ``PULUMI_CONFIG_SECRET_KEYS``. ``project_config`` builds it like the CLI does: Pulumi.yaml defaults,
then a stack file, then overrides.

Output (JSON on stdout): ``resources`` (type, name, urn, id, parent, custom, inputs as the monitor received
them — secrets still wrapped —, dependencies, property_dependencies, state), ``calls`` (invokes),
``component_outputs`` (register_outputs by URN, secrets wrapped), ``stack_outputs`` ({name: {value,
secret}}), or ``error`` (type and message) when the program raised.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "byok-component"
SECRET_SIG = "4dabf18193072939515e22adb298388d"  # pulumi's secret-wrapper signature key
SUBSCRIPTION = "00000000-1111-2222-3333-444444444444"
TENANT = "99999999-8888-7777-6666-555555555555"
OBJECT_ID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
SP_CLIENT_ID = "12121212-3434-5656-7878-909090909090"  # a service principal's own app id
AZURE_CLI_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"  # a user signed in with `az login`


# --- the parent side: build specs, run, parse -------------------------------------------------
def _config_value(value: Any) -> str:
    # The engine hands every config value over as a string; objects and arrays as JSON.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def project_config(stack_file: Optional[str] = None, overrides: Optional[Mapping[str, Any]] = None,
                   *, defaults: bool = True) -> dict[str, str]:
    """Config as the CLI would pass it: Pulumi.yaml defaults < stack file < overrides (short keys allowed)."""
    import yaml

    def qualify(key: str) -> str:
        return key if ":" in key else f"{PROJECT}:{key}"

    config: dict[str, str] = {}
    if defaults:
        declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
        config.update({qualify(k): _config_value(v["default"]) for k, v in declared.items() if "default" in v})
    if stack_file:
        stack = yaml.safe_load((ROOT / stack_file).read_text()) or {}
        config.update({qualify(k): _config_value(v) for k, v in (stack.get("config") or {}).items()})
    config.update({qualify(k): _config_value(v) for k, v in (overrides or {}).items()})
    return config


_RANK = {t: i for i, t in enumerate([
    "azure-native:resources:ResourceGroup", "byok:index:ByokVault", "azure-native:keyvault:Vault",
    "azure-native:authorization:RoleAssignment", "pulumi-python:dynamic/byok:RbacGate", "azure-native:keyvault:Key",
    "pulumi-python:dynamic/byok:Kek", "pulumi-python:dynamic/byok:KekPublicKey", "pulumi-python:dynamic/byok:ByokKey"])}


@dataclass
class Graph:
    """What the mocks saw in one run."""

    resources: list[dict[str, Any]]
    calls: list[dict[str, Any]]
    component_outputs: dict[str, Any]
    stack_outputs: dict[str, dict[str, Any]]
    error: Optional[dict[str, str]] = None
    stderr: str = ""
    seconds: float = 0.0
    raw: str = field(default="", repr=False)

    def of_type(self, typ: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["type"] == typ]

    def one(self, typ: str) -> dict[str, Any]:
        found = self.of_type(typ)
        assert len(found) == 1, f"expected one {typ}, got {[r['name'] for r in found]}"
        return found[0]

    def by_urn(self, urn: str) -> dict[str, Any]:
        return next(r for r in self.resources if r["urn"] == urn)

    def types(self) -> set[str]:
        return {r["type"] for r in self.resources}

    def outline(self) -> list[str]:
        """``type name`` lines, indented under their parents: the graph as a reader wants to see it."""
        children: dict[str, list[dict[str, Any]]] = {}
        for r in self.resources:
            children.setdefault(r["parent"] if r["parent"] in {x["urn"] for x in self.resources} else "",
                                []).append(r)
        lines: list[str] = []

        def walk(parent: str, depth: int) -> None:
            # Siblings register in no fixed order (each waits on its inputs): sort them by role, then name.
            for r in sorted(children.get(parent, []), key=lambda r: (_RANK.get(r["type"], 99), r["name"])):
                lines.append(f"{'  ' * depth}{r['type']}  {r['name']}")
                walk(r["urn"], depth + 1)

        walk("", 0)
        return lines


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "AZURE_", "BYOK_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _spec_env(spec: Mapping[str, Any]) -> dict[str, str]:
    # How the engine hands config to a Python program: JSON in PULUMI_CONFIG, secret keys beside it.
    return {"PULUMI_CONFIG": json.dumps(spec.get("config", {})),
            "PULUMI_CONFIG_SECRET_KEYS": json.dumps(spec.get("secret_keys", []))}


def _graph(data: Mapping[str, Any], stderr: str, raw: str) -> Graph:
    return Graph(data["resources"], data["calls"], data["component_outputs"], data["stack_outputs"],
                 data.get("error"), stderr, data["seconds"], raw)


def run_all(specs: Mapping[str, Mapping[str, Any]], timeout: float = 180) -> dict[str, Graph]:
    """Run many specs, each in its own process: forked from one pre-imported server where fork exists
    (fast), else one interpreter per spec, all in parallel."""
    if not hasattr(os, "fork"):
        procs = {name: run(spec, timeout) for name, spec in specs.items()}
        return {name: collect(proc) for name, proc in procs.items()}
    proc = subprocess.run([sys.executable, "-X", "utf8", str(Path(__file__)), "--fork-server"],
                          input=json.dumps(dict(specs)), capture_output=True, text=True, cwd=str(ROOT),
                          env=_base_env(), timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"fork server failed (exit {proc.returncode}):\n{proc.stderr}")
    graphs: dict[str, Graph] = {}
    for name, outcome in json.loads(proc.stdout).items():
        if outcome["status"] != 0 or outcome["result"] is None:
            raise AssertionError(f"{name}: run failed (exit {outcome['status']}):\n{outcome['stderr']}")
        graphs[name] = _graph(outcome["result"], outcome["stderr"], json.dumps(outcome["result"]))
    return graphs


def run(spec: Mapping[str, Any], timeout: float = 120) -> "subprocess.Popen[str]":
    """Start one mocked run in a fresh interpreter; pair with ``collect``."""
    env = {**_base_env(), **_spec_env(spec)}
    proc = subprocess.Popen([sys.executable, "-X", "utf8", str(Path(__file__)), "--child"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=spec.get("cwd", str(ROOT)), env=env)
    proc.stdin.write(json.dumps(dict(spec)))  # type: ignore[union-attr]
    proc.stdin.close()  # type: ignore[union-attr]
    proc._byok_timeout = timeout  # type: ignore[attr-defined]
    return proc


def collect(proc: "subprocess.Popen[str]") -> Graph:
    stdout = proc.stdout.read()  # type: ignore[union-attr]
    stderr = proc.stderr.read()  # type: ignore[union-attr]
    proc.wait(timeout=getattr(proc, "_byok_timeout", 120))
    if proc.returncode != 0 or not stdout.strip():
        raise AssertionError(f"harness failed (exit {proc.returncode}):\n{stderr}")
    return _graph(json.loads(stdout), stderr, stdout)


def run_one(spec: Mapping[str, Any]) -> Graph:
    return collect(run(spec))


# --- the child side: mocks, a recording monitor, the run ----------------------------------------
def _execute(spec: Mapping[str, Any]) -> dict[str, Any]:  # pragma: no cover - runs in a child process
    """One mocked run in this (fresh) process; set_mocks makes the process unusable for another run."""
    import asyncio
    import runpy
    import time

    from google.protobuf import json_format

    started = time.monotonic()

    import pulumi
    from pulumi.runtime.mocks import MockMonitor
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    inputs_seen: dict[tuple[str, str], dict[str, Any]] = {}
    states: dict[tuple[str, str], dict[str, Any]] = {}
    ids: dict[tuple[str, str], str] = {}
    calls: list[dict[str, Any]] = []

    def version_for(name: str) -> str:
        import hashlib
        return hashlib.sha256(name.encode()).hexdigest()[:32]

    class Mocks(pulumi.runtime.Mocks):
        """Plausible Azure answers; dynamic resources echo every input they got (a worst case for leaks)."""

        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
            inputs = dict(args.inputs)
            inputs_seen[(args.typ, args.name)] = inputs
            state = dict(inputs)
            sub = f"/subscriptions/{SUBSCRIPTION}"
            rid = f"{args.name}-id"
            if args.typ == "azure-native:resources:ResourceGroup":
                state["name"] = inputs.get("resourceGroupName") or f"{args.name}-a1b2c3"
                rid = f"{sub}/resourceGroups/{state['name']}"
            elif args.typ == "azure-native:keyvault:Vault":
                state["name"] = inputs.get("vaultName") or f"{args.name}-d4e5"
                state["properties"] = {**inputs.get("properties", {}),
                                       "vaultUri": f"https://{state['name']}.vault.azure.net/"}
                rid = f"{sub}/resourceGroups/{inputs['resourceGroupName']}/providers/Microsoft.KeyVault/vaults/{state['name']}"
            elif args.typ == "azure-native:keyvault:Key":
                # ARM's createKey example answers keyUri(WithVersion) with the default port spelled out
                base = f"https://{inputs['vaultName']}.vault.azure.net:443/keys/{inputs['keyName']}"
                state.update(name=inputs["keyName"], keyUri=base,
                             keyUriWithVersion=f"{base}/{version_for(args.name)}")
                rid = f"{sub}/resourceGroups/{inputs['resourceGroupName']}/providers/Microsoft.KeyVault/vaults/{inputs['vaultName']}/keys/{inputs['keyName']}"
            elif args.typ == "azure-native:authorization:RoleAssignment":
                rid = f"{inputs.get('scope')}/providers/Microsoft.Authorization/roleAssignments/{version_for(args.name)}"
            elif args.typ == "pulumi-python:dynamic/byok:Kek":
                state.update(kid=f"{inputs['vault_url']}/keys/{inputs['key_name']}/{version_for(args.name)}",
                             version=version_for(args.name), fingerprint=f"kek-fp-{args.name}",
                             public_key_pem="-----BEGIN PUBLIC KEY-----\n...\n-----END PUBLIC KEY-----\n")
                rid = f"{inputs['vault_url']}/keys/{inputs['key_name']}"
            elif args.typ == "pulumi-python:dynamic/byok:KekPublicKey":
                state.update(fingerprint=f"kek-fp-{args.name}", key_size=4096,
                             public_key_pem="-----BEGIN PUBLIC KEY-----\n...\n-----END PUBLIC KEY-----\n")
                rid = inputs["kek_id"]
            elif args.typ == "pulumi-python:dynamic/byok:ByokKey":
                state.update(kid=f"{inputs['vault_url']}/keys/{inputs['key_name']}/{version_for(args.name)}",
                             version=version_for(args.name), fingerprint=f"fp-{inputs['key_name']}")
                rid = f"{inputs['vault_url']}/keys/{inputs['key_name']}"
            states[(args.typ, args.name)] = state
            ids[(args.typ, args.name)] = rid if args.custom else ""
            return ids[(args.typ, args.name)], state

        def call(self, args: pulumi.runtime.MockCallArgs) -> Any:
            calls.append({"token": args.token, "args": dict(args.args)})
            if args.token == "azure-native:authorization:getClientConfig":
                return {"clientId": spec.get("client_id", SP_CLIENT_ID), "objectId": OBJECT_ID, "subscriptionId": SUBSCRIPTION,
                        "tenantId": TENANT}
            return {}

    registrations: list[dict[str, Any]] = []
    component_outputs: dict[str, Any] = {}

    class RecordingMonitor(MockMonitor):
        """The stock mock monitor, also keeping what MockResourceArgs leaves out: parent and dependencies."""

        def RegisterResource(self, request: Any) -> Any:
            response = super().RegisterResource(request)
            if request.type != "pulumi:pulumi:Stack":
                registrations.append({
                    "type": request.type, "name": request.name, "urn": response.urn,
                    "parent": request.parent, "custom": bool(request.custom),
                    "dependencies": sorted(request.dependencies),
                    "property_dependencies": {k: sorted(v.urns) for k, v in request.propertyDependencies.items()},
                    "additional_secret_outputs": list(request.additionalSecretOutputs),
                })
            return response

        def RegisterResourceOutputs(self, request: Any) -> Any:
            component_outputs[request.urn] = json_format.MessageToDict(request.outputs)
            return super().RegisterResourceOutputs(request)

    mocks = Mocks()
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=spec.get("stack", "test"),
                             preview=spec.get("preview", False), monitor=RecordingMonitor(mocks))

    def build_component() -> None:
        from byok_component.component import ByokKeySpec, ByokVault, ByokVaultArgs

        kwargs = dict(spec["component"])
        keys = []
        for key in kwargs.pop("keys", []):
            key = dict(key)
            if isinstance(key.get("key_password"), dict):  # {"secret": "..."}
                key["key_password"] = pulumi.Output.secret(key["key_password"]["secret"])
            keys.append(ByokKeySpec(**key))
        vault = ByokVault(spec.get("component_name", "byok"), ByokVaultArgs(keys=keys, **kwargs))
        for out in ("vault_uri", "vault_id", "kek_id", "kek_public_key_pem", "kek_fingerprint", "kids", "fingerprints"):
            pulumi.export(out, getattr(vault, out))

    async def stack_outputs() -> dict[str, Any]:
        from pulumi.runtime.settings import get_root_resource

        result: dict[str, Any] = {}
        for name, value in dict(get_root_resource().outputs).items():  # type: ignore[union-attr]
            out = pulumi.Output.from_input(value)
            result[name] = {"value": await out.future(), "secret": await out.is_secret()}
        return result

    resolved: dict[str, Any] = {}
    error: Optional[dict[str, str]] = None

    def program() -> Any:
        if spec.get("mode", "program") == "program":
            runpy.run_path(str(spec.get("program", ROOT / "__main__.py")), run_name="__main__")
        else:
            build_component()

        async def finish() -> None:
            resolved.update(await stack_outputs())

        return pulumi.Output.from_input(asyncio.ensure_future(finish()))

    try:
        _sync_await(run_pulumi_func(lambda: _sync_await(pulumi.Output.from_input(program()).future())))
    except Exception as exc:  # noqa: BLE001 - reported to the parent as data
        error = {"type": type(exc).__name__, "message": str(exc)}

    resources = []
    for reg in registrations:
        key = (reg["type"], reg["name"])
        resources.append({**reg, "id": ids.get(key, ""), "inputs": inputs_seen.get(key, {}),
                          "state": states.get(key, {})})
    return {"resources": resources, "calls": calls, "component_outputs": component_outputs,
            "stack_outputs": resolved, "error": error, "seconds": time.monotonic() - started}


def _preload() -> None:  # pragma: no cover - runs in the fork server
    """Import what every run needs once, before forking (the children share it copy-on-write)."""
    import pulumi.dynamic  # noqa: F401
    import pulumi.runtime.mocks  # noqa: F401
    from pulumi_azure_native import authorization, keyvault, resources

    for name in ("Vault", "Key", "VaultPropertiesArgs", "SkuArgs", "KeyPropertiesArgs"):
        getattr(keyvault, name)
    authorization.RoleAssignment, authorization.get_client_config_output, resources.ResourceGroup  # noqa: B018
    import byok_component.component  # noqa: F401


def _fork_server() -> None:  # pragma: no cover - runs in the subprocess
    """Read ``{name: spec}``; fork one child per spec (fresh Pulumi runtime each); write ``{name: result}``.

    Forking after the imports makes a run cost milliseconds instead of an interpreter start and ~1 s of
    imports. Nothing here starts a thread before forking (checked), so fork is safe.
    """
    import tempfile
    import threading

    specs = json.loads(sys.stdin.read())
    _preload()
    assert threading.active_count() == 1, "a thread before fork() would make the children unsafe"
    base_env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="byok-mocks-") as out:
        children: dict[int, str] = {}
        for index, (name, spec) in enumerate(specs.items()):
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    err = os.open(os.path.join(out, f"{index}.err"), os.O_WRONLY | os.O_CREAT, 0o600)
                    os.dup2(err, 2)
                    os.environ.clear()
                    os.environ.update(base_env)
                    os.environ.update(_spec_env(spec))
                    os.chdir(spec.get("cwd", str(ROOT)))
                    result = _execute(spec)
                    with open(os.path.join(out, f"{index}.json"), "w", encoding="utf-8") as fh:
                        json.dump(result, fh, default=repr)
                except BaseException:  # noqa: BLE001 - reported through the .err file and exit code
                    import traceback
                    traceback.print_exc()
                    code = 1
                finally:
                    sys.stderr.flush()
                    os._exit(code)
            children[pid] = name
        results: dict[str, Any] = {}
        index_of = {name: i for i, name in enumerate(specs)}
        while children:
            pid, status = os.wait()
            name = children.pop(pid)
            i = index_of[name]
            stderr = open(os.path.join(out, f"{i}.err"), encoding="utf-8", errors="replace").read() \
                if os.path.exists(os.path.join(out, f"{i}.err")) else ""
            path = os.path.join(out, f"{i}.json")
            results[name] = {"status": os.waitstatus_to_exitcode(status), "stderr": stderr,
                             "result": json.load(open(path, encoding="utf-8")) if os.path.exists(path) else None}
    json.dump(results, sys.stdout, default=repr)


if __name__ == "__main__" and "--child" in sys.argv:
    sys.path.insert(0, str(ROOT))
    json.dump(_execute(json.loads(sys.stdin.read())), sys.stdout, default=repr)
elif __name__ == "__main__" and "--fork-server" in sys.argv:
    sys.path.insert(0, str(ROOT))
    _fork_server()
