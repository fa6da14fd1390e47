"""ByokKey create/update/read/delete under injected faults: 429s with and without Retry-After, 500s, connections
dropped before and after the vault commits an import, responses slower than the client timeout, a provider killed
mid-create -- and Azure's harsh side (localvault/behaviour.py): the RBAC propagation window, purge protection,
deletes and purges that complete later, alone and all at once.

For every scenario: success or one clear error; never a duplicate version from a retry (versions counted with
the SDK); on success the returned state matches what the vault holds; and a rerun on a healthy vault converges
(a create adopts what an earlier attempt already imported). Faults are set per scenario by restarting the vault
with a FaultConfig on the same data and port; its ``faults_injected`` counters prove each fault really fired.
"""

from __future__ import annotations

import copy
import secrets
import shutil
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import pytest

from byok_component import ownership
from byok_component import vault as vault_adapter
from byok_component.errors import ByokError
from byok_component.localvault import faults as fault_rules
from byok_component.provider import ByokKeyProvider
from tests.hostile.conftest import (KeyFiles, add_tokens, clear_error_problems, make_kek, restart_with, start_vault,
                                    versions)
from tests.hostile.figures import FIGURES
from tests.integration.conftest import make_key_client
from tests.secretscan import SecretSet

if TYPE_CHECKING:
    from byok_component.localvault import LocalVault

SLOW = 5.0  # seconds a slow response is held back (cut short when the vault restarts)
FAST_TIMEOUT = {"BYOK_HTTP_TIMEOUT_SECONDS": "0.5"}  # the client gives up long before SLOW
TWO_ATTEMPTS = {"BYOK_IMPORT_ATTEMPTS": "2"}
NO_THROTTLE_PATIENCE = {"BYOK_THROTTLE_WAIT_SECONDS": "0"}
# Azure's waits, shortened: first backoff 50 ms, at most 30 s for the role to apply and deletions to complete.
HARSH = {"BYOK_BACKOFF_BASE_SECONDS": "0.05", "BYOK_RBAC_WAIT_SECONDS": "30", "BYOK_PENDING_WAIT_SECONDS": "30"}
PURGEABLE = {"purge_protection": False}
ALL_HARSH = {"rbac_window_requests": 3, "async_seconds": 0.3}  # and purge protection, the default


@dataclass(frozen=True)
class Scenario:
    """One fault against one operation. Rules may say ``{name}`` (the key) and ``{kek}`` (the KEK's path)."""

    op: str  # create | update-material | update-props | read | delete | delete-purge
    faults: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    expect: str = "ok"  # "ok" or "error" (one clear error, then a rerun converges)
    aes: bool = False  # an AES key on a Managed HSM: no public key, so landed imports are found by version
    behaviour: dict[str, Any] = field(default_factory=dict)  # Behaviour fields while the fault is on

    @property
    def purges(self) -> bool:
        """Whether the operation ends with the key purged (a delete-purge on a vault without purge protection)."""
        return self.op == "delete-purge" and self.behaviour.get("purge_protection", True) is False

    def healthy(self) -> dict[str, Any]:
        """The vault's lasting settings (purge protection, retention) without the transient harsh sides."""
        return {k: v for k, v in self.behaviour.items() if k in ("purge_protection", "retention_days")}


def _slow(rule: str, times: int | None = 1) -> dict[str, Any]:
    return {"delay_seconds": {rule: SLOW}, **({"delay_limit": {rule: times}} if times else {})}


