"""Domain errors of forecasting; the API maps each to its status code (never a 500)."""


class ForecastError(Exception):
    """A forecast request that cannot be answered as asked. `detail` is the JSON error body."""

    status_code = 400
    code = "invalid"

    def __init__(self, message, *, field: str | None = None, rows: list | None = None, **extra):
        super().__init__(str(message))
        self.message = message
        self.field = field
        self.rows = rows
        self.extra = extra

    @property
    def detail(self) -> dict:
        body = {"code": self.code, "detail": str(self.message)}
        if self.field:
            body["field"] = self.field
        if self.rows is not None:
            body["rows"] = self.rows
        body.update(self.extra)
        return body


class BadForecastRequest(ForecastError):
    status_code = 400
    code = "invalid_request"


class BadHorizons(BadForecastRequest):
    code = "invalid_horizons"


class BadHistory(BadForecastRequest):
    code = "invalid_history"


class NoReadings(ForecastError):
    status_code = 422
    code = "no_readings"


class StaleReadings(ForecastError):
    status_code = 422
    code = "stale_readings"


class TooFewReadings(ForecastError):
    status_code = 422
    code = "too_few_readings"


class ForecastUnavailable(ForecastError):
    """Neither the personal model nor the baseline could answer (a bug; logged with its trace)."""

    status_code = 503
    code = "forecast_unavailable"
