"""ByokKey ``diff``: by fingerprint, never by path — the diff/update/replace table as built."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pulumi.output import Unknown

from byok_component import props as P
from byok_component.provider import ByokKeyProvider

VAULT = "https://127.0.0.1:8443"
FP_A = "NHiT25dUXRuuHcHqNGmu4eEckCe_R6tX7UXvQj7zAkk"
FP_B = "b3ZlcnRoZS1ob3Jpem9uLW5vdC1hLXJlYWwtcHJpbnQ"


def checked(**extra: Any) -> dict[str, Any]:
    """New inputs as ``check`` leaves them (defaults filled in, canonical forms)."""
    news = {
        "vault_url": VAULT, "key_name": "k1", "kek_id": f"{VAULT}/keys/kek/{'a' * 32}", "key_file": "/keys/k1.pem",
        "fingerprint": FP_A, "key_type": "EC", "key_size": 256, "curve": "P-256", "public_key_pem": "PEM",
        "key_ops": ["sign", "verify"], "enabled": True, "tags": {"env": "prod"}, "purge_on_delete": False,
        "adopt_existing": False,
    }
    news.update(extra)
    return {k: v for k, v in news.items() if v is not None}


def state(**extra: Any) -> dict[str, Any]:
    """Old outputs as the engine sends them (numbers as floats, vault's view, __provider included)."""
    outs = {**checked(), "kid": f"{VAULT}/keys/k1/{'b' * 32}", "version": "b" * 32, "key_size": 256.0,
            "key_ops": ["verify", "sign"], "__provider": "base64-dill"}
    outs.update(extra)
    return {k: v for k, v in outs.items() if v is not None}


def table(olds: dict[str, Any], news: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    d = P.diff(olds, news)
    kind = ("replace" if d.replaces else "new-version" if d.new_version else "patch" if d.patches
            else "outputs-only" if d.output_only else "none")
    return kind, d.changed


@pytest.mark.parametrize(("news", "kind", "props"), [
    (checked(), "none", ()),
    # Never by path: the same material at another path or encoding, or moved to public_key_file.
    (checked(key_file="/elsewhere/k1.der"), "none", ()),
    (checked(key_file=None, wrapped_key_file="/x/k1.byok", public_key_file="/x/k1.pub"), "none", ()),
    (checked(key_password="a-new-password-for-the-same-key"), "none", ()),
    # The KEK is transport only; adopt_existing only matters to create.
    (checked(kek_id=f"{VAULT}/keys/kek2/{'c' * 32}"), "none", ()),
    (checked(adopt_existing=True), "none", ()),
    # Order of ops is not a change.
    (checked(key_ops=["verify", "sign"]), "none", ()),
    # Other material: a new version under the same name (rotation), never a replacement.
    (checked(fingerprint=FP_B), "new-version", ("fingerprint",)),
    (checked(fingerprint=FP_B, key_type="RSA", key_size=4096, curve=None), "new-version", ("fingerprint",)),
    # Properties of the version: PATCH in place.
    (checked(key_ops=["sign"]), "patch", ("key_ops",)),
    (checked(enabled=False), "patch", ("enabled",)),
    (checked(tags={}), "patch", ("tags",)),
    (checked(tags={"env": "dev"}), "patch", ("tags",)),
    (checked(not_before="2027-01-01T00:00:00Z"), "patch", ("not_before",)),
    (checked(expires_on="2030-01-01T00:00:00Z"), "patch", ("expires_on",)),
    (checked(fingerprint=FP_B, tags={}), "new-version", ("fingerprint", "tags")),
    # Read at destroy time from state: must reach the outputs.
    (checked(purge_on_delete=True), "outputs-only", ("purge_on_delete",)),
    # Another key altogether.
    (checked(key_name="k2"), "replace", ("key_name",)),
    # Key Vault names are case-insensitive: the same key, never a replacement (it would delete the key).
    (checked(key_name="K1"), "outputs-only", ("key_name",)),
    (checked(key_name="K1", vault_url="https://myvault.vault.azure.net"), "replace", ("vault_url", "key_name")),
    (checked(vault_url="https://myvault.vault.azure.net"), "replace", ("vault_url",)),
])
def test_diff_table(news: dict[str, Any], kind: str, props: tuple[str, ...]) -> None:
    assert table(state(), news) == (kind, props)


def test_undeclared_dates_are_left_alone_but_declared_ones_are_enforced() -> None:
    drifted = state(expires_on="2029-01-01T00:00:00Z", not_before="2026-01-01T00:00:00Z")
    assert table(drifted, checked()) == ("none", ())
    assert table(drifted, checked(expires_on="2029-01-01T00:00:00Z")) == ("none", ())
    assert table(drifted, checked(expires_on="2029-06-01T00:00:00Z")) == ("patch", ("expires_on",))


def test_drift_recorded_by_refresh_shows_up() -> None:
    """After a refresh, outputs hold the vault's view; the declared inputs win on the next up."""
    assert table(state(enabled=False), checked()) == ("patch", ("enabled",))
    assert table(state(tags={"env": "prod", "owner": "someone"}), checked()) == ("patch", ("tags",))
    assert table(state(fingerprint=FP_B), checked()) == ("new-version", ("fingerprint",))
    aes_version_we_did_not_make = {k: v for k, v in state().items() if k != "fingerprint"}
    assert table(aes_version_we_did_not_make, checked())[0] == "new-version"


@pytest.mark.parametrize(("prop", "kind"), [
    ("fingerprint", "new-version"), ("key_ops", "patch"), ("enabled", "patch"), ("tags", "patch"),
    ("not_before", "patch"), ("key_name", "replace"), ("vault_url", "replace"), ("kek_id", "none"),
    ("key_file", "none"),
])
def test_unknowns_count_as_changes(prop: str, kind: str) -> None:
    assert table(state(), checked(**{prop: Unknown()}))[0] == kind
    assert table(state(), checked(**{prop: P.UNKNOWN_WIRE}))[0] == kind


def test_unknown_inside_tags_is_a_change() -> None:
    assert table(state(), checked(tags={"env": Unknown()})) == ("patch", ("tags",))


def test_replacements_create_before_delete() -> None:
    # A new name or vault: create the new key first, then delete the old one (no gap, nothing lost if the create
    # fails). The engine never asks Diff on --replace/taint/cascades, so this flag cannot protect a same-name key:
    # the owner marker does (tests/provider/test_ownership.py).
    assert P.diff(state(), checked(key_name="k2")).delete_before_replace is False
    assert P.diff(state(), checked(vault_url="https://127.0.0.2:8443")).delete_before_replace is False
    assert P.diff(state(), checked(fingerprint=FP_B)).delete_before_replace is False


def test_provider_diff_maps_to_the_wire_result() -> None:
    provider = ByokKeyProvider()
    olds, news = state(), checked(key_name="k2", tags={})
    snapshot = copy.deepcopy((olds, news))
    result = provider.diff("id", olds, news)
    assert (olds, news) == snapshot  # never mutated
    assert (result.changes, result.replaces, result.delete_before_replace) == (True, ["key_name"], False)
    same = provider.diff("id", state(), checked(key_file="/moved.pem"))
    assert (same.changes, same.replaces) == (False, [])


def test_old_state_missing_fields_is_read_conservatively() -> None:
    bare = {"vault_url": VAULT, "key_name": "k1", "fingerprint": FP_A}
    kind, props = table(bare, checked())
    assert kind == "patch" and set(props) == {"key_ops", "tags"}
