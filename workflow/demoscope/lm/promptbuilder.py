"""One prompt builder for every stage: a prompt is rendered once, tokenised once, and each of
its parts (instruction, separators, demonstrations, query, option) gets its token span from the
tokenizer's offset mapping.

Why one builder: a byte-level BPE tokenises `"...negative.\\n\\n"` at the end of a string as one
`"\\n\\n"` token but `"\\n\\nReview"` inside a prompt as two `"\\n"` tokens. A store that encodes
the instruction and a demonstration apart therefore reads other tokens, at other positions,
than the prompt quality is scored on. Here every stage asks for the same rendered text and
slices the same token ids.

A prompt is

    [instruction, separator,] demo_0, separator, demo_1, ..., [separator, query] [answer_prefix + option]

(the instruction and its separator only where the template has an instruction text; with no
demonstration the query follows the instruction's separator directly). A token belongs to the
part that holds its last character, so a token merged across a boundary (a separator " "
glued to the next word) goes with the word it ends; special tokens (a BOS) form the part
`special`.

Callers that share work through a KV cache (scoring, generation, the `query` mask) feed a
prefix (instruction + demonstrations) and then a continuation (separator + query, then an
option). `PromptBuilder.split` cuts the full prompts at those boundaries and refuses, naming
the case, a tokenizer whose tokens would cross them: then the cached prefix would not be
the prompt's own tokens.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from demoscope.data.templates import Template


class PromptError(ValueError):
    """A prompt the builder cannot split exactly; the message names the part and the text."""


@dataclass(frozen=True)
class Part:
    name: str  # special, instruction, separator, demonstration, query, option
    index: int  # which demonstration or separator (0-based); 0 for the others
    start: int  # token span [start, stop)
    stop: int
    char_start: int  # character span in the rendered text (0, 0 for special tokens)
    char_stop: int


@dataclass(frozen=True)
class Prompt:
    text: str
    ids: list[int]
    parts: list[Part]

    def part(self, name: str, index: int = 0) -> Part:
        for part in self.parts:
            if part.name == name and part.index == index:
                return part
        raise KeyError(f"prompt has no part {name}[{index}]")

    def span(self, name: str, index: int = 0) -> tuple[int, int]:
        part = self.part(name, index)
        return part.start, part.stop

    def tokens(self, name: str, index: int = 0) -> list[int]:
        start, stop = self.span(name, index)
        return self.ids[start:stop]


def render(template: Template, demonstrations: list[str], query: str | None = None, option: str | None = None):
    """The prompt text and its parts as (name, index, char_start, char_stop)."""
    pieces: list[tuple[str, int, str]] = []
    n_sep = 0

    def separator():
        nonlocal n_sep
        pieces.append(("separator", n_sep, template.separator))
        n_sep += 1

    if template.instruction:
        pieces.append(("instruction", 0, template.instruction))
        separator()
    for i, demo in enumerate(demonstrations):
        if i:
            separator()
        pieces.append(("demonstration", i, demo))
    if query is not None:
        if demonstrations:
            separator()
        pieces.append(("query", 0, query))
    if option is not None:
        pieces.append(("option", 0, template.answer_prefix + option))
    text, chars, at = "", [], 0
    for name, index, piece in pieces:
        chars.append((name, index, at, at + len(piece)))
        text += piece
        at += len(piece)
    return text, chars


class PromptBuilder:
    """Renders and tokenises prompts of one template with one tokenizer."""

    def __init__(self, tokenizer, template: Template):
        if not getattr(tokenizer, "is_fast", False):
            raise PromptError(
                f"{type(tokenizer).__name__} is not a fast tokenizer: the prompt builder needs its offset mapping"
            )
        self.tokenizer, self.template = tokenizer, template

    def build_many(self, specs: list[tuple[list[str], str | None, str | None]]) -> list[Prompt]:
        """One Prompt per (demonstrations, query or None, option or None), tokenised in one batch."""
        rendered = [render(self.template, list(demos), query, option) for demos, query, option in specs]
        if not rendered:
            return []
        encoded = self.tokenizer(
            [text for text, _ in rendered], add_special_tokens=True, return_offsets_mapping=True,
            return_special_tokens_mask=True,
        )
        return [
            _assign(text, chars, ids, offsets, special)
            for (text, chars), ids, offsets, special in zip(
                rendered, encoded["input_ids"], encoded["offset_mapping"], encoded["special_tokens_mask"]
            )
        ]

    def build(self, demonstrations: list[str], query: str | None = None, option: str | None = None) -> Prompt:
        return self.build_many([(demonstrations, query, option)])[0]

    def prefixes(self, demo_sets: list[list[str]]) -> list[list[int]]:
        """Token ids of each prefix: the instruction and the demonstrations, with special tokens."""
        return [p.ids for p in self.build_many([(list(d), None, None) for d in demo_sets])]

    def split(self, demo_sets: list[list[str]], queries: list[str]) -> tuple[list[list[int]], list[list[int]], list[int]]:
        """(prefix ids per set, continuation ids per query, where each query's own tokens start
        in its continuation): prefix + continuation is exactly the full prompt's tokenisation.

        A continuation is `separator + query` (after a prefix with a demonstration) and must not
        depend on the prefix; both are checked: every query after the first set, and the first
        query after every set. A set with no demonstrations (its prefix is the instruction
        alone, or nothing) is not allowed here: its continuation has no separator.
        """
        if not demo_sets or not queries:
            return self.prefixes(demo_sets), [], []
        if any(len(d) == 0 for d in demo_sets):
            raise PromptError("split: every prefix needs at least one demonstration")
        prefixes = self.prefixes(demo_sets)
        ref = list(demo_sets[0])
        fulls = self.build_many([(ref, q, None) for q in queries])
        continuations, starts = [], []
        for q, full in enumerate(fulls):
            cont = _continuation(full, prefixes[0], f"query {q} {queries[q][:60]!r} after the first prefix")
            continuations.append(cont)
            starts.append(full.part("query").start - len(prefixes[0]))
        for s, full in enumerate(self.build_many([(list(d), queries[0], None) for d in demo_sets])):
            cont = _continuation(full, prefixes[s], f"query 0 after prefix {s}")
            if cont != continuations[0]:
                raise PromptError(
                    f"prefix {s}: the query's tokens depend on the demonstration before it "
                    f"({cont[:8]} vs {continuations[0][:8]}); the separator {self.template.separator!r} "
                    "merges with the text around it"
                )
        return prefixes, continuations, starts

    def options(self, queries: list[str], options: list[list[str]], what: str = "query") -> list[list[list[int]]]:
        """Token ids of each query's options (`answer_prefix + option`) as they continue the query,
        from the joint tokenisation of query + option; refused where the option's tokens would
        merge with the query's."""
        specs = [([], q, o) for q, opts in zip(queries, options) for o in opts]
        # No instruction here: an option's tokens depend only on the query text just before it.
        bare = PromptBuilder.__new__(PromptBuilder)
        bare.tokenizer = self.tokenizer
        bare.template = Template(**{**self.template.__dict__, "instruction": ""})
        built = iter(bare.build_many(specs))
        alone = bare.build_many([([], q, None) for q in queries])
        out = []
        for q, opts in enumerate(options):
            row = []
            for k, option in enumerate(opts):
                full = next(built)
                ids = _continuation(full, alone[q].ids, f"{what} {q}, option {k} {option!r}")
                if not ids:
                    raise PromptError(f"{what} {q}: option {k} {option!r} encodes to no tokens")
                row.append(ids)
            out.append(row)
        return out


