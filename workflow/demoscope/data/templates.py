"""Render records into demonstration, query and answer text with a task's template.

A 1-shot prompt is `instruction + demonstration + separator + query`, and each
option is scored as the continuation `answer_prefix + option`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from demoscope.data.records import Record

DEFAULT_TEMPLATE = {
    "instruction": "",
    "demonstration": "{input}{answer_prefix}{answer}",
    "query": "{input}",
    "separator": "\n\n",
    "answer_prefix": " ",
}


@dataclass(frozen=True)
class Template:
    instruction: str
    demonstration: str
    query: str
    separator: str
    answer_prefix: str

    @classmethod
    def from_config(cls, cfg: dict | None) -> "Template":
        merged = {**DEFAULT_TEMPLATE, **(cfg or {})}
        return cls(**{k: merged[k] for k in DEFAULT_TEMPLATE})

    def _fields(self, record: Record) -> dict:
        return {"input": record.input, "answer": record.answer, "answer_prefix": self.answer_prefix}

    def demonstration_text(self, record: Record) -> str:
        return self.demonstration.format(**self._fields(record))

    def query_text(self, record: Record) -> str:
        return self.query.format(**self._fields(record))

    def option_texts(self, record: Record) -> list[str]:
        return [self.answer_prefix + option for option in record.options]

    def digest(self) -> str:
        """Stable hash stored with every activation dump, so a store can be traced to its template."""
        return hashlib.sha256(json.dumps(self.__dict__, sort_keys=True).encode()).hexdigest()[:16]
