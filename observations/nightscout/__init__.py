"""Speaking Nightscout: live readings from the CGM apps people already run.

- `entries`: Nightscout entry JSON (xDrip+, AndroidAPS, Loop uploads; a site's entries.json)
  turned into the RawReadings every import uses, with what is skipped and why.
- `secrets`: the per-person upload secret (stored only as a hash) and its DRF authentication.
- `api` / `urls`: the Nightscout REST API v1 surface under /ns/ that uploaders post to.
- `outbound`: safe HTTP to a person's own Nightscout site (address checks, timeouts, size cap).
- `pull`: the scheduled, incremental pull from that site with backoff and a visible status.
- API v3 (AndroidAPS' NSClientV3, docs/nightscout-v3.md): `tokens` (access token -> JWT, the
  bearer authentication, the Date check), `documents` (Nightscout's document rules: identifier,
  common fields, search query, history pages), `v3_entries` / `v3_treatments` / `v3_unstored`
  (each collection over the storage above) and `v3` (the views).

Kept apart from the file importers because this is a protocol, not a file format: it has
authentication, limits and a schedule of its own.
"""
