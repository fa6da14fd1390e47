"""The engine's step sequences replayed over gRPC (tests/provider/engine.py), then the vault inspected with the SDK.

One program: a ``DataPlaneKek`` and a ``ByokKey`` whose ``kek_id`` is the KEK's ``kid`` output, both served by one
``python -m pulumi.dynamic`` started the engine's way (the project's venv python, the project root as working
directory, no PYTHONPATH); one more run from another directory with the package pip-installed into its own venv.
Each test asserts the exact RPCs the engine makes and what the vault holds afterwards; docs/engine-sequences.md
tabulates them (sequence, calls, vault afterwards).
"""

from __future__ import annotations

import copy
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
from pulumi.dynamic.dynamic import serialize_provider

from byok_component.kek import DataPlaneKekProvider
from byok_component.provider import ByokKeyProvider
from tests.provider.conftest import KeyFiles, with_tokens
from tests.provider.engine import Engine, EngineError, Goal, Ref, Secret
from tests.provider.grpc_host import ROOT, ProviderHost, project_python
from tests.provider.vaultstate import aes_holds, held, public_of
from tests.secretscan import SecretSet, assert_no_secrets

KEK_TYPE = "pulumi-python:dynamic/byok:Kek"
KEY_TYPE = "pulumi-python:dynamic/byok:ByokKey"
KEK_PROVIDER = serialize_provider(DataPlaneKekProvider())
KEY_PROVIDER = serialize_provider(ByokKeyProvider())


def host_env(vault: Any) -> dict[str, str]:
    return {"BYOK_CA_BUNDLE": vault.ca_cert, "BYOK_ACCESS_TOKEN_FILE": vault.token_file, "BYOK_RBAC_WAIT_SECONDS": "0"}


@pytest.fixture(scope="module")
def everything(secret_set: SecretSet, premium_vault: Any) -> SecretSet:
    return with_tokens(copy.deepcopy(secret_set), premium_vault)


@pytest.fixture(scope="module")
def host(premium_vault: Any, everything: SecretSet) -> Iterator[ProviderHost]:
    process = ProviderHost(host_env(premium_vault))
    try:
        assert process.configure({}).acceptSecrets is False
        yield process
    finally:
        assert_no_secrets(process.close(), everything, "the provider host's stderr")


@pytest.fixture
def engine(host: ProviderHost) -> Engine:
    return Engine(host)


class Program:
    """The stack's program: a KEK and a key in the premium vault, with unique names per test."""

    def __init__(self, vault: Any, key: KeyFiles, *, kek_name: str | None = None, key_name: str | None = None,
                 purge: bool = True) -> None:
        tag = secrets.token_hex(3)
        self.vault, self.key = vault, key
        self.kek_name = kek_name or f"KEKforBYOK-{tag}"
        self.key_name = key_name or f"Replay-{tag}"
        self.purge = purge

    def goals(self, *, kek: dict[str, Any] | None = None, key: dict[str, Any] | None = None,
              key_options: dict[str, Any] | None = None, kek_options: dict[str, Any] | None = None) -> list[Goal]:
        kek_props = {"vault_url": self.vault.vault_url, "key_name": self.kek_name, "key_size": 2048,
                     "purge_on_delete": self.purge, "__provider": KEK_PROVIDER, **(kek or {})}
        key_props: dict[str, Any] = {"vault_url": self.vault.vault_url, "key_name": self.key_name,
                                     "kek_id": Ref("kek", "kid"), "key_file": self.key.private,
                                     "purge_on_delete": self.purge, "__provider": KEY_PROVIDER}
        if self.key.password:
            key_props["key_password"] = Secret(self.key.password)
        key_props.update(key or {})
        return [Goal(KEK_TYPE, "kek", kek_props, **(kek_options or {})),
                Goal(KEY_TYPE, "key", {k: v for k, v in key_props.items() if v is not None}, **(key_options or {}))]


def declared_and_live(kv: Any, program: Program, engine: Engine, *, versions: int = 1) -> None:
    """The declared key and KEK are live, enabled, hold the declared material and carry the state's marker."""
    key, kek = held(kv, program.key_name), held(kv, program.kek_name)
    assert key.live and key.enabled and key.public == public_of(program.key.private, program.key.password)
    assert key.versions == versions and key.owner == engine.state["key"].outputs["owner"]
    assert kek.live and kek.enabled and kek.owner == engine.state["kek"].outputs.get("owner")  # None: older state
    assert engine.state["key"].outputs["kid"].endswith(key.version)


