"""RFC 7512 pkcs11: URIs as the key source names them: what is read, what is refused and why."""

from __future__ import annotations

import pytest

from byok_component.errors import InputError
from byok_component.pkcs11uri import Pkcs11Uri


def test_path_and_query_attributes_are_read_and_percent_decoded() -> None:
    uri = Pkcs11Uri.parse("pkcs11:token=HSM%20One;object=Test%3BKey;id=%01%A2;type=private;serial=42"
                          "?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin")
    assert (uri.token, uri.object, uri.id, uri.type, uri.serial) == ("HSM One", "Test;Key", b"\x01\xa2", "private", "42")
    assert uri.module_path == "/usr/lib/softhsm/libsofthsm2.so" and uri.pin_source == "file:/run/pin"
    assert Pkcs11Uri.parse(str(uri)) == uri  # the canonical form reads back the same


@pytest.mark.parametrize("text, message", [
    ("pkcs11:token=T;object=K?pin-value=1234", "must not carry pin-value"),
    ("pkcs11:token=T;objekt=K", "unknown or malformed path attribute 'objekt'"),
    ("pkcs11:token=T;object=K?module=x.so", "unknown or malformed query attribute 'module'"),
    ("pkcs11:token=T;object=K%2", "malformed %-escape"),
    ("pkcs11:token=T;object=K;object=L", "attribute object is given twice"),
    ("pkcs11:token=T", "must name the key with object="),
    ("pkcs11:object=K", "must name the token with token="),
    ("pkcs11:token=T;object=K;type=cert", "type=cert names no key"),
    ("pkcs11:token=T;object=K;slot-id=x", "slot-id must be a decimal number"),
    ("/usr/lib/softhsm/libsofthsm2.so", "must be a pkcs11: URI"),
    ("", "is required"),
])
def test_what_cannot_select_exactly_one_key_safely_is_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as caught:
        Pkcs11Uri.parse(text, input="--pkcs11")
    assert caught.value.input == "--pkcs11" and "1234" not in str(caught.value)
