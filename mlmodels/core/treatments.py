"""Recorded treatments as model inputs: insulin and carbohydrates on board, and more (numeric core).

Only what a person had RECORDED BEFORE each forecast origin enters its features: every quantity
here at origin t is a sum over treatments at or before t (causal), and a forecast never sees a
treatment after its origin (glucast never forecasts "what if I take N units").

Insulin activity (oref0 `lib/iob/calculate.js`, `iobCalcExponential`, the exponential curve that
oref0, AndroidAPS and Loop use; after Dragan Maksimovic's derivation, LoopKit/Loop#388). For a
dose given `t` minutes ago, with peak activity at `tp` and duration of action `td` (minutes):

    tau = tp * (1 - tp / td) / (1 - 2 * tp / td)        time constant of the decay
    a   = 2 * tau / td                                  rise-time factor
    S   = 1 / (1 - a + (1 + a) * exp(-td / tau))        scale so that the activity integrates to 1
    activity(t) = S / tau**2 * t * (1 - t / td) * exp(-t / tau)             (fraction per minute)
    iob(t)      = 1 - S * (1 - a) * ((t**2 / (tau * td * (1 - a)) - t / tau - 1) * exp(-t / tau) + 1)

with iob(0) = 1 and iob(td) = 0. Peaks by insulin kind as oref0 ships them: rapid-acting
(NovoLog/Humalog/Apidra) 75 min, ultra-rapid (Fiasp/Lyumjev) 55 min; duration 6 h by default.
Regular human insulin (e.g. Novolin R in the Shanghai corpus) has no oref0 curve: peak 120 min,
duration 8 h is used (the label's 2-4 h peak, 5-8 h duration) and documented as an approximation.

Carbohydrate absorption: linear over an absorption time A (Loop's default 3 h), or bilinear
(the absorption rate rises linearly to its peak at A/2 and falls back to 0 at A, a triangle).

Why several time constants: how fast a person's insulin and meals act differs between people
(and the recorded kind is often unknown). The features give the same insulin and carbs under a
few curves (faster and slower than the default); a per-person model weighs them on the person's
own data and so learns the person's absorption, and its coefficients their sensitivity (mg/dL per
unit, per gram). Besides "on board", each curve gives the part that will act (be absorbed) in the
next 30 / 60 / 120 minutes from treatments ALREADY given: still only past records, but the
quantity that drives the change to each horizon.

Vectorised: treatments are summed into 5-minute slots ending at the origins' grid, and every
feature is a causal convolution of those slots with a kernel of at most `KERNEL_MIN` minutes, so
the cost is linear in the span of data (training a 90-day person and serving one origin run the
same code). A treatment between two slots counts from the next slot (up to 5 minutes late,
never early).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

STEP_MIN = 5
STEP_NS = STEP_MIN * 60 * 10**9
MINUTE_NS = 60 * 10**9

DEFAULT_DIA_MIN = 360.0
# Peak activity (minutes) by insulin kind (oref0 defaults; 'regular' see the module docstring).
INSULIN_PEAK_MIN = {"rapid": 75.0, "ultra_rapid": 55.0, "regular": 120.0}
INSULIN_DIA_MIN = {"rapid": DEFAULT_DIA_MIN, "ultra_rapid": DEFAULT_DIA_MIN, "regular": 480.0}
DEFAULT_INSULIN_KIND = "rapid"
# The curves every dose is also seen under: the dose's own peak scaled by these factors.
INSULIN_PEAK_SCALES = (0.7, 1.0, 1.5)
CARB_ABSORPTION_MIN = (120.0, 180.0, 240.0)
BILINEAR_ABSORPTION_MIN = 180.0
AHEAD_MIN = (30, 60, 120)
MEAL_RECENT_MIN = 180.0
TIME_SINCE_MEAL_CAP_MIN = 360.0
STEPS_MIN = (30, 60)
# How far back a treatment can still matter: the slowest curve (regular insulin at the slowest
# peak scale) is over by 12 h.
KERNEL_MIN = 12 * 60
LOGGED_RECENTLY_MIN = 24 * 60.0


def exponential_activity(minutes, peak_min: float = 75.0, dia_min: float = DEFAULT_DIA_MIN) -> np.ndarray:
    """Fraction of a dose acting per minute, `minutes` after it (oref0's exponential curve)."""
    t = np.asarray(minutes, dtype=np.float64)
    tau, a, S = _curve_constants(peak_min, dia_min)
    out = S / tau**2 * t * (1 - t / dia_min) * np.exp(-t / tau)
    return np.where((t >= 0) & (t <= dia_min), out, 0.0)


def exponential_iob(minutes, peak_min: float = 75.0, dia_min: float = DEFAULT_DIA_MIN) -> np.ndarray:
    """Fraction of a dose still on board `minutes` after it (1 at 0, 0 from the duration on)."""
    t = np.asarray(minutes, dtype=np.float64)
    tau, a, S = _curve_constants(peak_min, dia_min)
    out = 1 - S * (1 - a) * ((t**2 / (tau * dia_min * (1 - a)) - t / tau - 1) * np.exp(-t / tau) + 1)
    return np.where(t < 0, 1.0, np.where(t >= dia_min, 0.0, out))


def _curve_constants(peak_min: float, dia_min: float) -> tuple[float, float, float]:
    if not 0 < peak_min < dia_min / 2:
        raise ValueError(f"insulin peak {peak_min} min must lie between 0 and half the duration {dia_min} min")
    tau = peak_min * (1 - peak_min / dia_min) / (1 - 2 * peak_min / dia_min)
    a = 2 * tau / dia_min
    S = 1 / (1 - a + (1 + a) * np.exp(-dia_min / tau))
    return tau, a, S


def linear_cob(minutes, absorption_min: float) -> np.ndarray:
    """Fraction of a meal's carbohydrates not yet absorbed, linear absorption."""
    t = np.asarray(minutes, dtype=np.float64)
    return np.where(t < 0, 1.0, np.clip(1 - t / absorption_min, 0.0, 1.0))


def bilinear_cob(minutes, absorption_min: float) -> np.ndarray:
    """Fraction not yet absorbed when the absorption rate is a triangle peaking at half of it."""
    t = np.clip(np.asarray(minutes, dtype=np.float64) / absorption_min, 0.0, 1.0)
    absorbed = np.where(t <= 0.5, 2 * t**2, 1 - 2 * (1 - t) ** 2)
    return 1 - absorbed


@dataclass
class Treatments:
    """One person's recorded treatments as plain arrays (UTC ns times; any order).

    insulin: boluses in units with their kind ('rapid', 'ultra_rapid', 'regular'; unknown: rapid).
    basal: delivered basal rate segments (start, U/h, minutes) from a pump; long-acting injections
    are not basal segments (flat action; not used). carbs: grams (NaN: a meal logged without a
    carbohydrate amount). steps: counts with their time.
    """

    insulin_ns: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    insulin_units: np.ndarray = field(default_factory=lambda: np.empty(0))
    insulin_kind: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))
    basal_ns: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    basal_rate_u_h: np.ndarray = field(default_factory=lambda: np.empty(0))
    basal_minutes: np.ndarray = field(default_factory=lambda: np.empty(0))
    carbs_ns: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    carbs_g: np.ndarray = field(default_factory=lambda: np.empty(0))
    steps_ns: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    steps: np.ndarray = field(default_factory=lambda: np.empty(0))

    def __post_init__(self):
        self.insulin_ns = np.asarray(self.insulin_ns, dtype=np.int64)
        self.insulin_units = np.asarray(self.insulin_units, dtype=np.float64)
        kinds = np.asarray(self.insulin_kind, dtype=object)
        self.insulin_kind = kinds if len(kinds) == len(self.insulin_ns) else np.full(
            len(self.insulin_ns), DEFAULT_INSULIN_KIND, dtype=object)
        self.basal_ns = np.asarray(self.basal_ns, dtype=np.int64)
        self.basal_rate_u_h = np.asarray(self.basal_rate_u_h, dtype=np.float64)
        self.basal_minutes = np.asarray(self.basal_minutes, dtype=np.float64)
        self.carbs_ns = np.asarray(self.carbs_ns, dtype=np.int64)
        self.carbs_g = np.asarray(self.carbs_g, dtype=np.float64)
        self.steps_ns = np.asarray(self.steps_ns, dtype=np.int64)
        self.steps = np.asarray(self.steps, dtype=np.float64)

    def before(self, end_ns: int) -> "Treatments":
        """Only what was recorded at or before `end_ns` (a basal segment is cut at it)."""
        keep_i, keep_b = self.insulin_ns <= end_ns, self.basal_ns <= end_ns
        keep_c, keep_s = self.carbs_ns <= end_ns, self.steps_ns <= end_ns
        minutes = np.minimum(self.basal_minutes[keep_b], (end_ns - self.basal_ns[keep_b]) / MINUTE_NS)
        return Treatments(
            self.insulin_ns[keep_i], self.insulin_units[keep_i], self.insulin_kind[keep_i],
            self.basal_ns[keep_b], self.basal_rate_u_h[keep_b], minutes,
            self.carbs_ns[keep_c], self.carbs_g[keep_c], self.steps_ns[keep_s], self.steps[keep_s],
        )

    def latest_ns(self) -> int | None:
        """Time of the newest recorded insulin or carbohydrate entry (steps do not count)."""
        times = np.concatenate([self.insulin_ns, self.basal_ns, self.carbs_ns])
        return int(times.max()) if len(times) else None

    @classmethod
    def from_frame(cls, frame) -> "Treatments":
        """From the frame `observations.treatments.services.treatments_between` returns (columns
        time, kind, amount, duration_min, insulin_kind, bolus_type; withdrawn rows never in it).

        - bolus: a dose at its time, with its insulin kind (unknown: rapid); intermediate and
          long-acting insulin has a flat action and is not used; an extended bolus counts at its
          start (its spread over the duration is not modelled);
        - basal_rate holds until the next basal_rate (at most 24 h); a temp_basal replaces it for
          its duration (the delivered rate); the basal features count the deviation from the
          person's usual rate;
        - carbs: grams at their time; steps: counted at the end of their interval; heart rate is
          not used.
        """
        if frame is None or len(frame) == 0:
            return cls()
        t = frame["time"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
        kind = frame["kind"].to_numpy(dtype=object)
        amount = frame["amount"].to_numpy(dtype=float)
        duration = frame["duration_min"].to_numpy(dtype=float)
        ins_kind = np.array([k or DEFAULT_INSULIN_KIND for k in frame["insulin_kind"]], dtype=object)
        bolus = (kind == "bolus") & np.isin(ins_kind, list(INSULIN_PEAK_MIN))
        carbs, steps = kind == "carbs", kind == "steps"
        start, rate, minutes = delivered_basal(t[kind == "basal_rate"], amount[kind == "basal_rate"],
                                               t[kind == "temp_basal"], amount[kind == "temp_basal"],
                                               duration[kind == "temp_basal"])
        step_end = t[steps] + (np.nan_to_num(duration[steps]) * MINUTE_NS).astype(np.int64)
        return cls(t[bolus], amount[bolus], ins_kind[bolus], start, rate, minutes,
                   t[carbs], amount[carbs], step_end, amount[steps])

    def median_basal_u_h(self) -> float | None:
        """The person's typical basal rate, weighted by how long each rate ran."""
        ok = np.isfinite(self.basal_rate_u_h) & (self.basal_minutes > 0)
        if not ok.any():
            return None
        rates, weights = self.basal_rate_u_h[ok], self.basal_minutes[ok]
        order = np.argsort(rates)
        cum = np.cumsum(weights[order])
        return float(rates[order][np.searchsorted(cum, cum[-1] / 2)])


def delivered_basal(schedule_ns, schedule_rate, temp_ns, temp_rate, temp_minutes, *, hold_max_min: float = 24 * 60.0):
    """Segments (start, U/h, minutes) of the basal actually delivered: each scheduled rate holds
    until the next one (at most `hold_max_min`), a temporary basal overrides it while it runs (a
    new one ends the one before). Sorted; cost O(n log n) in the rows."""
    schedule_ns, schedule_rate = np.asarray(schedule_ns, np.int64), np.asarray(schedule_rate, float)
    temp_ns, temp_rate = np.asarray(temp_ns, np.int64), np.asarray(temp_rate, float)
    temp_minutes = np.nan_to_num(np.asarray(temp_minutes, float))
    hold = int(hold_max_min * MINUTE_NS)
    order = np.argsort(schedule_ns, kind="stable")
    s_ns, s_rate = schedule_ns[order], schedule_rate[order]
    s_end = np.minimum(np.append(s_ns[1:], s_ns[-1] + hold if len(s_ns) else []), s_ns + hold) if len(s_ns) else s_ns
    order = np.argsort(temp_ns, kind="stable")
    t_ns, t_rate = temp_ns[order], temp_rate[order]
    # a new temporary basal ends the one before it (pumps run one at a time)
    t_end = np.minimum(t_ns + (temp_minutes[order] * MINUTE_NS).astype(np.int64),
                       np.append(t_ns[1:], np.iinfo(np.int64).max))
    cuts = np.unique(np.concatenate([s_ns, s_end, t_ns, t_end]))
    if len(cuts) < 2:
        return np.empty(0, np.int64), np.empty(0), np.empty(0)
    lo, hi = cuts[:-1], cuts[1:]
    rate = np.full(len(lo), np.nan)
    # the schedule row in force at each elementary interval
    i = np.searchsorted(s_ns, lo, side="right") - 1
    ok = (i >= 0) & (lo < s_end[np.maximum(i, 0)]) if len(s_ns) else np.zeros(len(lo), bool)
    rate[ok] = s_rate[i[ok]]
    # a temporary basal overrides it while it runs
    if len(t_ns):
        j = np.searchsorted(t_ns, lo, side="right") - 1
        run = (j >= 0) & (lo < t_end[np.maximum(j, 0)])
        rate[run] = t_rate[j[run]]
    keep = np.isfinite(rate)
    return lo[keep], rate[keep], (hi[keep] - lo[keep]) / MINUTE_NS


def treatment_feature_names() -> list[str]:
    names = []
    for scale in INSULIN_PEAK_SCALES:
        tag = f"p{int(round(scale * 100))}"
        names += [f"iob_{tag}"] + [f"insulin_next_{h}min_{tag}" for h in AHEAD_MIN]
    names += ["basal_iob_net"] + [f"basal_next_{h}min_net" for h in AHEAD_MIN[:2]]
    for a in CARB_ABSORPTION_MIN:
        tag = f"a{int(a)}"
        names += [f"cob_{tag}"] + [f"carbs_next_{h}min_{tag}" for h in AHEAD_MIN]
    names += ["cob_bilinear", "carbs_next_60min_bilinear"]
    names += ["meals_on_board", "minutes_since_meal", "carbs_last_3h"]
    names += [f"steps_{m}min" for m in STEPS_MIN]
    names += ["treatments_logged_24h"]
    return names


TREATMENT_FEATURES = treatment_feature_names()


def _slots(times_ns: np.ndarray, event_ns: np.ndarray, amounts: np.ndarray, first_ns: int, n: int) -> np.ndarray:
    """Amounts summed into n 5-minute slots (slot k ends at first_ns + k*STEP): an event counts
    from the first slot at or after it, events before the first slot's kernel reach are dropped."""
    out = np.zeros(n)
    if len(event_ns) == 0:
        return out
    k = np.ceil((event_ns - first_ns) / STEP_NS).astype(np.int64)
    ok = (k >= 0) & (k < n) & np.isfinite(amounts)
    np.add.at(out, k[ok], amounts[ok])
    return out


def _causal(slots: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """out[k] = sum_j slots[k - j] * kernel[j]: a causal convolution."""
    return np.convolve(slots, kernel)[: len(slots)]


# Below this many origins (serving, a batch of one person) the few needed sums are dot products
# with the last kernel-length slots instead of whole convolutions.
FEW_ORIGINS = 64


class _Reader:
    """The causal convolution of one slot series with any kernel, read at the origin slots."""

    def __init__(self, slots: np.ndarray, at: np.ndarray, n_kernel: int):
        self.slots, self.at = slots, at
        self.windows = None
        if len(at) <= FEW_ORIGINS:
            idx = at[:, None] - np.arange(n_kernel)[None, :]
            self.windows = np.where(idx >= 0, slots[np.clip(idx, 0, None)], 0.0)

    def __call__(self, kernel: np.ndarray) -> np.ndarray:
        if self.windows is not None:
            return self.windows @ kernel
        return _causal(self.slots, kernel)[self.at]


@lru_cache(maxsize=256)
def _kernel(curve: str, a: float, b: float, ahead: float) -> np.ndarray:
    """A cached kernel over the slot lags: what is on board now minus what will be at +`ahead`."""
    lags = _lags(KERNEL_MIN // STEP_MIN + 1)
    if curve == "iob":
        out = exponential_iob(lags, a, b) - (exponential_iob(lags + ahead, a, b) if ahead else 0.0)
    elif curve == "linear":
        out = linear_cob(lags, a) - (linear_cob(lags + ahead, a) if ahead else 0.0)
    elif curve == "bilinear":
        out = bilinear_cob(lags, a) - (bilinear_cob(lags + ahead, a) if ahead else 0.0)
    elif curve == "within":  # 1 for lags up to `a` minutes (b = 1: strictly below)
        out = (lags < a if b else lags <= a).astype(float)
    else:
        raise ValueError(curve)
    out.setflags(write=False)
    return out


def _lags(n_kernel: int) -> np.ndarray:
    return np.arange(n_kernel) * float(STEP_MIN)


def treatment_features(
    times_ns, treatments: Treatments | None, *, reference_basal_u_h: float | None = None
) -> np.ndarray:
    """(n, len(TREATMENT_FEATURES)) features at each origin in `times_ns` (UTC ns, ascending,
    on one 5-minute grid), from the treatments at or before each origin only.

    `reference_basal_u_h`: the person's usual basal rate (stored with their model); basal
    insulin is counted as its deviation from it (a temporary basal, a suspension). Without a
    reference, the treatments' own median basal rate.
    """
    times_ns = np.asarray(times_ns, dtype=np.int64)
    n_out = len(times_ns)
    out = np.zeros((n_out, len(TREATMENT_FEATURES)))
    if n_out == 0:
        return out
    tr = treatments or Treatments()
    n_kernel = KERNEL_MIN // STEP_MIN + 1
    last = int(times_ns[-1])
    # The slot grid ends on the last origin and holds every origin (same 5-minute offset), and
    # starts early enough for the longest look-back (the 24 hours of `treatments_logged_24h`).
    first = int(times_ns[0]) - int(max(KERNEL_MIN, LOGGED_RECENTLY_MIN) // STEP_MIN) * STEP_NS
    n = int((last - first) // STEP_NS) + 1
    at = ((times_ns - first + STEP_NS // 2) // STEP_NS).astype(np.int64)
    col = 0

    # Bolus insulin, per kind (each kind has its own curve), under each peak scale.
    kinds = np.array([k if k in INSULIN_PEAK_MIN else DEFAULT_INSULIN_KIND for k in tr.insulin_kind], dtype=object)
    per_kind = {
        kind: _Reader(_slots(times_ns, tr.insulin_ns[kinds == kind], tr.insulin_units[kinds == kind], first, n), at, n_kernel)
        for kind in INSULIN_PEAK_MIN if (kinds == kind).any()
    }
    for scale in INSULIN_PEAK_SCALES:
        for kind, read in per_kind.items():
            peak, dia = INSULIN_PEAK_MIN[kind] * scale, INSULIN_DIA_MIN[kind] * max(scale, 1.0)
            out[:, col] += read(_kernel("iob", peak, dia, 0.0))
            for i, h in enumerate(AHEAD_MIN):
                out[:, col + 1 + i] += read(_kernel("iob", peak, dia, float(h)))
        col += 1 + len(AHEAD_MIN)

    # Basal: the deviation from the usual rate, as small doses every 5 minutes.
    reference = reference_basal_u_h if reference_basal_u_h is not None else tr.median_basal_u_h()
    if len(tr.basal_ns) and reference is not None:
        read = _Reader(_basal_net_slots(tr, float(reference), first, n), at, n_kernel)
        peak = INSULIN_PEAK_MIN["rapid"]
        out[:, col] = read(_kernel("iob", peak, DEFAULT_DIA_MIN, 0.0))
        for i, h in enumerate(AHEAD_MIN[:2]):
            out[:, col + 1 + i] = read(_kernel("iob", peak, DEFAULT_DIA_MIN, float(h)))
    col += 1 + len(AHEAD_MIN[:2])

    # Carbohydrates (grams known), linear at each absorption time, and one bilinear curve.
    grams = _Reader(_slots(times_ns, tr.carbs_ns, tr.carbs_g, first, n), at, n_kernel)
    for a in CARB_ABSORPTION_MIN:
        out[:, col] = grams(_kernel("linear", a, 0.0, 0.0))
        for i, h in enumerate(AHEAD_MIN):
            out[:, col + 1 + i] = grams(_kernel("linear", a, 0.0, float(h)))
        col += 1 + len(AHEAD_MIN)
    out[:, col] = grams(_kernel("bilinear", BILINEAR_ABSORPTION_MIN, 0.0, 0.0))
    out[:, col + 1] = grams(_kernel("bilinear", BILINEAR_ABSORPTION_MIN, 0.0, 60.0))
    col += 2

    # Meals as events (also those logged without grams): on board, time since, grams in 3 h.
    meal_slots = _slots(times_ns, tr.carbs_ns, np.ones(len(tr.carbs_ns)), first, n)
    out[:, col] = _Reader(meal_slots, at, n_kernel)(_kernel("linear", BILINEAR_ABSORPTION_MIN, 0.0, 0.0))
    out[:, col + 1] = _minutes_since(meal_slots > 0, TIME_SINCE_MEAL_CAP_MIN)[at]
    out[:, col + 2] = grams(_kernel("within", MEAL_RECENT_MIN, 0.0, 0.0))
    col += 3

    # Steps in the last 30 / 60 minutes.
    steps = _Reader(_slots(times_ns, tr.steps_ns, tr.steps, first, n), at, n_kernel)
    for m in STEPS_MIN:
        out[:, col] = steps(_kernel("within", float(m), 1.0, 0.0))
        col += 1

    # Whether anything was recorded in the last 24 hours (a person who logs sometimes).
    any_logged = (
        _slots(times_ns, tr.insulin_ns, np.ones(len(tr.insulin_ns)), first, n)
        + _slots(times_ns, tr.carbs_ns, np.ones(len(tr.carbs_ns)), first, n)
        + _slots(times_ns, tr.basal_ns, np.ones(len(tr.basal_ns)), first, n)
    )
    out[:, col] = _any_within(any_logged, int(LOGGED_RECENTLY_MIN // STEP_MIN) + 1)[at]
    col += 1
    assert col == len(TREATMENT_FEATURES)
    return out


def _basal_net_slots(tr: Treatments, reference: float, first: int, n: int) -> np.ndarray:
    """Units above (or below) the usual basal delivered in each 5-minute slot."""
    ok = np.isfinite(tr.basal_rate_u_h) & (tr.basal_minutes > 0)
    # what runs over [s, s + 5 min) has been delivered by the slot that ends at s + 5 min
    start = np.floor((tr.basal_ns[ok] - first) / STEP_NS).astype(np.int64) + 1
    length = np.maximum(1, np.round(tr.basal_minutes[ok] / STEP_MIN)).astype(np.int64)
    per_slot = (tr.basal_rate_u_h[ok] - reference) * STEP_MIN / 60.0
    # Difference array: +d at the start, -d after the end, then a cumulative sum (linear cost).
    diff = np.zeros(n + 1)
    lo, hi = np.clip(start, 0, n), np.clip(start + length, 0, n)
    np.add.at(diff, lo, per_slot)
    np.add.at(diff, hi, -per_slot)
    return np.cumsum(diff)[:n]


def _minutes_since(event: np.ndarray, cap: float) -> np.ndarray:
    """Minutes since the last slot with an event (at or before each slot), capped."""
    idx = np.where(event, np.arange(len(event)), -1)
    last = np.maximum.accumulate(idx) if len(idx) else idx
    minutes = (np.arange(len(event)) - last) * float(STEP_MIN)
    return np.where(last >= 0, np.minimum(minutes, cap), cap)


def _any_within(events: np.ndarray, width: int) -> np.ndarray:
    """1 where an event lies within the last `width` slots (this one included), else 0."""
    cum = np.concatenate([[0.0], np.cumsum(events)])
    k = np.arange(len(events))
    return (cum[k + 1] - cum[np.maximum(0, k + 1 - width)] > 0).astype(float)
