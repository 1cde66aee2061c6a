"""CGM insights for a person's own readings - pure Python (numpy/pandas), no Django.

Input everywhere: a DataFrame with `time` (tz-aware, UTC) and `glucose_mg_dl`, plus the
person's IANA time zone where local clock time matters. Texts come as `template` + `params`
(translate with `gettext(template) % params`) and an English `text`.

    consensus_metrics(readings, start, end, *, interval_min=5, tz="UTC") -> dict
    agp_profile(readings, tz, *, bin_minutes=15, smooth=False) -> DataFrame
    pattern_statements(readings, tz, *, unit="mg/dL") -> list[dict]
    anomaly_flags(readings, tz, *, unit="mg/dL") -> list[dict]
    window_embedding(values, end_time_local) -> ndarray[EMBEDDING_DIM]
    windows_for_embedding(readings, *, step_minutes=30) -> Iterator[(end UTC, values)]
    embed_windows(readings, tz, *, step_minutes=30) -> (DatetimeIndex, ndarray[n, EMBEDDING_DIM])
"""

from .anomalies import anomaly_flags
from .embedding import EMBEDDING_DIM, embed_windows, window_embedding, windows_for_embedding
from .metrics import AGP_PERCENTILES, METRIC_KEYS, agp_profile, consensus_metrics, gmi_percent
from .patterns import pattern_statements

__all__ = [
    "AGP_PERCENTILES", "EMBEDDING_DIM", "METRIC_KEYS", "agp_profile", "anomaly_flags",
    "consensus_metrics", "embed_windows", "gmi_percent", "pattern_statements", "window_embedding",
    "windows_for_embedding",
]