def _continuation(full: Prompt, prefix: list[int], what: str) -> list[int]:
    if full.ids[: len(prefix)] != prefix:
        raise PromptError(
            f"{what}: the prompt's tokens do not start with its prefix's tokens; a token crosses the "
            f"boundary in {full.text!r}"
        )
    return full.ids[len(prefix):]


def _assign(text: str, chars: list[tuple], ids: list[int], offsets, special) -> Prompt:
    """Token spans of every part: each non-special token goes to the part holding its last character."""
    starts = [c[2] for c in chars]
    owner = []
    for (start, stop), is_special in zip(offsets, special):
        if is_special:
            owner.append(-1)
            continue
        last = stop - 1 if stop > start else start
        owner.append(max(0, bisect.bisect_right(starts, last) - 1))
    parts = []
    lead = 0
    while lead < len(owner) and owner[lead] == -1:
        lead += 1
    if lead:
        parts.append(Part("special", 0, 0, lead, 0, 0))
    for j, (name, index, c0, c1) in enumerate(chars):
        mine = [t for t, o in enumerate(owner) if o == j]
        if mine:
            if mine != list(range(mine[0], mine[-1] + 1)):
                raise PromptError(f"part {name}[{index}] of {text!r} is not one run of tokens")
            start, stop = mine[0], mine[-1] + 1
        else:  # an empty part (or one whose only token went to the next part): a zero-width span
            later = [t for t, o in enumerate(owner) if o > j]
            start = stop = later[0] if later else len(owner)
        parts.append(Part(name, index, start, stop, c0, c1))
    return Prompt(text=text, ids=list(ids), parts=parts)


def encode_for_scoring(
    tokenizer, template: Template, demo_sets: list[list[str]], queries: list[str], options: list[list[str]] | None = None
) -> tuple[list[list[int]], list[list[int]], list[list[list[int]]] | None]:
    """What `scoring.score_options` and `generation.generate` feed: prefix ids per set of
    demonstrations, continuation ids (separator + query) per query, and each query's option
    ids (None without options), all cut from the prompts' single tokenisation."""
    builder = PromptBuilder(tokenizer, template)
    prefixes, continuations, _ = builder.split(demo_sets, queries)
    return prefixes, continuations, (None if options is None else builder.options(queries, options))
