"""The start of every job that runs a model or torch: threads, the model on the configured device and dtype, the job clock.

A script first sends its stderr to the rule's log (`checkout.log_to`, which also puts this
checkout's package on the path), then calls `start` where it needs the model. The job clock
(`jobclock`) then logs `first forward after X s` and, at exit, `forwarded N tokens ...`,
the lines benchmarks/jobs.py reads. torch and transformers are imported here, inside the
functions, so that importing this module costs a light job nothing.
"""

from __future__ import annotations


def torch_threads(snakemake) -> None:
    """Let torch use the job's cores (`threads:` of the rule), and no more: jobs share a machine."""
    import torch

    torch.set_num_threads(snakemake.threads)


def start(snakemake, dtype: str | None = None, load=None):
    """(model, tokenizer, device): the rule's `input.model` loaded on `compute.device` in `dtype`
    (default: the rule's `params.dtype`), its forwards metered by the job clock.

    `load(path, device, dtype)`, when given, replaces `models.load` (the embedding encoder);
    its forwards are metered at the loaded module itself rather than at a decoder inside it."""
    from demoscope.lm import jobclock, models

    torch_threads(snakemake)
    device = snakemake.config["compute"]["device"]
    dtype = snakemake.params.dtype if dtype is None else dtype
    if load is None:
        model, tokenizer, device = models.load(snakemake.input.model, device, dtype)
        jobclock.meter(model)
    else:
        model, tokenizer, device = load(snakemake.input.model, device, dtype)
        jobclock.meter(model, body=model)
    return model, tokenizer, device
