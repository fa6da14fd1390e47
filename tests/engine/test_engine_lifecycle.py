"""The project's local shape (data-plane KEK, TestRSAKey, TestECKey) under the real Pulumi engine.

Each test drives ``pulumi`` as a user does (preview in a PR, up, refresh, up --replace, state taint, destroy)
against a local vault, then looks twice: in the vault with the Key Vault SDK, and in the engine's own state
(``pulumi stack export`` and the checkpoint file). Everything the engine printed, at ``-v=9`` where it
matters, is scanned for private keys, passwords and tokens.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.keyvault.keys import JsonWebKey
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.engine.conftest import Material, write_keys
from tests.engine.project import VERBOSE, EngineProject, rpc_calls
from tests.conftest import PURGEABLE
from tests.secretscan import assert_no_secrets

KEY = "pulumi-python:dynamic/byok:ByokKey"
KEK = "pulumi-python:dynamic/byok:Kek"
KEYS = ("TestRSAKey", "TestECKey")
ALL = (*KEYS, "KEKforBYOK")


# --- what the engine and the vault say --------------------------------------------------------------------
def _b64url_int(value: int, length: int | None = None) -> str:
    raw = value.to_bytes(length or (value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _int(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def thumbprint(public: Any) -> str:
    """RFC 7638 §3 JWK thumbprint of a public key, computed here from the key file's numbers."""
    if isinstance(public, rsa.RSAPublicKey):
        n = public.public_numbers()
        members = {"e": _b64url_int(n.e), "kty": "RSA", "n": _b64url_int(n.n)}
    else:
        n = public.public_numbers()
        members = {"crv": "P-256", "kty": "EC", "x": _b64url_int(n.x, 32), "y": _b64url_int(n.y, 32)}
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