SCENARIOS: dict[str, Scenario] = {
    # create: the import (PUT) and the reads around it
    "create/429-put": Scenario("create", {"fail_429": {"PUT /keys/{name}": 1}}),
    "create/429-put-exhausted": Scenario("create", {"fail_429": {"PUT /keys/{name}": 2}}, NO_THROTTLE_PATIENCE,
                                         "error"),
    "create/429-put-no-retry-after-3x": Scenario("create", {"fail_429": {"PUT /keys/{name}": 3}}),
    "create/429-put-with-retry-after": Scenario("create", {"fail_429": {"PUT /keys/{name}": 1}, "retry_after": True}),
    "create/429-get-kek": Scenario("create", {"fail_429": {"GET {kek}": 2}}),
    "create/429-get-key": Scenario("create", {"fail_429": {"GET /keys/{name}": 1}}),
    "create/500-put": Scenario("create", {"fail_500": {"PUT /keys/{name}": 1}}),
    "create/500-put-exhausted": Scenario("create", {"fail_500": {"PUT /keys/{name}": 2}}, TWO_ATTEMPTS, "error"),
    "create/500-get-kek": Scenario("create", {"fail_500": {"GET {kek}": 1}}),
    "create/drop-before-commit": Scenario("create", {"drop_before_commit": 1}),
    "create/drop-before-commit-exhausted": Scenario("create", {"drop_before_commit": 2}, TWO_ATTEMPTS, "error"),
    "create/drop-after-commit": Scenario("create", {"drop_after_commit": 1}),
    "create/drop-after-commit-every-time": Scenario("create", {"drop_after_commit": 4}),
    "create/slow-put": Scenario("create", _slow("PUT /keys/{name}", None), FAST_TIMEOUT),
    "create/slow-put-and-slow-check": Scenario("create", {
        "delay_seconds": {"PUT /keys/{name}": SLOW, "GET /keys/{name}": SLOW},
        "delay_limit": {"GET /keys/{name}": 1}}, FAST_TIMEOUT),
    "create-aes/500-put": Scenario("create", {"fail_500": {"PUT /keys/{name}": 1}}, aes=True),
    "create-aes/drop-after-commit": Scenario("create", {"drop_after_commit": 1}, aes=True),
    "create-aes/slow-put": Scenario("create", _slow("PUT /keys/{name}", None), FAST_TIMEOUT, aes=True),
    # update: new material is a new version (an import); other properties are a PATCH
    "update-material/429-put": Scenario("update-material", {"fail_429": {"PUT /keys/{name}": 1}}),
    "update-material/500-put": Scenario("update-material", {"fail_500": {"PUT /keys/{name}": 1}}),
    "update-material/drop-before-commit": Scenario("update-material", {"drop_before_commit": 1}),
    "update-material/drop-after-commit": Scenario("update-material", {"drop_after_commit": 1}),
    "update-material/slow-put": Scenario("update-material", _slow("PUT /keys/{name}", None), FAST_TIMEOUT),
    "update-material-aes/500-put": Scenario("update-material", {"fail_500": {"PUT /keys/{name}": 1}}, aes=True),
    "update-material-aes/drop-after-commit": Scenario("update-material", {"drop_after_commit": 1}, aes=True),
    "update-material-aes/slow-put": Scenario("update-material", _slow("PUT /keys/{name}", None), FAST_TIMEOUT,
                                             aes=True),
    "update-props/429-patch": Scenario("update-props", {"fail_429": {"PATCH /keys/{name}": 1}}),
    "update-props/500-patch": Scenario("update-props", {"fail_500": {"PATCH /keys/{name}": 1}}),
    "update-props/slow-patch-once": Scenario("update-props", _slow("PATCH /keys/{name}"), FAST_TIMEOUT),
    "update-props/slow-patch-always": Scenario("update-props", _slow("PATCH /keys/{name}", None), FAST_TIMEOUT),
    # read (refresh)
    "read/429-get": Scenario("read", {"fail_429": {"GET /keys/{name}": 1}}),
    "read/500-get": Scenario("read", {"fail_500": {"GET /keys/{name}": 1}}),
    "read/slow-get-once": Scenario("read", _slow("GET /keys/{name}"), FAST_TIMEOUT),
    # delete: soft delete, and soft delete + purge
    "delete/429-delete": Scenario("delete", {"fail_429": {"DELETE /keys/{name}": 1}}),
    "delete/500-delete": Scenario("delete", {"fail_500": {"DELETE /keys/{name}": 1}}),
    "delete/slow-delete-once": Scenario("delete", _slow("DELETE /keys/{name}"), FAST_TIMEOUT),
    "delete-purge/429-purge": Scenario("delete-purge", {"fail_429": {"DELETE /deletedkeys/{name}": 1}},
                                       behaviour=PURGEABLE),
    "delete-purge/500-purge": Scenario("delete-purge", {"fail_500": {"DELETE /deletedkeys/{name}": 1}},
                                       behaviour=PURGEABLE),
    "delete-purge/slow-delete-once": Scenario("delete-purge", _slow("DELETE /keys/{name}"), FAST_TIMEOUT,
                                              behaviour=PURGEABLE),
    "delete-purge/slow-purge-once": Scenario("delete-purge", _slow("DELETE /deletedkeys/{name}"), FAST_TIMEOUT,
                                             behaviour=PURGEABLE),
    # Azure's harsh side (behaviour.py), alone and all together
    "create/rbac-window": Scenario("create", {}, HARSH, behaviour={"rbac_window_requests": 3}),
    "update-material/rbac-window": Scenario("update-material", {}, HARSH, behaviour={"rbac_window_requests": 3}),
    "update-props/rbac-window": Scenario("update-props", {}, HARSH, behaviour={"rbac_window_requests": 3}),
    "read/rbac-window": Scenario("read", {}, HARSH, behaviour={"rbac_window_requests": 2}),
    "delete/rbac-window": Scenario("delete", {}, HARSH, behaviour={"rbac_window_requests": 3}),
    "delete/async": Scenario("delete", {}, HARSH, behaviour={"async_seconds": 0.3}),
    "delete-purge/async": Scenario("delete-purge", {}, HARSH, behaviour={"async_seconds": 0.3, **PURGEABLE}),
    "delete-purge/purge-protected": Scenario("delete-purge", {}, HARSH),
    "create/all-harsh": Scenario("create", {"fail_429": {"PUT /keys/{name}": 2, "GET {kek}": 1}}, HARSH,
                                 behaviour=ALL_HARSH),
    "update-material/all-harsh": Scenario("update-material", {"fail_429": {"PUT /keys/{name}": 2}}, HARSH,
                                          behaviour=ALL_HARSH),
    "delete-purge/all-harsh": Scenario("delete-purge", {"fail_429": {"DELETE /keys/{name}": 1}}, HARSH,
                                       behaviour=ALL_HARSH),
}