def rpcs(engine: Engine, since: int) -> list[str]:
    return engine.calls[since:]


# --- preview ---------------------------------------------------------------------------------------------------
def test_preview_of_a_new_stack_calls_check_only(engine, premium_vault, keys, sdk) -> None:
    program = Program(premium_vault, keys["ec"])
    steps = engine.preview(program.goals())
    assert steps == ["create kek", "create key"]
    assert engine.calls == ["Check kek", "Check key"]  # the key's kek_id is unknown: the KEK does not exist yet
    assert engine.state == {}
    assert not held(sdk(premium_vault), program.kek_name).live and not held(sdk(premium_vault), program.key_name).live


def test_up_then_same_steps_keep_the_old_outputs(engine, premium_vault, keys, sdk, tmp_path) -> None:
    program = Program(premium_vault, keys["ec"])
    assert engine.up(program.goals()) == ["create kek", "create key"]
    assert engine.calls == ["Check kek", "Create kek", "Check key", "Create key"]
    declared_and_live(sdk(premium_vault), program, engine)
    created = copy.deepcopy(engine.state["key"].outputs)
    moved = tmp_path / "moved.pem"
    shutil.copy(keys["ec"].private, moved)
    start = len(engine.calls)
    assert engine.up(program.goals(key={"key_file": str(moved)})) == ["same kek", "same key"]
    assert rpcs(engine, start) == ["Check kek", "Diff kek", "Check key", "Diff key"]
    # SameStep.Apply: the new inputs are stored, the old outputs kept.
    assert engine.state["key"].inputs["key_file"] == str(moved)
    assert engine.state["key"].outputs == created
    declared_and_live(sdk(premium_vault), program, engine)


def test_preview_of_an_update_and_of_a_replacement(engine, premium_vault, keys, sdk) -> None:
    program = Program(premium_vault, keys["ec"])
    engine.up(program.goals())
    before = held(sdk(premium_vault), program.key_name)
    start = len(engine.calls)
    assert engine.preview(program.goals(key={"tags": {"env": "prod"}})) == ["same kek", "update key"]
    assert rpcs(engine, start) == ["Check kek", "Diff kek", "Check key", "Diff key"]
    start = len(engine.calls)
    renamed = program.goals(key={"key_name": program.key_name + "-b"})
    assert engine.preview(renamed) == ["same kek", "create-replacement key", "delete-replaced key"]
    # The second Check, without olds, and neither Create nor Delete.
    assert rpcs(engine, start) == ["Check kek", "Diff kek", "Check key", "Diff key", "Check key"]
    start = len(engine.calls)
    # A new KEK size: the KEK updates, so the key's kek_id is unknown in the preview; Diff sees it and plans nothing.
    assert engine.preview(program.goals(kek={"key_size": 3072})) == ["update kek", "same key"]
    assert rpcs(engine, start) == ["Check kek", "Diff kek", "Check key", "Diff key"]
    after = held(sdk(premium_vault), program.key_name)
    assert after == before and not held(sdk(premium_vault), program.key_name + "-b").live


def test_up_with_changed_properties_updates_in_place(engine, premium_vault, keys, sdk) -> None:
    program = Program(premium_vault, keys["ec"])
    engine.up(program.goals())
    start = len(engine.calls)
    assert engine.up(program.goals(key={"tags": {"env": "prod"}})) == ["same kek", "update key"]
    assert rpcs(engine, start) == ["Check kek", "Diff kek", "Check key", "Diff key", "Update key"]
    declared_and_live(sdk(premium_vault), program, engine)
    assert held(sdk(premium_vault), program.key_name).tags == {"env": "prod",
                                                               "byok-owner": engine.state["key"].outputs["owner"]}
    assert engine.state["key"].outputs["tags"] == {"env": "prod"}


