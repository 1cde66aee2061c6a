"""Nightscout API v3 collections glucast accepts but does not keep: devicestatus, profile, food,
settings. Decided from what AndroidAPS' NSClientV3 does with each (plugins/sync nsclientV3):

- devicestatus: posted after every loop run (pump battery and reservoir, the loop's IOB/COB and
  its own predictions, the temp basal it enacted). Any answer but 200/201 makes AndroidAPS log
  an error and retry the same status every cycle, so a create answers 200 with an identifier
  and says, in the body, that nothing was stored. glucast forecasts on its own and never from
  another algorithm's dosing decisions; downloads (`history`) are empty.
- profile: the profile store (basal schedule, ISF, carb ratios) is posted when it changes:
  the same 200-not-stored answer; `GET profile?sort$desc=date&limit=1` and history are empty,
  so AndroidAPS finds no profile to import from glucast.
- food: only read (`GET food?limit=1000` on every cycle): an empty list.
- settings: never called by AndroidAPS; /status must still list it as "crud" (AndroidAPS
  uploads only when all six collections are) and any call answers as above.

Nothing here touches the database; /lastModified leaves these collections out, so AndroidAPS
does not try to download them.
"""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from observations.nightscout.documents import (
    SearchQuery,
    V3Error,
    epoch_ms,
    normalize_for_create,
    require_object,
    validate_common,
)

REASONS = {
    "devicestatus": "glucast does not store device status (pump, loop and its predictions): "
                    "its forecasts use recorded glucose and treatments only, for information, never for dosing",
    "profile": "glucast does not store therapy profiles (basal schedule, ISF, carb ratios)",
    "food": "glucast does not store a food database",
    "settings": "glucast does not store client settings",
}


class UnstoredCollection:
    def __init__(self, name: str):
        self.name = name
        self.reason = REASONS[name]

    def create(self, *, person, doc: object, now: datetime | None = None) -> tuple[int, dict]:
        doc = dict(require_object(doc))
        normalize_for_create(doc)
        validate_common(doc)
        now = now or timezone.now()
        return 200, {"identifier": doc["identifier"], "isDeduplication": False, "lastModified": epoch_ms(now),
                     "stored": False, "reason": self.reason}

    def read(self, *, person, identifier: str, fields=None) -> dict:
        raise V3Error(404)

    def search(self, *, person, query: SearchQuery) -> list[dict]:
        return []

    def history(self, *, person, since_ms: int, inclusive: bool, limit: int, fields=None):
        return [], None

    def last_modified(self, person) -> int | None:
        return None

    def update(self, *, person, identifier: str, doc: object, replace: bool = False, now=None):
        raise V3Error(404)

    def delete(self, *, person, identifier: str, permanent: bool = False, now=None) -> None:
        raise V3Error(404)