class Template:
    """A vault data dir holding a KEK, copied for each scenario: every scenario gets a vault of its own (so they
    run at the same time) that shares the CA, the tokens and the KEK's version, hence one BYOK_* environment."""

    def __init__(self, root: Path) -> None:
        self.root = root
        vault = start_vault(root / "template")
        try:
            self.kek_version = make_kek(vault).rsplit("/", 1)[1]
        finally:
            vault.stop()
        self.ca_cert, self.token_file = vault.ca_cert, vault.token_file
        self.readonly_token_file = vault.readonly_token_file

    def vault(self, scenario_id: str, sku: str, behaviour: dict[str, Any]) -> "LocalVault":
        data = self.root / scenario_id.replace("/", "_")
        shutil.copytree(self.root / "template", data)
        return start_vault(data, sku=sku, behaviour=behaviour)

    def kek_id(self, vault: "LocalVault") -> str:
        return f"{vault.vault_url}/keys/kek/{self.kek_version}"


def _format(value: Any, **names: str) -> Any:
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, dict):
        return {_format(k, **names): _format(v, **names) for k, v in value.items()}
    return value


def _disagreements(outs: dict[str, Any], vk: vault_adapter.VaultKey, *, aes: bool) -> list[str]:
    """Where the returned state differs from what the vault holds for the key's current version."""
    wanted = {"kid": vk.kid, "version": vk.version, "enabled": vk.enabled, "key_ops": sorted(vk.key_ops),
              "tags": ownership.user_tags(vk.tags), "owner": vk.tags.get(ownership.OWNER_TAG)}
    if not aes:
        wanted["fingerprint"] = vk.fingerprint
    got = {k: outs.get(k, {} if k == "tags" else None) for k in wanted}
    got["key_ops"] = sorted(got["key_ops"] or [])
    return [f"{k}: state {got[k]!r}, vault {wanted[k]!r}" for k in wanted if got[k] != wanted[k]]