# --- replacement ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["--replace", "taint"])
def test_replace_of_the_key_keeps_it(engine, host, premium_vault, keys, sdk, how: str) -> None:
    program = Program(premium_vault, keys["rsa"])  # purge_on_delete: the old delete would purge it
    engine.up(program.goals())
    old_owner = engine.state["key"].outputs["owner"]
    start = len(engine.calls)
    if how == "taint":
        engine.taint("key")
        steps = engine.up(program.goals())
    else:
        steps = engine.up(program.goals(), replace=["key"])
    assert steps == ["same kek", "create-replacement key", "delete-replaced key"]
    assert rpcs(engine, start) == ["Check kek", "Diff kek", "Check key", "Create key", "Delete key"]  # no Diff
    declared_and_live(sdk(premium_vault), program, engine)
    assert engine.state["key"].outputs["owner"] != old_owner
    assert "left in the vault" in host.stderr()


def test_replace_of_the_kek_keeps_it(engine, premium_vault, keys, sdk) -> None:
    program = Program(premium_vault, keys["ec"])
    engine.up(program.goals())
    version = engine.state["kek"].outputs["version"]
    start = len(engine.calls)
    steps = engine.up(program.goals(), replace=["kek"])
    assert steps == ["create-replacement kek", "same key", "delete-replaced kek"]
    assert rpcs(engine, start) == ["Check kek", "Create kek", "Check key", "Diff key", "Delete kek"]
    declared_and_live(sdk(premium_vault), program, engine)
    assert held(sdk(premium_vault), program.kek_name).version == version  # adopted, not a new KEK version


def test_replace_cascade_keeps_both(engine, premium_vault, keys, sdk) -> None:
    """The key is declared replaceWith the KEK: replacing the KEK replaces the key too, Diff never asked."""
    program = Program(premium_vault, keys["ec"])
    options = {"replace_with": ("kek",)}
    engine.up(program.goals(key_options=options))
    start = len(engine.calls)
    steps = engine.up(program.goals(key_options=options), replace=["kek"])
    assert steps == ["create-replacement kek", "create-replacement key", "delete-replaced key", "delete-replaced kek"]
    assert rpcs(engine, start) == ["Check kek", "Create kek", "Check key", "Check key", "Create key", "Delete key",
                                   "Delete kek"]
    declared_and_live(sdk(premium_vault), program, engine)


@pytest.mark.parametrize("purge", [False, True])
def test_delete_before_replace_option(engine, premium_vault, keys, sdk, purge: bool) -> None:
    """``deleteBeforeReplace: true`` on both + ``--replace``: Delete first, then Create. The soft-deleted key holds
    the declared material, so the create recovers it (versions kept); a purged one is imported again."""
    program = Program(premium_vault, keys["ec"], purge=purge)
    options = {"delete_before_replace": True}
    engine.up(program.goals(key_options=options, kek_options=options))
    start = len(engine.calls)
    steps = engine.up(program.goals(key_options=options, kek_options=options), replace=["kek", "key"])
    assert steps == ["delete-replaced kek", "create-replacement kek", "delete-replaced key", "create-replacement key"]
    # The key's Diff with kek_id unknown (calculateDependentReplacements) says no replacement: it is not deleted first.
    assert rpcs(engine, start) == ["Check kek", "Diff key", "Delete kek", "Create kek", "Check key", "Delete key",
                                   "Create key"]
    declared_and_live(sdk(premium_vault), program, engine)


def test_replacement_to_another_name_removes_the_old_key(engine, premium_vault, keys, sdk) -> None:
    program = Program(premium_vault, keys["ec"])
    engine.up(program.goals())
    old_name = program.key_name
    program.key_name = old_name + "-b"
    start = len(engine.calls)
    assert engine.up(program.goals()) == ["same kek", "create-replacement key", "delete-replaced key"]
    assert rpcs(engine, start) == ["Check kek", "Diff kek", "Check key", "Diff key", "Check key", "Create key",
                                   "Delete key"]
    declared_and_live(sdk(premium_vault), program, engine)
    assert held(sdk(premium_vault), old_name).purged


def test_case_only_renames_are_updates(engine, premium_vault, keys, sdk) -> None:
    program = Program(premium_vault, keys["ec"])
    engine.up(program.goals())
    program.kek_name, program.key_name = program.kek_name.lower(), program.key_name.lower()
    start = len(engine.calls)
    assert engine.up(program.goals()) == ["update kek", "update key"]
    assert rpcs(engine, start) == ["Check kek", "Diff kek", "Update kek", "Check key", "Diff key", "Update key"]
    declared_and_live(sdk(premium_vault), program, engine)
    assert engine.state["kek"].outputs["key_name"] == program.kek_name
    engine.destroy()
    assert held(sdk(premium_vault), program.kek_name).purged and held(sdk(premium_vault), program.key_name).purged


