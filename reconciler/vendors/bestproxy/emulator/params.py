"""BestProxy's rules for a request's values as the emulator applies them: product types, verify
types, the limits of usernames, passwords and remarks, IPv4 reading, the parameter reader that
collects every problem of a request, and the knobs' possible answers (:data:`KNOBS`). See the
package docstring for the rules.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta, timezone
from typing import Any

SANDBOX_VERIFY_CODE = "000000"
PRODUCT_TYPES = (9, 11, 14, 25)
UDP_PRODUCT_TYPES = (14, 16, 21, 25)
VERIFY_TYPES = ("phone", "email", "wechat", "totp")
MAX_LIMIT_GB = 102400
PASSWORD_MIN, PASSWORD_MAX = 6, 16
USERNAME_MAX = 64
REMARK_MAX, REMARK_MAX_CJK = 64, 32

_ALNUM = re.compile(r"[A-Za-z0-9]+")
_INT = re.compile(r"-?[0-9]+")
_TZ = timezone(timedelta(hours=8))

# Code point ranges counted as "Chinese" characters for the remark length rule.
_CJK_RANGES = (
    (0x2E80, 0x2FDF),  # CJK radicals, Kangxi radicals
    (0x3000, 0x303F),  # CJK symbols and punctuation
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3100, 0x31BF),  # Bopomofo, Hangul compatibility jamo, Kanbun, Bopomofo ext.
    (0x3400, 0x4DBF),  # CJK unified ideographs extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xAC00, 0xD7AF),  # Hangul syllables
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF00, 0xFFEF),  # Half-/full-width forms
    (0x20000, 0x3134F),  # CJK unified ideographs extensions B–G, compatibility supplement
)


def has_cjk(text: str) -> bool:
    """Whether ``text`` contains a CJK character (the ranges in ``_CJK_RANGES``)."""
    for ch in text:
        cp = ord(ch)
        if cp >= 0x2E80 and any(lo <= cp <= hi for lo, hi in _CJK_RANGES):
            return True
    return False


def remark_problem(remark: str) -> str | None:
    limit = REMARK_MAX_CJK if has_cjk(remark) else REMARK_MAX
    if len(remark) > limit:
        kind = "with Chinese characters " if limit == REMARK_MAX_CJK else ""
        return f"remark {kind}may not exceed {limit} characters"
    return None


class _BadBody(Exception):
    pass


class _Params:
    """Reads fields from a request's parameters, collecting every validation problem."""

    def __init__(self, values: dict[str, Any]):
        self.values = values
        self.errors: dict[str, list[str]] = {}

    def fail(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)

    def string(self, name: str, *, required: bool = False, allow_empty: bool = True) -> str | None:
        v = self.values.get(name)
        if v is None:
            if required:
                self.fail(name, f"The {name} field is required.")
            return None
        if not isinstance(v, str):
            self.fail(name, f"The {name} field must be a string.")
            return None
        if v == "" and not allow_empty:
            if required:
                self.fail(name, f"The {name} field is required.")
            return None
        return v

    def integer(
        self,
        name: str,
        *,
        required: bool = False,
        choices: tuple[int, ...] | None = None,
        lo: int | None = None,
        hi: int | None = None,
    ) -> int | None:
        v = self.values.get(name)
        if v is None or v == "":
            if required:
                self.fail(name, f"The {name} field is required.")
            return None
        if isinstance(v, bool) or not isinstance(v, (int, str)):
            self.fail(name, f"The {name} field must be an integer.")
            return None
        if isinstance(v, str):
            if not _INT.fullmatch(v):
                self.fail(name, f"The {name} field must be an integer.")
                return None
            v = int(v)
        if choices is not None and v not in choices:
            self.fail(name, f"The selected {name} is invalid (one of {', '.join(map(str, choices))}).")
            return None
        if lo is not None and v < lo or hi is not None and v > hi:
            self.fail(name, f"The {name} field must be between {lo} and {hi}.")
            return None
        return v

    def remark(self, name: str = "remark", *, required: bool = False) -> str | None:
        v = self.string(name, required=required)
        if v is not None and (problem := remark_problem(v)):
            self.fail(name, problem)
            return None
        return v

    def password(self, name: str = "password", *, required: bool = False, length: bool = True) -> str | None:
        v = self.string(name, required=required, allow_empty=False)
        if v is not None and (problem := password_problem(v, length=length)):
            self.fail(name, problem)
            return None
        return v

    def username(self, name: str = "account") -> str | None:
        v = self.string(name, required=True, allow_empty=False)
        if v is not None and (problem := username_problem(v)):
            self.fail(name, problem)
            return None
        return v


def username_problem(username: str) -> str | None:
    # Invalid names are not echoed: a mistyped entry may carry a password.
    if not _ALNUM.fullmatch(username):
        return "account names may only contain letters and digits"
    if len(username) > USERNAME_MAX:
        return f"account names may not exceed {USERNAME_MAX} characters"
    return None


def password_problem(password: str, *, length: bool = True) -> str | None:
    if not _ALNUM.fullmatch(password):
        return "password may only contain letters and digits"
    if length and not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        return f"password must be {PASSWORD_MIN}-{PASSWORD_MAX} characters"
    return None


def parse_ipv4(text: str) -> str | None:
    """The canonical dotted quad, or None when ``text`` is not a plain IPv4 address."""
    try:
        addr = ipaddress.IPv4Address(text)
    except ValueError:
        return None
    canonical = str(addr)
    return canonical if canonical == text else None


# Where the document is silent, each answer the emulator can give (the first is the default).
KNOBS: dict[str, tuple[str, ...]] = {
    "add_product_type": ("optional", "required"),  # whitelist-account/add without product_type
    "password_length": ("documented", "everywhere"),  # 6-16 characters checked on change only, or everywhere
    "ip_add_product_type": ("optional", "required"),  # proxy-ip/add without product_type
    "ip_forms": ("ipv4", "any"),  # proxy-ip/add takes IPv4 only, or also IPv6 and CIDR blocks
    "ip_product_types": ("many", "one"),  # one IP allowlisted under several product types, or one only
    "batches": ("whole", "partial"),  # a batch with a bad item is refused whole, or the rest is applied
    "totp_reuse": ("accepted", "refused"),  # a TOTP code (its time step) may be used again, or once only
    "udp_other_types": ("refused", "ignored"),  # udp=1 on a type other than 14/16/21/25
}