class Run:
    """One scenario on its own vault: the key, its declared inputs, the provider calls the engine would make."""

    def __init__(self, scenario_id: str, template: Template, keys: dict[str, KeyFiles]) -> None:
        self.id, self.scenario = scenario_id, SCENARIOS[scenario_id]
        self.sku = "managedhsm" if self.scenario.aes else "premium"
        self.vault = template.vault(scenario_id, self.sku, self.scenario.healthy())
        self.kek_id = template.kek_id(self.vault)
        self.provider = ByokKeyProvider()
        self.name = f"f-{secrets.token_hex(4)}"
        self.declared = {"vault_url": self.vault.vault_url, "key_name": self.name, "kek_id": self.kek_id,
                         "key_file": keys["aes" if self.scenario.aes else "ec"].private,
                         "purge_on_delete": self.scenario.op == "delete-purge"}
        self.inputs = self.checked(self.declared)
        self.outs: dict[str, Any] = {}
        if self.scenario.op == "update-material":
            new_key = keys["aes2" if self.scenario.aes else "ec2"].private
            self.new_inputs = self.checked({**self.declared, "key_file": new_key})
        elif self.scenario.op == "update-props":
            self.new_inputs = self.checked({**self.declared, "enabled": False, "tags": {"env": "hostile"},
                                            "key_ops": ["sign"]})
        else:
            self.new_inputs = self.inputs
        self.problems: list[str] = []
        self.injected: dict[str, int] = {}

    def checked(self, news: dict[str, Any]) -> dict[str, Any]:
        result = self.provider.check({}, news)
        assert [(f.property, f.reason) for f in result.failures] == []
        return result.inputs

    def create(self) -> dict[str, Any]:
        created = self.provider.create(self.inputs)
        assert created.id == f"{self.vault.vault_url}/keys/{self.name}"
        return dict(created.outs)

    def act(self) -> dict[str, Any] | None:
        """The operation under test; returns the new state (None after a delete)."""
        op, key_id = self.scenario.op, f"{self.vault.vault_url}/keys/{self.name}"
        if op == "create":
            return self.create()
        if op.startswith("update"):
            return dict(self.provider.update(key_id, self.outs, self.new_inputs).outs)
        if op == "read":
            read = self.provider.read(key_id, self.outs)
            assert read.id == key_id
            return dict(read.outs)
        self.provider.delete(key_id, self.outs)
        return None

    @property
    def expected_versions(self) -> int:
        return {"update-material": 2}.get(self.scenario.op, 0 if self.scenario.op.startswith("delete") else 1)

    # --- the three phases: a healthy start, the faulty operation, the look behind and the rerun -----------------
    def prepare(self) -> None:
        if self.scenario.op != "create":
            self.outs = self.create()  # on a healthy vault: the starting state
        kek_path = "/keys/" + self.kek_id.split("/keys/", 1)[1]
        self.vault = restart_with(self.vault, behaviour=self.scenario.behaviour,
                                  **_format(self.scenario.faults, name=self.name, kek=kek_path))

    def fault(self) -> None:
        try:
            self.state, self.outcome, self.error = self.act(), "ok", None
        except ByokError as exc:
            self.state, self.outcome, self.error = None, "one clear error", exc
        self.injected = {**self.vault.faults_injected, **self.vault.harsh_answers}
        if self.scenario.op == "delete-purge" and not self.scenario.purges and self.outcome == "ok":
            # purge protection was at work when the vault reported the deleted key as not purgeable
            level = make_key_client(self.vault).get_deleted_key(self.name).properties.recovery_level
            self.injected["purge_protected"] += level == "Recoverable"
        self.vault = restart_with(self.vault, behaviour=self.scenario.healthy())  # healthy again

    def verify(self, secret_set: SecretSet) -> None:
        """Look behind the provider with the SDK; rerun on an error, and again as if the state had been lost."""
        scenario, problems = self.scenario, self.problems
        client = make_key_client(self.vault)
        if not sum(self.injected.values()):
            problems.append(f"no fault was injected ({scenario.faults})")
        if self.outcome != ("ok" if scenario.expect == "ok" else "one clear error"):
            problems.append(f"expected {scenario.expect}, got {self.outcome}: {self.error}")
        if self.error is not None:
            problems += clear_error_problems(str(self.error), names=(self.name,), secret_set=secret_set)
        held = versions(client, self.name)
        self.duplicates = max(0, held - max(self.expected_versions, 1))
        if self.outcome == "ok":
            if held != self.expected_versions:
                problems.append(f"{held} versions, expected {self.expected_versions}")
            disagreements = self.state_vs_vault(self.state, client)
        else:  # the engine keeps the old state, and the next `pulumi up` calls the same method again
            state = self.act()
            held = versions(client, self.name)
            self.duplicates = max(self.duplicates, held - self.expected_versions)
            if held != self.expected_versions:
                problems.append(f"after the rerun: {held} versions, expected {self.expected_versions}")
            disagreements = [f"after the rerun: {d}" for d in self.state_vs_vault(state, client)]
        if scenario.op in ("create", "update-material"):  # the new state was lost (a crash): the same call adopts
            adopted = self.act()
            if versions(client, self.name) != self.expected_versions:
                problems.append(f"run again from the old state, it made version {versions(client, self.name)}")
            disagreements += [f"after adopting: {d}" for d in self.state_vs_vault(adopted, client)]
        problems += disagreements
        self.disagreements = len(disagreements)

    def state_vs_vault(self, state: dict[str, Any] | None, client: Any) -> list[str]:
        vk = vault_adapter.get_key(client, self.name)
        if self.scenario.op.startswith("delete"):
            problems = [] if vk is None else ["the key is still live after a successful delete"]
            deleted = vault_adapter.is_deleted(client, self.name)
            if deleted == self.scenario.purges:
                problems.append("purged" if not deleted else "soft-deleted but not purged")
            return problems
        if vk is None or state is None:
            return [f"no key in the vault ({vk}) or no state ({state is None})"]
        problems = _disagreements(state, vk, aes=self.scenario.aes)
        if self.scenario.op == "update-props" and (vk.enabled, ownership.user_tags(vk.tags), list(vk.key_ops)) != (
                False, {"env": "hostile"}, ["sign"]):
            problems.append(f"the vault did not get the new properties: {vk.enabled}, {vk.tags}, {vk.key_ops}")
        return problems


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, KeyFiles],
             secret_set: SecretSet) -> Iterator[dict[str, Run]]:
    """Every scenario, run in waves (one per BYOK_* environment); the scenarios of a wave run at the same time."""
    template = Template(tmp_path_factory.mktemp("fault-vaults"))
    secrets_ = copy.deepcopy(secret_set)
    for path in (template.token_file, template.readonly_token_file):
        secrets_.add_token(f"token:{Path(path).name}", Path(path).read_text().strip())
    runs: dict[str, Run] = {}
    waves: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for scenario_id, scenario in SCENARIOS.items():
        waves.setdefault(tuple(sorted(scenario.env.items())), []).append(scenario_id)
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("BYOK_CA_BUNDLE", template.ca_cert)
            env.setenv("BYOK_ACCESS_TOKEN_FILE", template.token_file)
            env.setenv("BYOK_RBAC_WAIT_SECONDS", "0")
            for wave_env, ids in waves.items():
                wave = [Run(i, template, keys) for i in ids]
                runs.update((run.id, run) for run in wave)
                with ThreadPoolExecutor(max_workers=len(wave)) as pool:
                    list(pool.map(Run.prepare, wave))
                    for name, value in wave_env:
                        env.setenv(name, value)
                    list(pool.map(Run.fault, wave))
                    for name, _ in wave_env:
                        env.delenv(name)
                    list(pool.map(lambda run: run.verify(secrets_), wave))
        for run in runs.values():
            FIGURES.fault(run.injected, run.outcome, clean=not run.problems, duplicates=run.duplicates,
                          disagreements=run.disagreements)
        yield runs
    finally:
        for run in runs.values():
            run.vault.stop()


