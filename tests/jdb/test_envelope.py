"""The request envelope against the known answers of reference/jdb.md §1.4, and the emulator's
tolerant decoding of what real-world clients send."""

from __future__ import annotations

import base64

import pytest
from Crypto.Cipher import AES
from Crypto.Util.Padding import pad

from reconciler.vendors.jdb.crypto import JdbCipher, compact_json, zero_pad
from reconciler.errors import UsageError
from reconciler.vendors.jdb.emulator import decrypt_envelope

# JDB's published sample pair (reference/jdb.md §1.3), public documentation values
DOC_KEY = "key1234567Sample"
DOC_IV = "iv12345678Sample"
KAT4_PLAIN = b'{"action":76,"ts":1711555200000}'


@pytest.fixture
def cipher() -> JdbCipher:
    return JdbCipher(DOC_KEY, DOC_IV)


def test_kat2_zero_padding_urlsafe_without_equals(cipher: JdbCipher) -> None:
    assert cipher.encrypt(b"SampleData") == "GhKRVa6BHoOJAhjVYMKuFw"


def test_kat4_block_aligned_input_gets_no_extra_block(cipher: JdbCipher) -> None:
    assert len(KAT4_PLAIN) == 32
    assert cipher.encrypt(KAT4_PLAIN) == "J2tg2epfYoBV7u_FrmHaf42lowVl11MDFPBT2_4Vdas"


def test_kat4_from_the_action_object(cipher: JdbCipher) -> None:
    assert compact_json({"action": 76, "ts": 1711555200000}) == KAT4_PLAIN
    assert cipher.seal({"action": 76, "ts": 1711555200000}) == "J2tg2epfYoBV7u_FrmHaf42lowVl11MDFPBT2_4Vdas"


def test_zero_pad() -> None:
    assert zero_pad(b"") == b""
    assert zero_pad(b"a") == b"a" + b"\0" * 15
    assert zero_pad(b"x" * 16) == b"x" * 16
    assert len(zero_pad(b"x" * 17)) == 32


def test_compact_json_keeps_unicode() -> None:
    assert compact_json({"name": "免费", "n": [1, 2]}) == '{"name":"免费","n":[1,2]}'.encode()


@pytest.mark.parametrize("bad", ["short", "key1234567Sample!", "këy1234567Sampl"])
def test_key_must_be_16_ascii_characters_and_is_never_echoed(bad: str) -> None:
    with pytest.raises(UsageError) as info:
        JdbCipher(bad, DOC_IV)
    assert bad not in str(info.value)


def test_repr_hides_key_and_iv(cipher: JdbCipher) -> None:
    assert DOC_KEY not in repr(cipher) and DOC_IV not in repr(cipher)


def _std_b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    "x",
    [
        "J2tg2epfYoBV7u_FrmHaf42lowVl11MDFPBT2_4Vdas",  # KAT-4: our own form
        "J2tg2epfYoBV7u_FrmHaf42lowVl11MDFPBT2_4Vdas=",  # with '=' (the Action 29 sample has one)
        "J2tg2epfYoBV7u_FrmHaf42lowVl11MDFPBT2_4VdavpcdhRRAWJPmKMxymMhGe_",  # KAT-4p: PKCS#7 (C#, Node)
        _std_b64(AES.new(DOC_KEY.encode(), AES.MODE_CBC, iv=DOC_IV.encode()).encrypt(pad(KAT4_PLAIN, 16))),
        _std_b64(AES.new(DOC_KEY.encode(), AES.MODE_CBC, iv=DOC_IV.encode()).encrypt(KAT4_PLAIN)),
    ],
)
def test_emulator_decodes_every_padding_and_alphabet(x: str) -> None:
    assert decrypt_envelope(x, DOC_KEY.encode(), DOC_IV.encode()) == {"action": 76, "ts": 1711555200000}


def test_emulator_strips_trailing_spaces() -> None:
    spaced = b'{"a":1}' + b" " * 9
    x = _std_b64(AES.new(DOC_KEY.encode(), AES.MODE_CBC, iv=DOC_IV.encode()).encrypt(spaced))
    assert decrypt_envelope(x, DOC_KEY.encode(), DOC_IV.encode()) == {"a": 1}


@pytest.mark.parametrize("x", ["", "!!!", "GhKRVa6BHoOJAhjVYMKuFw", "abc"])
def test_emulator_rejects_what_is_not_a_json_object(x: str) -> None:
    assert decrypt_envelope(x, DOC_KEY.encode(), DOC_IV.encode()) is None
