"""Verify-before-live replayed the engine's way (tests/provider/engine.py over gRPC): a rotation to ciphertext
wrapped elsewhere that holds the wrong key fails, the rerun neither imports again nor records the failed version,
and a refresh keeps the version that is live (issue 12, verify.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

from byok_component import verify
from byok_component.keys import load_target_key
from byok_component.wrap import wrap
from tests.conftest import ec_key
from tests.provider.engine import Engine, EngineError
from tests.provider.test_engine_replay import Program, engine, everything, host  # noqa: F401 - fixtures
from tests.provider.vaultstate import held, public_of


def test_a_mismatched_rotation_fails_stays_out_of_state_and_is_not_imported_again(
        engine: Engine, premium_vault: Any, keys: Any, sdk: Any, keydir: Path) -> None:
    program = Program(premium_vault, keys["ec"])
    engine.up(program.goals())
    live = engine.state["key"].outputs
    kek = load_pem_public_key(engine.state["kek"].outputs["public_key_pem"].encode())
    wrong = keydir / f"{program.key_name}.wrapped"  # holds ec2, declared as a third P-256 key's public key
    wrong.write_bytes(wrap(kek, load_target_key(Path(keys["ec2"].private).read_bytes()).wrapping_plaintext()))
    third = keydir / f"{program.key_name}.ec3.pub.pem"
    third.write_bytes(ec_key("P-256", 13).public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    rotation = program.goals(key={"key_file": None, "wrapped_key_file": str(wrong), "public_key_file": str(third)})
    for attempt in (1, 2):
        puts = sum(1 for method, _ in premium_vault.requests if method == "PUT")
        with pytest.raises(EngineError, match="holds other key material than public_key_file"):
            engine.up(rotation)
        assert engine.state["key"].outputs == live  # the failed update records nothing
        if attempt == 2:
            assert sum(1 for method, _ in premium_vault.requests if method == "PUT") == puts
    now = held(sdk(premium_vault), program.key_name)
    assert now.versions == 2 and now.enabled is False and now.public == public_of(keys["ec2"].private)
    assert now.tags is not None and now.tags[verify.UNVERIFIED_TAG] == verify.MISMATCH
    engine.refresh()
    assert engine.state["key"].outputs["version"] == live["version"]
    assert engine.state["key"].outputs["fingerprint"] == keys["ec"].info.fingerprint
    old = sdk(premium_vault).get_key(program.key_name, live["version"])
    assert old.properties.enabled is True
    engine.destroy()
