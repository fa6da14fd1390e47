"""wrap_overhead_ratio: our CKM_RSA_AES_KEY_WRAP + transfer blob per key ÷ the bare pyca primitives per key.

Ours: ``TransferBlob.build(kek_id, wrap(kek, plaintext)).to_json()`` — the provider's path (KEK checks, a fresh
AES-256 key, OAEP-SHA1, RFC 5649 KWP, kid parse, deterministic JSON). Bare: ``kek.encrypt(aes, OAEP-SHA1) +
aes_key_wrap_with_padding(aes, plaintext)`` with a fresh 32-byte key. Same KEK public key, same plaintexts
(PKCS#8 DER of RSA and EC targets, raw AES-256). Small batches, interleaved in pairs (A B, B A, ...): the figure
is the median of the pairs' ratios, so a burst of load from elsewhere skews a pair or two, not the figure.
"""

from __future__ import annotations

import os
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

from .common import Bench, interleaved, median, ms


def run(bench: Bench) -> dict[str, Any]:
    from byok_component.blob import TransferBlob
    from byok_component.vault import fetch_kek, pointed_at
    from byok_component.wrap import wrap

    with pointed_at(bench.vault.ca_cert, bench.vault.token_file):
        kek = fetch_kek(bench.kek_id).public_key  # the KEK as the provider holds it
    n = bench.sizes.wrap_keys
    pkcs8 = serialization.PrivateFormat.PKCS8
    rsa_der = [k.private_bytes(serialization.Encoding.DER, pkcs8, serialization.NoEncryption())
               for k in bench.keys.rsa_keys()]
    ec_der = ec.generate_private_key(ec.SECP256R1()).private_bytes(serialization.Encoding.DER, pkcs8,
                                                                  serialization.NoEncryption())
    plaintexts = [(rsa_der[i % len(rsa_der)] if i % 3 == 0 else ec_der if i % 3 == 1 else os.urandom(32))
                  for i in range(n)]
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    kek_id = bench.kek_id

    def ours() -> None:
        for plaintext in plaintexts:
            TransferBlob.build(kek_id, wrap(kek, plaintext)).to_json()

    def bare() -> None:
        for plaintext in plaintexts:
            aes = os.urandom(32)
            kek.encrypt(aes, oaep) + aes_key_wrap_with_padding(aes, plaintext)

    ours(), bare()  # warm-up
    times = interleaved({"ours": ours, "bare": bare}, bench.sizes.wrap_reps)
    ratios = [a / b for a, b in zip(times["ours"], times["bare"])]
    return {"ours_ms_per_key": ms(median(times["ours"])) / n, "bare_ms_per_key": ms(median(times["bare"])) / n,
            "ratio": median(ratios), "keys": n, "reps": bench.sizes.wrap_reps, "kek_bits": kek.key_size}