@pytest.mark.parametrize("scenario_id", list(SCENARIOS))
def test_fault(scenario_id: str, outcomes: dict[str, Run]) -> None:
    run = outcomes[scenario_id]
    assert not run.problems, run.problems


# --- 429s at Key Vault-like rates, many creates at once ----------------------------------------------------
@pytest.mark.parametrize("retry_after", [False, True], ids=["no-retry-after", "retry-after"])
def test_creates_throttled_at_key_vault_rates(tmp_path: Path, use_vault: Callable[..., Any],
                                              operator: Callable[..., Any], keys: dict[str, KeyFiles],
                                              monkeypatch: pytest.MonkeyPatch, retry_after: bool) -> None:
    """15 creates at once against 10 HSM creates per window (Key Vault's limit), the 429s without Retry-After
    as Azure may send them (vcsjones/AzureSignTool#219: the client backs off exponentially) or with it.

    The window is shortened from 10 s to 5 s to keep the suite fast (the vault's Retry-After is then at most
    5 s), yet long enough that 15 creates land in one window on a loaded machine too.
    """
    from tests.conftest import ec_key
    from tests.hostile.conftest import write_key

    monkeypatch.setattr(fault_rules, "WINDOW_SECONDS", 5.0)
    vault = start_vault(tmp_path / "vault")
    try:
        kek_id = make_kek(vault)
        vault = restart_with(vault, rate_limit_writes_per_10s=10, retry_after=retry_after)
        use_vault(vault, BYOK_BACKOFF_BASE_SECONDS="0.2")
        provider = ByokKeyProvider()
        files = [write_key(tmp_path, f"t{i}", ec_key("P-256", 700 + i)) for i in range(15)]

        def create(i: int) -> tuple[str, dict[str, Any] | str]:
            name = f"throttled-{i}"
            checked = provider.check({}, {"vault_url": vault.vault_url, "key_name": name, "kek_id": kek_id,
                                          "key_file": files[i].private})
            try:
                return name, dict(provider.create(checked.inputs).outs)
            except ByokError as exc:
                return name, str(exc)

        with ThreadPoolExecutor(max_workers=15) as pool:
            results = list(pool.map(create, range(15)))
        injected = vault.faults_injected
        client = operator(vault)
        problems = [f"{name}: {outs}" for name, outs in results if isinstance(outs, str)]
        held = {name: versions(client, name) for name, _ in results}
        problems += [f"{name}: {n} versions" for name, n in held.items() if n != 1]
        disagreements = [f"{name}: {d}" for name, outs in results if isinstance(outs, dict)
                         for d in _disagreements(outs, vault_adapter.get_key(client, name), aes=False)]
        if not injected["throttled"]:
            problems.append("no 429 was sent")
        FIGURES.fault(injected, "ok" if not problems else "one clear error",
                      clean=not problems and not disagreements, duplicates=sum(max(0, n - 1) for n in held.values()),
                      disagreements=len(disagreements))
        assert not problems + disagreements
    finally:
        vault.stop()


