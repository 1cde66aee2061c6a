"""SHA-256 of the shipped prior's SHA256SUMS (written by `python -m mlmodels.core.prior_training --ship`).

Pinning the checksum list in code means a changed model file AND a matching edited SHA256SUMS
are still refused: the artifact must be the one this commit shipped.
"""

SHA256SUMS_DIGEST = "1e67ab9ea45cebef65275981b00793a34da49243e54d508de11d548967aa32ca"
