"""Every feature schema glucast has shipped, keyed by version (numeric core, no Django).

A stored model names the feature schema it was built for (`{"version": N, "names": [...]}` in
its manifest, plus what else that schema depends on). Serving builds the model's input with the
builder registered for that version, so a model keeps the features it was trained on while the
code moves on: release-1 models keep serving after release 2 ships, and a rollout can serve two
releases side by side.

    builder_for(stored_schema) -> FeatureBuilder     raises FeatureSchemaMismatch when unknown
    training_builder(prior) -> FeatureBuilder        what a new model is trained with now
    load_prior() -> PopulationPrior                  raises PriorUnavailable

Registered schemas:

1. `Release1Features`: the 40 window features of `features.window_features` (the last two
   hours relative to the current value, rates, rolling statistics, clock, gaps).
2. `Release2Features`: release 1's columns, then the population prior's forecast change at
   every short horizon (`prior_change_5min` .. `prior_change_120min`), then the window itself
   (`window_120min_ago` .. `window_0min_ago`, for the prior's far horizons, which also need the
   person's time-of-day profile and so are computed when a forecast asks for them). The schema records the
   prior's version; a model built on one prior cannot be served with another (its inputs would
   silently change), so a different shipped prior is a mismatch too, and the person falls back
   until retrained.
3. `Release3Features`: release 2's columns, then the features of the person's RECORDED, PAST
   treatments at each origin (`mlmodels/core/treatments.py`: insulin and carbs on board under
   several curves, what already-given insulin and carbs will do in the next 30/60/120 min,
   basal deviations, meal timing, steps). The schema also records the person's usual basal
   rate (basal insulin counts as its deviation from it). The builder is bound to a person's
   treatments (`bind`) for training and evaluation; serving passes the treatments recorded
   before the forecast's origin to `build`.

Adding a release: write a builder whose `build` returns the new matrix (keep the old columns as
a prefix where possible, so `features.all_feature_names()` indices stay valid), register it in
`REGISTRY`, and point `training_builder` at it. Retiring one: `manage.py retire_schema` retrains
everyone still on it and only then marks it retired (mlmodels/retirement.py); after that it may
be removed here. A model whose schema is not in the registry falls back to the baseline with the
reason logged.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd

from mlmodels.core.features import (
    HORIZONS,
    PRIOR_CHANGE_FEATURES,
    TREATMENT_INPUT_FEATURES,
    WINDOW_VALUE_FEATURES,
    FeatureSchemaMismatch,
    feature_names,
    grid_windows,
    window_features,
)
from mlmodels.core.population import forecast_line, shipped_prior
from mlmodels.core.treatments import Treatments, treatment_features

RELEASE_1 = 1
RELEASE_2 = 2
RELEASE_3 = 3
# Column where the window values start in every release-2-or-later matrix (release 3 appends
# its treatment columns after them).
_WINDOW_START = len(feature_names()) + len(PRIOR_CHANGE_FEATURES)


class PriorUnavailable(FeatureSchemaMismatch):
    """The shipped population prior cannot be loaded (missing or damaged artifact)."""


def load_prior():
    """The population prior shipped with the code (loaded and verified once per process by its
    module); PriorUnavailable when its artifact is missing, damaged or cannot run here."""
    try:
        return shipped_prior()
    except Exception as exc:  # noqa: BLE001 - any load failure means: no prior in this process
        raise PriorUnavailable(f"the population prior could not be loaded: {exc.__class__.__name__}: {exc}") from exc


class FeatureBuilder:
    """Builds one schema's feature matrix from input windows; knows how to check a stored schema."""

    version: int = 0

    def names(self) -> list[str]:
        raise NotImplementedError

    def schema(self) -> dict:
        """What a model built with these features stores as its `feature_schema`."""
        return {"version": self.version, "names": self.names()}

    def check(self, stored: dict) -> None:
        if int(stored.get("version", -1)) != self.version:
            raise FeatureSchemaMismatch(
                f"feature schema version {stored.get('version')} is not built by the release-{self.version} builder"
            )
        names = list(stored.get("names") or [])
        if names != self.names():
            extra = sorted(set(names) - set(self.names()))
            lacking = sorted(set(self.names()) - set(names))
            raise FeatureSchemaMismatch(
                f"feature names differ from release {self.version} (unknown: {extra[:5]}, missing: {lacking[:5]}, "
                "or another order)"
            )

    def build(self, windows, interpolated, at_limit, times_ns, tz: str) -> np.ndarray:
        """(n, len(names)) features from (n, 25) windows, oldest first; NaN rows where a window has gaps."""
        raise NotImplementedError

    def build_grid(self, grid: pd.DataFrame, tz: str = "UTC") -> pd.DataFrame:
        """One row per grid time (same index as `grid`), for training and evaluation."""
        if len(grid) == 0:
            return pd.DataFrame(columns=self.names(), index=grid.index, dtype=float)
        windows, interpolated, at_limit = grid_windows(grid)
        matrix = self.build(windows, interpolated, at_limit, grid.index.asi8, tz)
        return pd.DataFrame(matrix, index=grid.index, columns=self.names())


