from checkout import log_to

log_to(snakemake.log[0])

from pathlib import Path

from demoscope import jobclock, modeljob
from demoscope.models import resolve_device
from demoscope.parquet import read_table
from demoscope.sae_io import save_sae
from demoscope.sae_train import train_sae
from demoscope.sae_pool import training_records
from demoscope.store import open_store

modeljob.torch_threads(snakemake)
wildcards = snakemake.wildcards
pool = read_table(snakemake.input.pool)
n_train = training_records(pool)
output = Path(snakemake.output[0])
# Beside the output, not in it: Snakemake removes a failed job's outputs, and the checkpoint
# must outlive a killed job for the rerun to resume from it.
checkpoint = output.with_name(output.name + ".checkpoint.pt")
jobclock.work_starts()
sae, record = train_sae(
    open_store(snakemake.input.store),
    int(wildcards.layer),
    (0, n_train),
    (n_train, len(pool)),
    **snakemake.params.training,
    checkpoint_path=checkpoint,
    checkpoint_every=snakemake.config["sae"]["checkpoint_every"],
    device=resolve_device(snakemake.config["compute"]["device"]),
)
save_sae(
    sae,
    output,
    model=wildcards.model,
    task=wildcards.task,
    site=wildcards.site,
    layer=int(wildcards.layer),
    source="trained",
    **record,
)
