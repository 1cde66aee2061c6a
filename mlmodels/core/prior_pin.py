"""SHA-256 of the shipped prior's SHA256SUMS (written by `python -m mlmodels.core.prior_training --ship`).

Pinning the checksum list in code means a changed model file AND a matching edited SHA256SUMS
are still refused: the artifact must be the one this commit shipped.
"""

SHA256SUMS_DIGEST = "963f091c82357ab624a75fbe7ce52b77596bc37e8c7df5f43e5b6a8bb0dad1b8"