class Release1Features(FeatureBuilder):
    version = RELEASE_1

    def names(self) -> list[str]:
        return feature_names()

    def build(self, windows, interpolated, at_limit, times_ns, tz: str) -> np.ndarray:
        return window_features(windows, interpolated, at_limit, times_ns, tz)


class Release2Features(FeatureBuilder):
    """Release 1 plus the population prior's forecast change at every short horizon."""

    version = RELEASE_2

    def __init__(self, prior):
        missing = [h for h in HORIZONS if h not in list(prior.horizons)]
        if missing:
            raise PriorUnavailable(f"the population prior lacks horizons {missing[:5]} that release 2 needs")
        self.prior = prior
        self._column_of = {int(h): i for i, h in enumerate(prior.horizons)}
        self._last: tuple | None = None
        self._columns = [self._column_of[h] for h in HORIZONS]

    def names(self) -> list[str]:
        return feature_names() + PRIOR_CHANGE_FEATURES + WINDOW_VALUE_FEATURES

    def schema(self) -> dict:
        return {**super().schema(), "prior_version": str(self.prior.version)}

    def check(self, stored: dict) -> None:
        super().check(stored)
        if forecast_line(str(stored.get("prior_version"))) != forecast_line(str(self.prior.version)):
            raise FeatureSchemaMismatch(
                f"the model was built on population prior {stored.get('prior_version')}; this code ships "
                f"{self.prior.version}"
            )

    def build(self, windows, interpolated, at_limit, times_ns, tz: str, *, profile=None) -> np.ndarray:
        """With `profile` (serving a forecast that reaches beyond 2 hours) the prior's far
        forecast for that profile comes out of the same call and is kept for `forecast_with_profile`."""
        windows = np.asarray(windows, dtype=np.float64)
        base = window_features(windows, interpolated, at_limit, times_ns, tz)
        k = base.shape[1]
        out = np.full((len(windows), k + len(HORIZONS) + windows.shape[1]), np.nan)
        out[:, :k] = base
        complete = np.isfinite(windows).all(axis=1)
        if complete.any():
            times_ns = np.asarray(times_ns, dtype=np.int64)
            if profile is not None:
                forecast = self.forecast_with_profile(windows[complete], times_ns[complete], tz, profile)["value"]
            else:
                forecast = np.asarray(self.prior.predict(windows[complete], times_ns[complete], tz), dtype=np.float64)
            out[complete, k : k + len(HORIZONS)] = forecast[:, self._columns] - windows[complete, -1:]
            out[complete, k + len(HORIZONS):] = windows[complete]
        return out

    def forecast_with_profile(self, windows, times_ns, tz: str, profile) -> dict[str, np.ndarray]:
        """The prior's forecast and bands with the person's profile, all horizons; the last one is
        remembered, so building a forecast's features and extending it past 2 hours run the
        prior once (its short part does not depend on the profile)."""
        windows = np.ascontiguousarray(windows, dtype=np.float64)
        times_ns = np.ascontiguousarray(times_ns, dtype=np.int64)
        key = (windows.tobytes(), times_ns.tobytes(), tz, id(profile))
        last = self._last  # read once: another thread may replace it
        if last is not None and last[0] == key:
            return last[1]
        full = self.prior.forecast(windows, times_ns, tz, profile=profile)
        self._last = (key, full)
        return full

    def prior_columns(self, horizons) -> list[int]:
        """Columns of the prior's output for `horizons` (beyond its last horizon: its last one)."""
        last = len(self._column_of) - 1
        return [self._column_of.get(int(h), last) for h in horizons]

    @staticmethod
    def windows_of(X: np.ndarray) -> np.ndarray:
        """The (n, 25) windows a release-2 (or later) matrix carries."""
        return np.asarray(X)[:, _WINDOW_START: _WINDOW_START + len(WINDOW_VALUE_FEATURES)]