# --- the provider process killed while the vault commits the import ---------------------------------------
def test_create_killed_mid_import_then_rerun_adopts(tmp_path: Path, operator: Callable[..., Any],
                                                    keys: dict[str, KeyFiles], secret_set: SecretSet) -> None:
    """`pulumi up` dies (SIGKILL) after the vault stored the import but before it answered; the next up adopts.

    The provider runs as the engine runs it (python -m pulumi.dynamic over gRPC). The vault holds the PUT's
    response back; we wait until the operator's SDK sees the version, then kill the host.
    """
    import grpc
    from pulumi.dynamic.dynamic import serialize_provider

    from tests.provider.grpc_host import ProviderHost, plain

    vault = start_vault(tmp_path / "vault")
    try:
        kek_id = make_kek(vault)
        name = "killed-mid-import"
        vault = restart_with(vault, delay_seconds={f"PUT /keys/{name}": 60.0}, delay_limit={f"PUT /keys/{name}": 1})
        env = {"BYOK_CA_BUNDLE": vault.ca_cert, "BYOK_ACCESS_TOKEN_FILE": vault.token_file,
               "BYOK_RBAC_WAIT_SECONDS": "0"}
        news = {"vault_url": vault.vault_url, "key_name": name, "kek_id": kek_id, "key_file": keys["ec"].private,
                "__provider": serialize_provider(ByokKeyProvider())}
        client = operator(vault)

        host = ProviderHost(env)
        try:
            host.configure()
            inputs = plain(host.check({}, news).inputs)
            pending = host.stub.Create.future(_create_request(inputs))
            _wait_until(lambda: versions(client, name) == 1 or pending.done(), what="the import to be stored")
            assert not pending.done(), "the create answered although the vault held its response back"
            host.process.send_signal(signal.SIGKILL)
            host.process.wait()
            with pytest.raises(grpc.RpcError):
                pending.result(timeout=30)
        finally:
            stderr = host.close()
        injected = vault.faults_injected
        vault = restart_with(vault)  # healthy, same data
        assert versions(client, name) == 1  # the crashed create's version is there, and Pulumi has no state

        host = ProviderHost(env)
        try:
            host.configure()
            created = host.create(inputs)
            outs = plain(created.properties)
        finally:
            stderr += host.close()
        problems = _disagreements(outs, vault_adapter.get_key(client, name), aes=False)
        held = versions(client, name)
        leaked = find_in(stderr, add_tokens(secret_set, vault))
        FIGURES.fault(injected, "ok", clean=held == 1 and not problems and not leaked, duplicates=held - 1,
                      disagreements=len(problems))
        assert created.id == f"{vault.vault_url}/keys/{name}"
        assert held == 1, "the rerun imported a duplicate version"
        assert not problems and not leaked
    finally:
        vault.stop()


