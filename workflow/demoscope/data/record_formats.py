"""The record-format registry (`FORMATS`: a source's `format` -> its parser).

A parser turns one raw row of a split into a `records.Record`:
`parse(obj, where, index, spec, key) -> Record`, raising `records.DataError` (its message
starting with `where`) for a row it cannot read; `spec` is the source's config block
(`tasks.<task>.local` or `.hub`) and `key` that block's config path, for messages. A new format
is one module with its `parse`, one entry here (imported statically: the code hash of every
rule that reads records is the AST walk of its script's imports) and its name in the schema's
two `format` enums (a test compares them).
"""

from __future__ import annotations

from typing import Callable

from demoscope.data import records

FORMATS: dict[str, Callable] = {
    "dataicl": records.parse_dataicl,
    "ai2_mc": records.parse_ai2_mc,
    "gsm8k": records.parse_gsm8k,
    "fields": records.parse_fields,
}
