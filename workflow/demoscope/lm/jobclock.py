"""Where a model job's time goes, written to its log: the seconds before its first forward
(interpreter, imports, model load, tokenising) and the tokens it forwarded.

benchmarks/jobs.py reads these lines back, beside Snakemake's benchmark files, to split a run's
job-seconds into start-up and model work; benchmarks/run.py turns the tokens into FLOPs.
Imports nothing heavy at module level: light jobs may import it without paying for torch.
"""

from __future__ import annotations

import atexit
import os
import sys
import time

FIRST_FORWARD = "first forward after {seconds:.2f} s"
FORWARDED = "forwarded {tokens} tokens through {parameters} parameters"


def process_age() -> float:
    """Seconds since this process was created (the interpreter's own start-up included)."""
    import psutil  # a Snakemake dependency, so always there where a job runs

    return time.time() - psutil.Process(os.getpid()).create_time()


def watch_first_forward(stream=None) -> None:
    """Log `first forward after X s` when any torch module first runs forward in this
    process, then stop watching (one global pre-hook, removed on its first call)."""
    import torch

    handle = None

    def hook(module, args):
        handle.remove()
        print(FIRST_FORWARD.format(seconds=process_age()), file=stream or sys.stderr, flush=True)

    handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)


def _positions(args, kwargs) -> int:
    """Token positions one forward computes: input_ids (or inputs_embeds) batch x length,
    padding included, one per step when decoding with a cache."""
    ids = kwargs.get("input_ids", args[0] if args else None)
    if ids is None:
        embeds = kwargs.get("inputs_embeds")
        return 0 if embeds is None else int(embeds.shape[0] * embeds.shape[1])
    return int(ids.numel())


def meter(model, body=None, stream=None, at_exit: bool = True) -> dict:
    """Watch for the first forward, count the tokens forwarded through `body` (default: the
    model's decoder, which every forward of these jobs goes through) and, at exit, log them
    with `model`'s parameter count (`forwarded_line`). Returns the live counts."""
    from demoscope.lm.models import backbone

    watch_first_forward(stream)
    body = body if body is not None else backbone(model)
    counts = {"tokens": 0, "forwards": 0, "parameters": sum(p.numel() for p in model.parameters())}

    def hook(module, args, kwargs):
        counts["tokens"] += _positions(args, kwargs)
        counts["forwards"] += 1

    body.register_forward_pre_hook(hook, with_kwargs=True)

    if at_exit:
        atexit.register(_log_forwarded, counts, stream)
    return counts


def _log_forwarded(counts: dict, stream=None) -> None:
    """At exit, the tokens line; not when the job dies of an uncaught exception, whose one-line
    cause (scripts/checkout.py) must stay the log's last line. A failed job has no benchmark
    file, so benchmarks/jobs.py never reads its tokens."""
    if getattr(sys, "last_value", None) is not None or getattr(sys, "last_exc", None) is not None:
        return
    print(forwarded_line(counts), file=stream or sys.stderr, flush=True)


def forwarded_line(counts: dict) -> str:
    return FORWARDED.format(**counts) + f" in {counts['forwards']} forwards"


def work_starts(stream=None) -> None:
    """Log the same line where a job's real work is not a module forward (SAE training and
    encoding): everything before it is start-up."""
    print(FIRST_FORWARD.format(seconds=process_age()), file=stream or sys.stderr, flush=True)