def find_in(text: str, secret_set: SecretSet) -> list[str]:
    from tests.hostile.conftest import scan
    return scan(text, secret_set)


def _create_request(inputs: dict[str, Any]) -> Any:
    from pulumi.runtime.proto import provider_pb2

    from tests.provider.grpc_host import _URN, struct
    return provider_pb2.CreateRequest(urn=_URN, properties=struct(inputs))


def _wait_until(condition: Callable[[], bool], *, what: str, timeout: float = 30.0) -> None:
    """Poll a condition on the vault (a readiness wait, bounded), not a blind sleep."""
    import threading
    import time

    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f}s for {what}")
        tick.wait(0.02)


# --- the bearer token rotated under a long-lived provider process ------------------------------------------
def test_a_rotated_token_is_picked_up_without_a_restart(tmp_path: Path, use_vault: Callable[..., Any],
                                                        keys: dict[str, KeyFiles], secret_set: SecretSet) -> None:
    """The provider process keeps its vault clients (and their cached token) between calls. When the token in
    BYOK_ACCESS_TOKEN_FILE is replaced, the next call works; while the file holds a stale token, the call fails
    with one clear line; the state never changes meanwhile."""
    vault = start_vault(tmp_path / "vault")
    token_file = tmp_path / "token"
    try:
        kek_id = make_kek(vault)
        token_file.write_text(Path(vault.token_file).read_text())
        use_vault(vault, BYOK_ACCESS_TOKEN_FILE=str(token_file))
        provider = ByokKeyProvider()
        inputs = provider.check({}, {"vault_url": vault.vault_url, "key_name": "rotated", "kek_id": kek_id,
                                     "key_file": keys["ec"].private}).inputs
        created = provider.create(inputs)

        def rotate() -> "LocalVault":
            vault.stop()
            Path(vault.token_file).unlink()  # the vault makes a new token when it starts
            return start_vault(vault.data_dir, port=vault.port)

        vault = rotate()
        with pytest.raises(ByokError) as info:  # the file still holds the old token
            provider.read(created.id, created.outs)
        problems = clear_error_problems(str(info.value), names=("rotated",), secret_set=add_tokens(secret_set, vault))
        token_file.write_text(Path(vault.token_file).read_text())  # the token is renewed in the file
        read = provider.read(created.id, created.outs)
        updated = provider.update(created.id, read.outs, {**inputs, "tags": {"after": "rotation"}})
        held = versions(make_key_client(vault), "rotated")
        problems += _disagreements(dict(updated.outs), vault_adapter.get_key(make_key_client(vault), "rotated"),
                                   aes=False)
        FIGURES.fault({"token_rotated": 2}, "ok", clean=not problems and held == 1, duplicates=held - 1,
                      disagreements=len(problems))
        assert read.id == created.id and held == 1 and not problems, problems
    finally:
        vault.stop()
