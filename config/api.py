"""API-wide behaviour shared by every app's endpoints."""

import logging

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


def exception_handler(exc, context):
    """DRF's handler, plus Django validation errors as 400 instead of 500."""
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        exc = exceptions.ValidationError(detail=detail)
    return drf_exception_handler(exc, context)


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    """LimitOffsetPagination with bounds: an unbounded `limit`/`offset` (e.g. 10**21) reached
    PostgreSQL as a bigint out of range and answered 500. `limit` above MAX_LIMIT is lowered to
    it (DRF's max_limit); an `offset` above MAX_OFFSET is a 400 naming the parameter."""

    max_limit = 1000
    max_offset = 10**12  # far beyond any row count, far below PostgreSQL's bigint

    def get_offset(self, request):
        offset = super().get_offset(request)
        if offset > self.max_offset:
            raise exceptions.ValidationError({self.offset_query_param: f"must be at most {self.max_offset}"})
        return offset

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        bounds = {self.limit_query_param: self.max_limit, self.offset_query_param: self.max_offset}
        for parameter in parameters:
            if parameter["name"] in bounds:
                parameter["schema"] = {**parameter["schema"], "maximum": bounds[parameter["name"]]}
        return parameters