def steps(preview: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``pulumi preview --json`` steps by resource name (the URN's last part)."""
    return {s["urn"].rsplit("::", 1)[1]: s for s in preview.get("steps", [])}


def live(kv: Any, name: str) -> Any:
    """The key's current version in the vault (raises ResourceNotFoundError when it is gone or soft-deleted)."""
    return kv.get_key(name)


def assert_keys_match_files(kv: Any, m: Material) -> None:
    rsa_key, ec_key = live(kv, "TestRSAKey").key, live(kv, "TestECKey").key
    assert rsa_key.kty == "RSA-HSM" and int.from_bytes(rsa_key.n, "big") == m.rsa.public_key().public_numbers().n
    assert ec_key.kty == "EC-HSM" and ec_key.crv == "P-256"
    assert int.from_bytes(ec_key.x, "big") == m.ec.public_key().public_numbers().x


def assert_every_declared_key_live(project: EngineProject, kv: Any) -> None:
    """Every key the stack declares is enabled in the vault at the version the state (and outputs) name."""
    outputs = project.outputs()
    for name in KEYS:
        current = live(kv, name)
        assert current.properties.enabled is True, f"{name} is disabled in the vault"
        assert outputs["kids"][name] == current.id, f"{name}: state says {outputs['kids'][name]}, vault {current.id}"
    kek = live(kv, "KEKforBYOK")
    assert outputs["kekId"] == kek.id and kek.key_operations == ["import"]


def scan_everything(project: EngineProject, m: Material) -> None:
    """State (export and checkpoint file), the stack settings file, and every command's output: no secret."""
    assert_no_secrets(project.export(), m.secrets, "pulumi stack export")
    assert_no_secrets(project.state_file().read_bytes(), m.secrets, "the checkpoint file")
    assert_no_secrets((project.dir / "Pulumi.example-local.yaml").read_text(), m.secrets, "stack settings")
    for run in project.transcript:
        assert_no_secrets(run.output, m.secrets, f"output of pulumi {' '.join(run.args)}")


def deployed(project: EngineProject) -> Material:
    """Keys written, password set as a secret, ``pulumi up`` done."""
    m = write_keys(project)
    project.secret_config(rsaKeyPassword=m.password)
    project.up()
    return m


# --- preview ----------------------------------------------------------------------------------------------
def test_preview_of_a_new_stack_plans_kek_and_keys_reaching_no_vault_and_reading_no_private_key(
        project: EngineProject) -> None:
    """A PR runner holds only the public key files: the plan is complete and the vault sees no request."""
    m = write_keys(project)
    project.secret_config(rsaKeyPassword=m.password)
    project.config(rsaPublicKeyFile="TestRSAKey.pub.pem", ecPublicKeyFile="TestECKey.pub.pem")
    for name in ("TestRSAKey.pem", "TestECKey.pem"):  # no private key on this runner: reading one would fail
        (project.dir / name).unlink()
    before = project.vault.request_count

    plan = project.preview().json()

    assert project.vault.request_count == before, "preview reached the vault"
    by_name = steps(plan)
    assert {n: s["op"] for n, s in by_name.items() if s["newState"]["type"] in (KEY, KEK)} == {
        "byok-kek": "create", "byok-TestRSAKey": "create", "byok-TestECKey": "create"}
    assert plan["changeSummary"] == {"create": 5}  # + the stack and the ByokVault component
    fingerprints = {n: by_name[f"byok-{n}"]["newState"]["inputs"]["fingerprint"] for n in KEYS}  # checked inputs
    assert fingerprints == {"TestRSAKey": thumbprint(m.rsa.public_key()), "TestECKey": thumbprint(m.ec.public_key())}
    scan_everything(project, m)


# --- up ---------------------------------------------------------------------------------------------------
def test_up_imports_the_keys_and_nothing_secret_reaches_state_output_or_debug_logs(
        project: EngineProject, sdk: Any) -> None:
    m = write_keys(project)
    project.secret_config(rsaKeyPassword=m.password)

    run = project.up(*VERBOSE)

    kv = sdk(project.vault)
    assert_keys_match_files(kv, m)
    assert_every_declared_key_live(project, kv)
    kek = live(kv, "KEKforBYOK")
    assert kek.key_type == "RSA-HSM" and len(kek.key.n) * 8 == 4096
    outputs = project.outputs()
    assert outputs["fingerprints"] == {"TestRSAKey": thumbprint(m.rsa.public_key()),
                                       "TestECKey": thumbprint(m.ec.public_key())}
    assert "pulumi-resource-pulumi-python" in run.stderr, "no -v=9 engine log on stderr"
    state = project.export()
    assert state["deployment"]["resources"], "empty state after up"
    scan_everything(project, m)


# --- what a reviewer sees in a PR -------------------------------------------------------------------------
def changed(plan: dict[str, Any]) -> dict[str, tuple[str, list[str]]]:
    """Resources the plan changes: name -> (op, the inputs that differ between old and new state).

    Not the step's ``diffs``: a Python dynamic provider cannot send the changed keys (pulumi.dynamic's Diff
    forwards only changes/replaces/deleteBeforeReplace), so ``diffs`` and ``detailedDiff`` stay empty and a
    reviewer's tool compares ``oldState.inputs`` with ``newState.inputs``, as ``pulumi preview --diff`` does.
    """
    out = {}
    for name, step in steps(plan).items():
        if step["op"] == "same":
            continue
        old = (step.get("oldState") or {}).get("inputs") or {}
        new = (step.get("newState") or {}).get("inputs") or {}
        out[name] = (step["op"], sorted(k for k in set(old) | set(new) if k != "__provider" and old.get(k) != new.get(k)))
    return out


def test_previews_of_tag_ops_and_material_changes_show_exactly_those_properties(
        project: EngineProject, sdk: Any) -> None:
    m = deployed(project)
    kv = sdk(project.vault)
    kids = project.outputs()["kids"]

    # Tags: the user adds tags to both keys in the program.
    project.edit_program("ByokKeySpec(\n", "ByokKeySpec(\n        tags={'owner': 'team-crypto'},\n", count=2)
    plan = project.preview().json()
    assert changed(plan) == {"byok-TestRSAKey": ("update", ["tags"]), "byok-TestECKey": ("update", ["tags"])}
    text = project.pulumi("preview", "--diff").stdout  # the same change as a reviewer reads it in a PR comment
    assert "+ owner: \"team-crypto\"" in text.replace("  ", " "), text
    project.up()
    assert live(kv, "TestECKey").properties.tags.get("owner") == "team-crypto"
    assert project.outputs()["kids"] == kids, "a tag change made a new key version"

    # Operations of the EC key (stack config).
    project.pulumi("config", "set", "--path", "ecKeyOps[0]", "sign")
    project.pulumi("config", "rm", "--path", "ecKeyOps[1]")
    plan = project.preview().json()
    assert changed(plan) == {"byok-TestECKey": ("update", ["key_ops"])}
    project.up()
    assert live(kv, "TestECKey").key_operations == ["sign"]

    # New key material for TestRSAKey: the reviewer sees the fingerprint change.
    rotated = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (project.dir / "TestRSAKey.pem").write_bytes(rotated.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(m.password.encode())))
    plan = project.preview().json()
    assert changed(plan) == {"byok-TestRSAKey": ("update", ["fingerprint", "public_key_pem"])}
    step = steps(plan)["byok-TestRSAKey"]
    assert step["oldState"]["inputs"]["fingerprint"] == thumbprint(m.rsa.public_key())
    assert step["newState"]["inputs"]["fingerprint"] == thumbprint(rotated.public_key())
    project.up()
    new_version = live(kv, "TestRSAKey")
    assert int.from_bytes(new_version.key.n, "big") == rotated.public_key().public_numbers().n
    assert project.outputs()["kids"]["TestRSAKey"] == new_version.id != kids["TestRSAKey"]


# --- drift ------------------------------------------------------------------------------------------------
def test_refresh_shows_out_of_band_changes_and_the_next_up_converges(project: EngineProject, sdk: Any) -> None:
    m = deployed(project)
    kv = sdk(project.vault)
    kids = project.outputs()["kids"]

    # Someone disables TestRSAKey, retags TestECKey and imports a version of their own into TestRSAKey.
    kv.update_key_properties("TestRSAKey", enabled=False)
    kv.update_key_properties("TestECKey", tags={"changed-by": "hand"})
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_numbers()
    kv.import_key("TestRSAKey", JsonWebKey(kty="RSA", n=_int(stranger.public_numbers.n),
                                           e=_int(stranger.public_numbers.e), d=_int(stranger.d), p=_int(stranger.p),
                                           q=_int(stranger.q), dp=_int(stranger.dmp1), dq=_int(stranger.dmq1),
                                           qi=_int(stranger.iqmp)), hardware_protected=True)

    refresh = project.refresh("--diff")
    assert "byok-TestRSAKey" in refresh.stdout and "byok-TestECKey" in refresh.stdout
    rsa_state = project.resource(KEY, "byok-TestRSAKey")["outputs"]
    ec_state = project.resource(KEY, "byok-TestECKey")["outputs"]
    assert rsa_state["kid"] == live(kv, "TestRSAKey").id != kids["TestRSAKey"], "refresh missed the new version"
    assert rsa_state["fingerprint"] != thumbprint(m.rsa.public_key())
    assert ec_state["tags"] == {"changed-by": "hand"}

    plan = project.preview().json()
    assert set(changed(plan)) == {"byok-TestRSAKey", "byok-TestECKey"}
    project.up()
    assert_keys_match_files(kv, m)
    assert_every_declared_key_live(project, kv)
    assert live(kv, "TestECKey").properties.tags in ({}, None) or "changed-by" not in live(kv, "TestECKey").properties.tags
    assert project.preview().json()["changeSummary"].get("update", 0) == 0, "not converged after up"

    # Someone deletes TestECKey out of band.
    kv.begin_delete_key("TestECKey").wait()
    project.refresh()
    assert [r for r in project.resources() if r["urn"].endswith("::byok-TestECKey")] == [], \
        "refresh kept a key the vault no longer holds"
    # The name is soft-deleted and holds the declared material: up recovers it, and says so.
    recovered = project.up()
    assert "TestECKey: recovering the soft-deleted key: it holds the declared material" in recovered.stdout
    assert_keys_match_files(kv, m)
    assert_every_declared_key_live(project, kv)
    scan_everything(project, m)


# --- replacement ------------------------------------------------------------------------------------------
def test_replace_taint_and_a_case_only_rename_leave_every_declared_key_live(
        project: EngineProject, sdk: Any) -> None:
    """The engine replaces create-before-delete without asking Diff; the old resource's delete must not take
    the key the new one adopted (the vault name is the same), nor purge it (purgeOnDelete is on here)."""
    m = deployed(project)
    kv = sdk(project.vault)

    rsa_urn = project.urn(KEY, "byok-TestRSAKey")
    replaced = project.up("--replace", rsa_urn, *VERBOSE)
    assert "replaced" in replaced.stdout
    # What tests/provider/engine.py replays for a targeted replace: no Diff; the preview pass's Create never
    # reaches the provider (supportsPreview=false), the update pass creates the new one, then deletes the old.
    assert rpc_calls(replaced.stderr, "byok-TestRSAKey") == ["Check", "Create", "Check", "Create", "Delete"]
    assert_every_declared_key_live(project, kv)

    project.up("--replace", project.urn(KEK, "byok-kek"))
    assert_every_declared_key_live(project, kv)

    project.pulumi("state", "taint", project.urn(KEY, "byok-TestECKey"))
    project.up()
    assert_every_declared_key_live(project, kv)

    # Key Vault names are case-insensitive: renaming TestRSAKey to testrsakey in config is a new resource
    # (a new URN) for the engine, which creates it (adopting the same vault key) and deletes the old one.
    project.config(rsaKeyName="testrsakey")
    renamed = project.up(*VERBOSE)
    # A new URN: no Diff and no Update, but a Create that adopts the key and a Delete of the old resource.
    assert rpc_calls(renamed.stderr, "byok-testrsakey") == ["Check", "Create", "Check", "Create"]
    assert rpc_calls(renamed.stderr, "byok-TestRSAKey") == ["Delete"]
    current = live(kv, "TestRSAKey")
    assert current.properties.enabled is True
    assert project.outputs()["kids"]["testrsakey"] == current.id
    assert int.from_bytes(current.key.n, "big") == m.rsa.public_key().public_numbers().n
    scan_everything(project, m)


# --- a wrong password -------------------------------------------------------------------------------------
def test_a_wrong_key_password_from_config_is_never_printed_by_the_engine(project: EngineProject, sdk: Any) -> None:
    m = write_keys(project)
    wrong = f"wrong-{m.password[::-1]}"
    m.secrets.add_password("wrong rsaKeyPassword", wrong)
    project.secret_config(rsaKeyPassword=wrong)

    project.preview(ok=False)
    failed = project.up(*VERBOSE, ok=False)

    assert "key_password" in failed.stdout  # the engine names the input at fault ...
    scan_everything(project, m)  # ... and prints neither password, at -v=9 either
    with pytest.raises(ResourceNotFoundError):
        live(sdk(project.vault), "TestRSAKey")


def test_a_wrong_key_password_passed_in_code_is_never_printed_by_the_engine(project: EngineProject) -> None:
    """A secret made in the program, not read from config. v3.274.1 shows it as ``{[secret]}`` even when the check
    names key_password (seen with that routing undone), so what this guards is the reason text, the provider's
    stderr and the -v=9 log (it fails with the password put into the provider's error)."""
    m = write_keys(project)
    wrong = f"wrong-{m.password[::-1]}"
    m.secrets.add_password("wrong password in code", wrong)
    project.edit_program('key_password=secret("rsaKeyPassword"),',
                         f'key_password=pulumi.Output.secret({wrong!r}),', count=1)

    project.preview(ok=False)
    failed = project.up(*VERBOSE, ok=False)

    assert "key_password" in failed.stdout
    scan_everything(project, m)


def test_a_key_pasted_where_its_path_goes_is_never_printed_by_the_engine(project: EngineProject, sdk: Any) -> None:
    """key_file is no secret, so the engine prints a failing key_file's value: a user who passes the PEM itself
    must see the input named, not the key (in the reason or as the property's value)."""
    m = write_keys(project)
    project.secret_config(rsaKeyPassword=m.password)
    project.edit_program("key_file=ec_key_file,", "key_file=open(ec_key_file).read(),", count=1)

    failed = project.up(*VERBOSE, ok=False)

    scan_everything(project, m)  # the engine's output at -v=9 holds no private key ...
    assert "key_file: is not a file path" in failed.stdout  # ... and names the input at fault
    with pytest.raises(ResourceNotFoundError):
        live(sdk(project.vault), "TestECKey")


# --- destroy ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("engine_vault", "purge", "purged"), [
    ({"behaviour": PURGEABLE}, True, True),
    ({}, False, False),
    ({}, True, False),  # a local vault has purge protection by default, as a production vault should
], ids=["purgeOnDelete", "soft-delete only", "purgeOnDelete under purge protection"], indirect=["engine_vault"])
def test_destroy_soft_deletes_or_purges_every_key_and_empties_the_state(
        project: EngineProject, sdk: Any, purge: bool, purged: bool) -> None:
    project.config(purgeOnDelete=str(purge).lower())
    m = deployed(project)
    kv = sdk(project.vault)

    destroyed = project.destroy()

    deleted = {k.name for k in kv.list_deleted_keys()}
    for name in ALL:
        with pytest.raises(ResourceNotFoundError):
            live(kv, name)
        assert (name in deleted) is not purged, f"{name}: purged={purged} but deleted keys are {sorted(deleted)}"
        refused = f"purge key {name}: {project.vault.vault_url} has purge protection"
        assert (refused in destroyed.stdout) is (purge and not purged), destroyed.stdout
    assert project.resources() == []
    scan_everything(project, m)
