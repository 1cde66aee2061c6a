"""glucast's numeric core: readings in, forecasts with calibrated bands out — no Django.

Everything here is plain Python over numpy, pandas, scikit-learn and XGBoost, so it can be
trained, tested and benchmarked without a database or settings: grid preparation, leak-free
features, the input-window rule (window_from_arrays), the candidate estimators, temporal model
selection, conformal bands, the time-of-day profile and the stored forecaster. The Django side (`mlmodels` registry,
`predictions` serving) calls into it; nothing here calls back. import-linter keeps it so.
"""
