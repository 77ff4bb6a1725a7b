from checkout import log_to

log_to(snakemake.log[0])

from pathlib import Path

import yaml

Path(snakemake.output[0]).write_text(yaml.safe_dump(snakemake.params.config, sort_keys=False))