def test_a_case_only_rename_that_changes_the_urn(engine, premium_vault, keys, sdk) -> None:
    """ByokVault names a key's resource after the key (f"{name}-{spec.name}"): renaming TestRSAKey -> testrsakey
    changes the URN, so the engine creates the new resource (adopting the same vault key) and deletes the old."""
    program = Program(premium_vault, keys["ec"])
    engine.up(program.goals())
    program.key_name = program.key_name.lower()
    goals = program.goals()
    goals[1] = Goal(goals[1].type, "key-renamed", goals[1].props)
    start = len(engine.calls)
    assert engine.up(goals) == ["same kek", "create key-renamed", "delete key"]
    assert rpcs(engine, start) == ["Check kek", "Diff kek", "Check key-renamed", "Create key-renamed", "Delete key"]
    key = held(sdk(premium_vault), program.key_name)
    assert key.live and key.versions == 1 and key.owner == engine.state["key-renamed"].outputs["owner"]
    assert key.public == public_of(keys["ec"].private)


def test_plain_up_runs_the_preview_pass_first(engine, premium_vault, keys, sdk) -> None:
    program = Program(premium_vault, keys["ec"])
    engine.up(program.goals(), preview_first=True)
    assert engine.calls == ["Check kek", "Check key", "Check kek", "Create kek", "Check key", "Create key"]
    start = len(engine.calls)
    engine.up(program.goals(), replace=["key"], preview_first=True)
    assert rpcs(engine, start) == ["Check kek", "Diff kek", "Check key",  # preview pass: no Create, no Delete
                                   "Check kek", "Diff kek", "Check key", "Create key", "Delete key"]
    declared_and_live(sdk(premium_vault), program, engine)


def test_crash_and_rerun(engine, host, premium_vault, keys, sdk) -> None:
    """A replacement's Create reached the vault but never the state (the CLI died); the rerun replaces again."""
    program = Program(premium_vault, keys["ec"])
    engine.up(program.goals())
    lost = Engine(host, state=copy.deepcopy(engine.state))
    lost.up(program.goals(), replace=["key"])  # this run's state is thrown away: a crash before the checkpoint
    engine.up(program.goals(), replace=["key"])
    declared_and_live(sdk(premium_vault), program, engine)


def test_state_from_an_older_provider(engine, premium_vault, keys, sdk) -> None:
    """Outputs without a marker, a key without one: --replace keeps the key, destroy still removes it."""
    program = Program(premium_vault, keys["ec"])
    engine.up(program.goals())
    for name, vault_name in (("key", program.key_name), ("kek", program.kek_name)):
        engine.state[name].outputs.pop("owner")
        sdk(premium_vault).update_key_properties(vault_name, tags={})
    engine.up(program.goals(), replace=["key"])
    declared_and_live(sdk(premium_vault), program, engine)
    engine.destroy()
    assert held(sdk(premium_vault), program.kek_name).purged and held(sdk(premium_vault), program.key_name).purged


@pytest.fixture(scope="module")
def hsm_host(hsm_vault: Any, everything: SecretSet) -> Iterator[ProviderHost]:
    process = ProviderHost(host_env(hsm_vault))
    try:
        process.configure({})
        yield process
    finally:
        assert_no_secrets(process.close(), with_tokens(copy.deepcopy(everything), hsm_vault), "the HSM host's stderr")


def test_replace_of_an_aes_key_on_a_managed_hsm(hsm_host, hsm_vault, keys, sdk) -> None:
    """An AES key's material is invisible: the replacement's create compares it through the vault's wrapKey."""
    engine, program = Engine(hsm_host), Program(hsm_vault, keys["aes"])
    engine.up(program.goals())
    start = len(engine.calls)
    engine.up(program.goals(), replace=["key"])
    assert rpcs(engine, start) == ["Check kek", "Diff kek", "Check key", "Create key", "Delete key"]
    key, kv = held(sdk(hsm_vault), program.key_name), sdk(hsm_vault)
    assert key.live and key.enabled and key.versions == 1 and key.owner == engine.state["key"].outputs["owner"]
    assert aes_holds(kv, program.key_name, key.version, Path(keys["aes"].private).read_bytes())
    assert not aes_holds(kv, program.key_name, key.version, Path(keys["aes2"].private).read_bytes())  # can say no
    engine.destroy()
    assert held(kv, program.key_name).purged


