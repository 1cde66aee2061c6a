"""SHA-256 of the shipped prior's SHA256SUMS (written by `python -m mlmodels.core.prior_training --ship`).

Pinning the checksum list in code means a changed model file AND a matching edited SHA256SUMS
are still refused: the artifact must be the one this commit shipped.
"""

SHA256SUMS_DIGEST = "afac6da797bbb6e4d033f2212c8740b35c91bcd78ac5698b6ea4b2a8d55422ee"