class Release3Features(Release2Features):
    """Release 2 plus the person's recorded past treatments (module docstring)."""

    version = RELEASE_3

    def __init__(self, prior, *, reference_basal_u_h: float | None = None, treatments: Treatments | None = None):
        super().__init__(prior)
        self.reference_basal_u_h = None if reference_basal_u_h is None else float(reference_basal_u_h)
        self.treatments = treatments

    def names(self) -> list[str]:
        return super().names() + TREATMENT_INPUT_FEATURES

    def schema(self) -> dict:
        return {**super().schema(), "reference_basal_u_h": self.reference_basal_u_h}

    def bind(self, treatments: Treatments | None) -> "Release3Features":
        """A builder for the same model that reads `treatments` (training, evaluation, benches).
        A copy: a served model's builder is shared between threads and never bound."""
        bound = copy.copy(self)
        bound.treatments = treatments
        bound._last = None
        return bound

    def build(self, windows, interpolated, at_limit, times_ns, tz: str, *, profile=None, treatments=None) -> np.ndarray:
        """`treatments`: what was recorded before the origins (serving); default the bound ones.
        Either way each origin sees only the treatments at or before it."""
        base = super().build(windows, interpolated, at_limit, times_ns, tz, profile=profile)
        tr = treatments if treatments is not None else self.treatments
        out = np.empty((len(base), base.shape[1] + len(TREATMENT_INPUT_FEATURES)))
        out[:, : base.shape[1]] = base
        times_ns = np.asarray(times_ns, dtype=np.int64)
        if len(times_ns) == 0:
            return out
        order = np.argsort(times_ns, kind="stable")
        sorted_ns = times_ns[order]
        if len(sorted_ns) > 1 and np.any(np.diff(sorted_ns) % (5 * 60 * 10**9)):
            # Origins on different 5-minute offsets (a batch of people): one origin at a time.
            feats = np.vstack([treatment_features(sorted_ns[i: i + 1], tr, reference_basal_u_h=self.reference_basal_u_h)
                               for i in range(len(sorted_ns))])
        else:
            feats = treatment_features(sorted_ns, tr, reference_basal_u_h=self.reference_basal_u_h)
        out[order, base.shape[1]:] = feats
        out[~np.isfinite(base).all(axis=1), base.shape[1]:] = np.nan
        return out


REGISTRY: dict[int, type[FeatureBuilder]] = {
    RELEASE_1: Release1Features, RELEASE_2: Release2Features, RELEASE_3: Release3Features,
}


def builder_for(stored: dict | None, *, prior=None) -> FeatureBuilder:
    """The builder that computes a stored model's features; FeatureSchemaMismatch if none can.

    `prior`: the population prior to use for release 2 (default: the shipped one).
    """
    stored = stored or {"version": RELEASE_1, "names": feature_names()}
    try:
        version = int(stored.get("version"))
    except (TypeError, ValueError):
        raise FeatureSchemaMismatch(f"stored feature schema has no usable version: {stored.get('version')!r}") from None
    if version not in REGISTRY:
        raise FeatureSchemaMismatch(
            f"feature schema version {version} is unknown to this code (known: {sorted(REGISTRY)})"
        )
    if version == RELEASE_3:
        builder: FeatureBuilder = Release3Features(
            prior if prior is not None else load_prior(), reference_basal_u_h=stored.get("reference_basal_u_h"))
    elif version == RELEASE_2:
        builder = Release2Features(prior if prior is not None else load_prior())
    else:
        builder = REGISTRY[version]()
    builder.check(stored)
    return builder


def training_builder(prior=None, treatments: Treatments | None = None) -> FeatureBuilder:
    """What new models are trained with: release 3 when a prior and the person's recorded
    treatments are given (bound to them; their usual basal from those records), release 2 with
    a prior alone, else release 1."""
    if prior is not None and treatments is not None:
        return Release3Features(prior, reference_basal_u_h=treatments.median_basal_u_h()).bind(treatments)
    return Release2Features(prior) if prior is not None else Release1Features()
