"""SHA-256 of the shipped prior's SHA256SUMS (written by `python -m mlmodels.core.prior_training --ship`).

Pinning the checksum list in code means a changed model file AND a matching edited SHA256SUMS
are still refused: the artifact must be the one this commit shipped.
"""

SHA256SUMS_DIGEST = "03b48c81b687a703bcbe109156c8e65b2ff63f101a1822aa33ecfe2b9c4ba913"