# --- refresh ---------------------------------------------------------------------------------------------------
def test_refresh_reads_and_its_inputs_replace_the_stored_ones(engine, premium_vault, keys, sdk) -> None:
    program = Program(premium_vault, keys["rsa"])
    engine.up(program.goals(key={"tags": {"env": "prod"}}))
    assert isinstance(engine.state["key"].inputs["key_password"], Secret)
    sdk(premium_vault).update_key_properties(program.key_name, enabled=False, tags={
        "env": "prod", "by": "hand", "byok-owner": engine.state["key"].outputs["owner"]})
    start = len(engine.calls)
    assert engine.refresh() == ["refresh-same kek", "refresh-update key"]
    assert rpcs(engine, start) == ["Read kek", "Read key", "Diff kek", "Diff key"]
    inputs = engine.state["key"].inputs
    assert (inputs["enabled"], inputs["tags"]) == (False, {"env": "prod", "by": "hand"})  # the marker is not drift
    assert "key_password" not in inputs  # replaced wholesale by what Read returned
    start = len(engine.calls)
    assert engine.up(program.goals(key={"tags": {"env": "prod"}})) == ["same kek", "update key"]
    assert rpcs(engine, start)[-1] == "Update key"
    declared_and_live(sdk(premium_vault), program, engine)
    # Plain `pulumi refresh` previews first: the vault is read twice, the state written once.
    start = len(engine.calls)
    assert engine.refresh(preview_first=True) == ["refresh-same kek", "refresh-same key"]
    assert rpcs(engine, start) == ["Read kek", "Read key", "Diff kek", "Diff key"] * 2


def test_preview_with_refresh_reads_the_vault(engine, premium_vault, keys, sdk) -> None:
    program = Program(premium_vault, keys["ec"])
    engine.up(program.goals())
    sdk(premium_vault).begin_delete_key(program.key_name).wait()  # gone out of band
    state, requests = copy.deepcopy(engine.state), premium_vault.request_count
    start = len(engine.calls)
    assert engine.preview(program.goals(), refresh=True) == ["same kek", "create key"]
    assert rpcs(engine, start) == ["Read kek", "Read key", "Diff kek", "Check kek", "Diff kek", "Check key"]
    assert premium_vault.request_count > requests  # a preview that reaches the vault: it needs read access
    assert engine.state.keys() == state.keys()  # nothing persisted


# --- destroy, retainOnDelete, protect --------------------------------------------------------------------------
@pytest.mark.parametrize("purge", [True, False])
def test_destroy_deletes_and_purges_when_asked(engine, premium_vault, keys, sdk, purge: bool) -> None:
    program = Program(premium_vault, keys["ec"], purge=purge)
    engine.up(program.goals())
    start = len(engine.calls)
    assert engine.destroy() == ["delete key", "delete kek"]
    assert rpcs(engine, start) == ["Delete key", "Delete kek"]
    for name in (program.key_name, program.kek_name):
        after = held(sdk(premium_vault), name)
        assert (after.live, after.deleted, after.purged) == (False, not purge, purge)


def test_retain_on_delete_makes_no_delete_call(engine, premium_vault, keys, sdk) -> None:
    program = Program(premium_vault, keys["ec"])
    engine.up(program.goals(key_options={"retain_on_delete": True}))
    start = len(engine.calls)
    assert engine.destroy() == ["delete key (retained)", "delete kek"]
    assert rpcs(engine, start) == ["Delete kek"]
    assert held(sdk(premium_vault), program.key_name).live


