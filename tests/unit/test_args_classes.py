"""Every Args class a program builds is keyword-only and documents each of its fields (help(ByokKeyArgs) is the
reference an adopter reads; the README points there)."""

from __future__ import annotations

import dataclasses
import inspect
import re

import pytest

from byok_component import ByokKeyArgs, ByokKeySpec, ByokVaultArgs, DataPlaneKekArgs
from byok_component.resource import KeyMaterialArgs

ARGS = [KeyMaterialArgs, ByokKeyArgs, ByokKeySpec, ByokVaultArgs, DataPlaneKekArgs]


@pytest.mark.parametrize("cls", ARGS, ids=lambda c: c.__name__)
def test_every_field_is_documented_in_the_class_docstring(cls: type) -> None:
    documented = set()
    for klass in cls.__mro__:
        doc = inspect.getdoc(klass) or ""
        if "Attributes:" in doc:
            documented |= set(re.findall(r"^    (\w+): \S", doc.split("Attributes:", 1)[1], re.MULTILINE))
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in documented]
    assert not missing, f"{cls.__name__}: no docstring entry for {missing}"


@pytest.mark.parametrize("cls", ARGS, ids=lambda c: c.__name__)
def test_args_are_keyword_only(cls: type) -> None:
    assert all(f.kw_only for f in dataclasses.fields(cls)), cls.__name__
    with pytest.raises(TypeError):
        cls("https://contoso.vault.azure.net", "KEKforBYOK")
