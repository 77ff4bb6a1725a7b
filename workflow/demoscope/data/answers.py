"""Numeric answers of generation tasks (GSM8K): the gold number, the model's number, exact match.

The gold number is what follows `####` in the worked solution. The model's number is the
last number in its output, so a model that never writes `####` is still read.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# A number: thousands groups ("1,234,567") or plain digits, then an optional decimal part; or
# a bare decimal part ("$.50").
# A minus sign belongs to the number only where it does not follow a word character or a
# closing bracket: "3-5" is a range or a difference, "-5" and "= -5" are negative.
NUMBER = re.compile(r"(?:(?<![\w)\]])-)?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)")


def extract_number(output_text: str) -> str | None:
    """The last number in `output_text`, commas removed ("$1,234." -> "1234"); None when there is none."""
    found = NUMBER.findall(output_text)
    return found[-1].replace(",", "") if found else None


def gold_number(answer_text: str) -> str:
    """The number after the last `####` of a worked solution, commas removed."""
    _, marker, tail = answer_text.rpartition("####")
    number = extract_number(tail) if marker else None
    if number is None:
        raise ValueError(f"no number after '####' in the gold answer {answer_text[-80:]!r}")
    return number


def same_number(a: str, b: str) -> bool:
    """Numeric equality of two extracted numbers: 3.50 equals 3.5, -0 equals 0."""
    try:
        return Decimal(a) == Decimal(b)
    except InvalidOperation:
        return False


def exact_match(output_text: str, gold_answer_text: str) -> bool:
    """Whether the last number of the model's output equals the gold solution's final number."""
    predicted = extract_number(output_text)
    return predicted is not None and same_number(predicted, gold_number(gold_answer_text))
