"""Kubernetes resource quantities ("500m", "16Gi", "1.5", 2) as floats."""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_SUFFIXES: dict[str, float] = {
    "": 1.0,
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}
_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_QUANTITY = re.compile(rf"^({_NUMBER})(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]?)$")


def parse_quantity(value: object) -> float:
    """Parse a Kubernetes quantity; raise ``ValueError`` with a clear message if it is not one."""
    if isinstance(value, bool):
        raise ValueError("a quantity must be a number or a string such as '500m' or '16Gi'")
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # an int beyond the float range
            raise ValueError("a quantity must be finite") from None
    elif isinstance(value, str):
        match = _QUANTITY.match(value.strip())
        if match is None:
            raise ValueError(f"{value!r} is not a quantity (examples: 2, '500m', '16Gi')")
        number = float(match.group(1)) * _SUFFIXES[match.group(2)]
    else:
        raise ValueError("a quantity must be a number or a string such as '500m' or '16Gi'")
    if not math.isfinite(number):
        raise ValueError("a quantity must be finite")
    return number


def _format(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


#: A non-negative resource quantity, stored as a float, accepted as a number or a string.
Quantity = Annotated[
    float,
    BeforeValidator(parse_quantity),
    PlainSerializer(_format, return_type=float | int),
]
