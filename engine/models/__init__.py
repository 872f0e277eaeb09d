"""Networks of the engine: the Wan DiT, the Wan VAE and the umT5 encoder.

Importing a model file does no I/O and touches no device; building and loading weights is
``engine.loading``'s job.
"""

from engine.models.wan_dit import WanDiT

__all__ = ["WanDiT"]
