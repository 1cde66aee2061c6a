"""SHA-256 of the shipped prior's SHA256SUMS (written by `python -m mlmodels.core.prior_training --ship`).

Pinning the checksum list in code means a changed model file AND a matching edited SHA256SUMS
are still refused: the artifact must be the one this commit shipped.
"""

SHA256SUMS_DIGEST = "4894a3e52ecbcb20298bd48d4e698626379a7f7a7e0005e405ecd8feb2b28554"
