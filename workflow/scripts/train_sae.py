from checkout import log_to

log_to(snakemake.log[0])

from demoscope.lm import jobclock, modeljob
from demoscope import paths
from demoscope.lm.models import resolve_device
from demoscope.parquet import read_table
from demoscope.lenses.sae.io import save_sae
from demoscope.lenses.sae.train import train_sae
from demoscope.lenses.sae.pool import training_records
from demoscope.activations.store import open_store

modeljob.torch_threads(snakemake)
wildcards = snakemake.wildcards
pool = read_table(snakemake.input.pool)
n_train = training_records(pool)
output = snakemake.output[0]
# Beside the output, not in it (paths.sae_checkpoint says why).
checkpoint = paths.sae_checkpoint(wildcards.model, wildcards.task, wildcards.site, wildcards.layer)
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
