"""The feature columns of the lenses that run as model jobs of their own (SAE, task vector), in
one light module: the lens registry and those jobs' modules both read them. The jobs import
this, not the registry, so that an edit to another lens (moments, massive) reruns no model job.
"""

SAE = ("sae_nmse", "sae_l0", "sae_entropy", "sae_task_cosine")
TASK_VECTOR = ("tv_cosine", "tv_norm")