def test_protect_refuses_replacement_and_delete(engine, premium_vault, keys, sdk) -> None:
    program = Program(premium_vault, keys["ec"])
    goals = program.goals(key_options={"protect": True})
    engine.up(goals)
    owner = engine.state["key"].outputs["owner"]
    start = len(engine.calls)
    with pytest.raises(EngineError, match="protection"):
        engine.up(goals, replace=["key"])
    assert rpcs(engine, start) == ["Check kek", "Diff kek", "Check key"]
    start = len(engine.calls)
    with pytest.raises(EngineError, match="protected"):
        engine.destroy()
    assert rpcs(engine, start) == []
    assert held(sdk(premium_vault), program.key_name).owner == owner and held(sdk(premium_vault), program.key_name).live


# --- check failures --------------------------------------------------------------------------------------------
def test_a_wrong_password_is_never_printed(engine, premium_vault, keys, sdk, everything) -> None:
    """The engine prints a failing property's value from the program's inputs (pulumi/pulumi#19465)."""
    program = Program(premium_vault, keys["rsa"])
    wrong = "wrong-" + secrets.token_hex(8)
    with pytest.raises(EngineError, match="check errors"):
        engine.up(program.goals(key={"key_password": Secret(wrong)}))
    printed = "\n".join(engine.printed)
    assert "key_password" in printed and wrong not in printed
    assert_no_secrets(printed, everything, "the engine's diagnostics")
    assert not held(sdk(premium_vault), program.key_name).live


# --- the provider host itself ----------------------------------------------------------------------------------
def test_the_host_runs_as_the_engine_starts_it(host) -> None:
    """The project's venv python, ``-u -m pulumi.dynamic``, the project root as working directory, no PYTHONPATH."""
    proc = Path("/proc") / str(host.pid)
    argv = (proc / "cmdline").read_bytes().split(b"\0")[:-1]
    assert [a.decode() for a in argv[1:4]] == ["-u", "-m", "pulumi.dynamic"]
    assert Path(argv[0].decode()) == project_python() == ROOT / "venv" / "bin" / "python"
    assert Path(os.readlink(proc / "cwd")) == ROOT
    environ = dict(item.split(b"=", 1) for item in (proc / "environ").read_bytes().split(b"\0") if b"=" in item)
    assert b"PYTHONPATH" not in environ and environ[b"PULUMI_PROJECT"] == b"byok-component"


def test_a_host_cannot_be_given_a_pythonpath() -> None:
    """The only way to hand the host an environment refuses what the engine never sets."""
    for name in ("PYTHONPATH", "PYTHONHOME"):
        with pytest.raises(ValueError, match=f"{name}: the engine starts a provider host without it"):
            ProviderHost({"BYOK_RBAC_WAIT_SECONDS": "0", name: str(ROOT)})


@pytest.fixture(scope="module")
def installed_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A library user's venv: this package pip-installed (not editable) with its requirements, elsewhere."""
    where = tmp_path_factory.mktemp("user-venv")
    # Built from a copy of the sources, so the build leaves nothing (build/, *.egg-info) in the checkout.
    source = where / "byok-component"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        "venv", ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "try", ".byok-data*"))
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                           "-r", str(source / "requirements.txt"), str(source)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return venv / "bin" / "python"


def test_installed_package_from_another_directory(installed_python, premium_vault, keys, sdk, tmp_path,
                                                  everything) -> None:
    """The program lives elsewhere: the host's working directory holds no byok_component, the venv does."""
    program_dir = tmp_path / "program"
    program_dir.mkdir()
    with ProviderHost(host_env(premium_vault), python=installed_python, cwd=program_dir) as user_host:
        user_host.configure({})
        proc = Path("/proc") / str(user_host.pid)
        assert Path(os.readlink(proc / "cwd")) == program_dir
        assert (proc / "cmdline").read_bytes().split(b"\0")[0].decode() == str(installed_python)
        engine = Engine(user_host)
        program = Program(premium_vault, keys["ec"])
        engine.up(program.goals())
        engine.up(program.goals(), replace=["key", "kek"])
        declared_and_live(sdk(premium_vault), program, engine)
        assert engine.destroy() == ["delete key", "delete kek"]
        assert held(sdk(premium_vault), program.key_name).purged
        where = subprocess.run([str(installed_python), "-c", "import byok_component; print(byok_component.__file__)"],
                               cwd=program_dir, capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
        assert str(installed_python.parent.parent) in where.stdout and str(ROOT) not in where.stdout
        assert_no_secrets(user_host.stderr(), everything, "the installed host's stderr")
