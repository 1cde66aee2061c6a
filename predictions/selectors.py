"""Reading the prediction log back for judging: the one place that knows how a matched outcome
is stored in PredictionLog.points (JSON) and how served forecasts are counted.

Every figure computed from outcomes (automated rollout decisions, the performance-triggered
retrain, the monitoring page, /metrics, the arm comparison screens) selects from these
relations, so the rule "a point counts once its actual reading is known, and forecasts from
sent-along `history` never count" is written once.

    matched_points_sql(where) -> SQL      one row per scored point (columns below)
    served_figures_sql(alias) -> SQL      forecasts, fallbacks, errors, API latency percentiles
    release_sql(alias) -> SQL             the release (MAJOR) that answered, or the no-model variant
"""

from __future__ import annotations

from predictions.models import PredictionFeedback, PredictionLog

# A fallback that is not a failure: the person had too few readings for their model.
NOT_ERROR_FALLBACK = "not_enough_readings"


def log_table() -> str:
    return PredictionLog._meta.db_table


def feedback_table() -> str:
    return PredictionFeedback._meta.db_table


def release_sql(alias: str = "l") -> str:
    """The release that answered a forecast: the MAJOR of its model version, or, when no personal
    model answered, the variant ('baseline', 'population', 'short_history')."""
    return (
        f"CASE WHEN {alias}.variant IN ('baseline', 'population', 'short_history') THEN {alias}.variant "
        f"ELSE split_part({alias}.model_version, '.', 1) END"
    )


def matched_points_sql(where: str = "TRUE") -> str:
    """A subquery with one row per forecast point whose actual reading is known, from logs
    (alias `l`) that satisfy `where` and were not made from sent-along history.

    Columns: log_id, shadow_of_id, source, person_id, ml_model_id, model_type, model_version,
    variant, arm, issued_at, h (minutes), value, actual, lower_80, upper_80, lower_95, upper_95
    (mg/dL).
    Parameters: those of `where`, then the list of horizons to keep.
    """
    return f"""
        SELECT l.id AS log_id, l.shadow_of_id, l.source, l.person_id, l.ml_model_id, l.model_type, l.model_version, l.variant, l.arm,
               l.issued_at, (p->>'horizon_min')::int AS h,
               (p->>'value_mg_dl')::float8 AS value, (p->>'actual_mg_dl')::float8 AS actual,
               (p->>'lower_80_mg_dl')::float8 AS lower_80, (p->>'upper_80_mg_dl')::float8 AS upper_80,
               (p->>'lower_95_mg_dl')::float8 AS lower_95, (p->>'upper_95_mg_dl')::float8 AS upper_95
          FROM {log_table()} l CROSS JOIN LATERAL jsonb_array_elements(l.points) AS p
         WHERE ({where}) AND NOT l.from_history
           AND jsonb_typeof(p->'actual_mg_dl') = 'number'
           AND (p->>'horizon_min')::int = ANY(%s)
    """


def served_figures_sql(alias: str = "l") -> str:
    """Aggregate columns over served logs: forecasts, fallbacks, errors (fallbacks caused by a
    failure), and the 50/95/99th percentile of API latency (a batch log carries its share of the
    whole batch, so batches are left out)."""
    return f"""
        count(*),
        count(*) FILTER (WHERE {alias}.fallback_reason <> ''),
        count(*) FILTER (WHERE {alias}.fallback_reason <> ''
                           AND {alias}.fallback_reason NOT LIKE '{NOT_ERROR_FALLBACK}%%'),
        percentile_cont(0.5) WITHIN GROUP (ORDER BY {alias}.latency_ms) FILTER (WHERE {alias}.source = 'api'),
        percentile_cont(0.95) WITHIN GROUP (ORDER BY {alias}.latency_ms) FILTER (WHERE {alias}.source = 'api'),
        percentile_cont(0.99) WITHIN GROUP (ORDER BY {alias}.latency_ms) FILTER (WHERE {alias}.source = 'api')
    """
