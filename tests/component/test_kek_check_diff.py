"""DataPlaneKekProvider.check and .diff: offline, pure, safe with preview unknowns."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi.output import Unknown

from byok_component.kek import DataPlaneKekProvider, KekProps
from byok_component.errors import InputError

P = DataPlaneKekProvider()
URL = "https://contoso-byok-kv.vault.azure.net"


def news(**kw: Any) -> dict[str, Any]:
    return {"vault_url": URL, "key_name": "KEKforBYOK", "key_size": 4096.0, "purge_on_delete": False,
            "__provider": "pickled", **kw}


def test_check_normalises_and_keeps_the_provider() -> None:
    result = P.check({}, news(vault_url="https://Contoso-BYOK-KV.vault.azure.net/", key_size=3072.0,
                              purge_on_delete=None))
    assert result.failures == []
    assert result.inputs == {"vault_url": URL, "key_name": "KEKforBYOK", "key_size": 3072,
                             "purge_on_delete": False, "__provider": "pickled"}
    assert isinstance(result.inputs["key_size"], int)


@pytest.mark.parametrize("field,value,reason", [
    ("key_size", 1024.0, "must be 2048, 3072 or 4096"),
    ("key_size", 4096.5, "must be 2048, 3072 or 4096"),
    ("key_size", "4096", "must be 2048, 3072 or 4096"),
    ("key_size", True, "must be 2048, 3072 or 4096"),
    ("key_name", "KEK_for_BYOK", "1-127 characters"),
    ("key_name", "", "1-127 characters"),
    ("vault_url", "http://contoso.vault.azure.net", "must use https"),
    ("vault_url", "https://example.com", "is not a Key Vault or Managed HSM host"),
    ("vault_url", "https://contoso.vault.azure.net/keys/k", "only a host"),
])
def test_check_reports_each_bad_input_by_name(field: str, value: Any, reason: str) -> None:
    result = P.check({}, news(**{field: value}))
    assert [f.property for f in result.failures] == [field]
    assert reason in result.failures[0].reason


def test_check_accepts_managed_hsm_and_loopback_urls_and_a_missing_size() -> None:
    for url in ("https://contoso-hsm.managedhsm.azure.net", "https://127.0.0.1:8443", "https://localhost:9"):
        inputs = dict(news(vault_url=url))
        del inputs["key_size"]
        result = P.check({}, inputs)
        assert result.failures == [] and result.inputs["key_size"] == 4096


def test_check_passes_preview_unknowns_through_untouched() -> None:
    unknown = Unknown()
    result = P.check({}, news(vault_url=unknown, key_size=unknown))
    assert result.failures == []
    assert result.inputs["vault_url"] is unknown and result.inputs["key_size"] is unknown


def olds(**kw: Any) -> dict[str, Any]:
    return {"vault_url": URL, "key_name": "KEKforBYOK", "key_size": 4096, "purge_on_delete": False,
            "kid": f"{URL}/keys/KEKforBYOK/{'a' * 32}", "version": "a" * 32, "__provider": "pickled"}


def test_diff_nothing_changed() -> None:
    d = P.diff("id", olds(), news(key_size=4096))
    assert d.changes is False and d.replaces == []


@pytest.mark.parametrize("change", [{"vault_url": "https://other.vault.azure.net"}, {"key_name": "KEK2"}])
def test_diff_another_vault_or_name_replaces(change: dict[str, Any]) -> None:
    d = P.diff("id", olds(), news(**change))
    assert d.changes is True and d.replaces == list(change) and d.delete_before_replace is False


@pytest.mark.parametrize("change", [{"key_size": 3072}, {"purge_on_delete": True}])
def test_diff_size_or_purge_flag_is_an_update(change: dict[str, Any]) -> None:
    """A new size is a new KEK version (update), never a same-name replace (which would delete the name)."""
    d = P.diff("id", olds(), news(**change))
    assert d.changes is True and d.replaces == []


def test_diff_with_unknowns_during_preview() -> None:
    d = P.diff("id", olds(), news(vault_url=Unknown(), key_size=Unknown()))
    assert d.changes is True and d.replaces == ["vault_url"]


def test_props_parse_and_the_resource_id_is_unversioned() -> None:
    p = KekProps.from_dict(news(key_size=2048.0))
    assert p.key_size == 2048 and p.key_id == f"{URL}/keys/KEKforBYOK"
    with pytest.raises(InputError, match="key_size"):
        KekProps.from_dict(news(key_size=512))


def test_provider_pickles_by_reference_without_state() -> None:
    from pulumi.dynamic.dynamic import serialize_provider
    import base64

    pickled = base64.b64decode(serialize_provider(DataPlaneKekProvider()))
    assert len(pickled) < 100 and b"byok_component.kek" in pickled and b"DataPlaneKekProvider" in pickled
    assert vars(DataPlaneKekProvider()) == {}
