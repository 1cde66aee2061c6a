"""REST and FHIR endpoints for readings and imports. Thin: parsing, checks and storage live in
observations.importers / validation / services; every queryset comes from `.for_user()`."""

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from observations import fhir
from observations.codes import GLUCOSE_CODES, LOINC_SYSTEM
from observations.treatments.codes import INSULIN_KINDS_OF_TREATMENT, LOINC_TO_KIND
from observations.bounds import (
    BoundedFHIRJSONParser,
    BoundedJSONParser,
    SettingsRateThrottle,
    upload_refused,
    upload_too_large_message,
)
from observations.models import ImportBatch, Observation, Treatment
from observations.serializers import (
    FileImportSerializer,
    ImportBatchSerializer,
    ImportErrorSerializer,
    ImportSummarySerializer,
    ObservationInSerializer,
    ObservationQuerySerializer,
    ObservationSerializer,
    TreatmentImportSummarySerializer,
    TreatmentInSerializer,
    TreatmentQuerySerializer,
    TreatmentSerializer,
    import_summary,
)
from observations.services import (
    batch_span,
    check_upload_size,
    delete_import,
    import_fhir_bundle,
    import_file,
    import_raw_readings,
    schedule_window_refresh,
)
from observations.validation import (
    ImportRejected,
    RawReading,
    RowError,
    ascii_digits,
    check_row_count,
    parse_timestamp,
)
from observations.treatments.services import store_treatments
from observations.treatments.validation import RawTreatment, check_treatment_count
from persons.services import person_for

REJECTED = OpenApiResponse(ImportErrorSerializer, description="Rejected; every bad row listed, nothing saved.")


def rejected(exc: ImportRejected) -> Response:
    return Response(exc.as_payload(), status=status.HTTP_400_BAD_REQUEST)


class FHIRJSONRenderer(JSONRenderer):
    media_type = fhir.FHIR_JSON
    format = "fhir"


def _raw_from_item(row: int, item: object) -> RawReading | RowError:
    if not isinstance(item, dict):
        return RowError(row, "item", "must be an object with effective_at, value and unit")
    return RawReading(
        row=row,
        time=item.get("effective_at"),
        value=item.get("value"),
        unit=item.get("unit"),
        code=item.get("code"),
    )


def _posted_rows(request, person, *, noun: str, parse, check_count) -> list:
    """The body's items (one object or a list) parsed by `parse(row, item)`; raises ImportRejected
    (empty, too many, wrong shapes) or Http404 when an item names another person: rows are
    always the caller's, and naming someone else is answered like any other access to another
    person's data."""
    items = request.data if isinstance(request.data, list) else [request.data]
    if not items:
        raise ImportRejected.file_error(f"no {noun} given", field="body")
    check_count(len(items))
    if any(isinstance(item, dict) and item.get("person") not in (None, person.pk) for item in items):
        raise Http404("No such person.")
    parsed = [parse(row, item) for row, item in enumerate(items, start=1)]
    shape_errors = [p for p in parsed if isinstance(p, RowError)]
    if shape_errors:
        raise ImportRejected(shape_errors)
    return parsed


class ObservationListCreateView(generics.ListCreateAPIView):
    """The caller's readings: list (paged, `start`/`end` filter) and add one or many."""

    throttle_classes = [SettingsRateThrottle]  # POST only: imports
    throttle_scope = "import"

    serializer_class = ObservationSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return Observation.objects.none()
        person = person_for(self.request.user)
        query = ObservationQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        bounds = _time_bounds(query.validated_data, person)
        return (
            Observation.objects.for_user(self.request.user)
            .in_range(bounds.get("start"), bounds.get("end"))
            .order_by("effective_at", "id")
        )

    @extend_schema(parameters=[ObservationQuerySerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=PolymorphicProxySerializer(
            component_name="ObservationInputOneOrMany",
            serializers=[ObservationInSerializer, ObservationInSerializer(many=True)],
            resource_type_field_name=None,
            many=False,
        ),
        responses={201: ImportSummarySerializer, 400: REJECTED},
    )
    def post(self, request, *args, **kwargs):
        person = person_for(request.user)
        try:
            raws = _posted_rows(request, person, noun="readings", parse=_raw_from_item, check_count=check_row_count)
            batch = import_raw_readings(person, raws, source="api")
        except ImportRejected as exc:
            return rejected(exc.with_field_names({"time": "effective_at"}))
        schedule_window_refresh(person, batch_span(batch))
        return Response(import_summary(batch, fmt="api"), status=status.HTTP_201_CREATED)


class ObservationDetailView(generics.RetrieveAPIView):
    serializer_class = ObservationSerializer

    def get_queryset(self):
        return Observation.objects.for_user(self.request.user)


class ObservationImportView(APIView):
    """Upload a file: Dexcom Clarity, LibreView, Nightscout entries, FHIR Bundle or plain CSV."""

    throttle_classes = [SettingsRateThrottle]  # POST only: imports
    throttle_scope = "import"

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": FileImportSerializer},
        responses={201: ImportSummarySerializer, 400: REJECTED, 404: OpenApiResponse(description="A FHIR subject that is not you.")},
    )
    def post(self, request):
        person = person_for(request.user)
        upload = request.FILES.get("file")
        if upload_refused(request):
            error = ImportRejected.file_error(upload_too_large_message())
            return Response(error.as_payload(), status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        fmt = request.data.get("format") or "auto"
        try:
            if upload is None:
                raise ImportRejected.file_error("missing: send the file as multipart field 'file'")
            check_upload_size(upload.size)
            result = import_file(person, upload.read(), fmt=fmt, filename=upload.name or "")
        except ImportRejected as exc:
            return rejected(exc)
        schedule_window_refresh(person, batch_span(result.batch))
        body = import_summary(result.batch, fmt=result.format, skipped_reasons=result.skipped_reasons)
        return Response(body, status=status.HTTP_201_CREATED)


class ImportListView(generics.ListAPIView):
    serializer_class = ImportBatchSerializer

    def get_queryset(self):
        return ImportBatch.objects.for_user(self.request.user).order_by("-created_at", "-id")


class ImportDetailView(generics.RetrieveDestroyAPIView):
    """One import; DELETE removes it and the readings and treatments it created."""

    serializer_class = ImportBatchSerializer

    def get_queryset(self):
        return ImportBatch.objects.for_user(self.request.user)

    def perform_destroy(self, instance):
        person = person_for(self.request.user)
        span = batch_span(instance)
        delete_import(person, instance)
        schedule_window_refresh(person, span)  # re-embed what other imports left in the span


# --- Treatments -------------------------------------------------------------------------------

TREATMENT_FIELDS = ("kind", "effective_at", "amount", "unit", "duration_min", "insulin_kind", "bolus_type",
                    "absorption_min", "identifier", "device", "person")


def _raw_treatment(row: int, item: object) -> RawTreatment | RowError:
    if not isinstance(item, dict):
        return RowError(row, "item", "must be an object with kind, effective_at and amount")
    unknown = sorted(set(item) - set(TREATMENT_FIELDS))
    if unknown:
        return RowError(row, str(unknown[0])[:40], f"is not a treatment field ({', '.join(TREATMENT_FIELDS[:-1])})")
    return RawTreatment(
        row=row, kind=item.get("kind"), time=item.get("effective_at"), amount=item.get("amount"),
        unit=item.get("unit"), duration_min=item.get("duration_min"), insulin_kind=item.get("insulin_kind"),
        bolus_type=item.get("bolus_type"), absorption_min=item.get("absorption_min"),
        source_identifier=item.get("identifier") or "", device=item.get("device") or "",
    )


def _time_bounds(query, person) -> dict:
    """start/end query values -> aware bounds; a 400 naming the parameter otherwise."""
    bounds, errors = {}, {}
    for name in ("start", "end"):
        if query.get(name):
            try:
                bounds[name] = parse_timestamp(query[name], person.tz)
            except ValueError as exc:
                errors[name] = [str(exc)]
    if not errors and "start" in bounds and "end" in bounds and bounds["start"] > bounds["end"]:
        errors["end"] = ["must not be before start"]
    if errors:
        raise ValidationError(errors)
    return bounds


class TreatmentListCreateView(generics.ListCreateAPIView):
    """The caller's treatments (insulin, carbs, steps, heart rate): list (paged; start, end,
    kind, import_batch filters) and record past ones. Recorded treatments are forecast inputs
    only: glucast never suggests a dose."""

    throttle_classes = [SettingsRateThrottle]  # POST only: imports
    throttle_scope = "import"
    serializer_class = TreatmentSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Treatment.objects.none()
        person = person_for(self.request.user)
        query = TreatmentQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        bounds = _time_bounds(query.validated_data, person)
        queryset = Treatment.objects.for_user(self.request.user).in_range(bounds.get("start"), bounds.get("end"))
        if query.validated_data.get("kind"):
            queryset = queryset.filter(kind__in=sorted(query.validated_data["kind"]))
        if "import_batch" in query.validated_data:
            queryset = queryset.filter(import_batch_id=query.validated_data["import_batch"])
        return queryset.order_by("effective_at", "id")

    @extend_schema(parameters=[TreatmentQuerySerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=PolymorphicProxySerializer(
            component_name="TreatmentInputOneOrMany",
            serializers=[TreatmentInSerializer, TreatmentInSerializer(many=True)],
            resource_type_field_name=None,
            many=False,
        ),
        responses={201: TreatmentImportSummarySerializer, 400: REJECTED},
    )
    def post(self, request, *args, **kwargs):
        person = person_for(request.user)
        try:
            raws = _posted_rows(request, person, noun="treatments", parse=_raw_treatment, check_count=check_treatment_count)
            result = store_treatments(person=person, records=raws, source="api")
        except ImportRejected as exc:
            return rejected(exc.with_field_names({"time": "effective_at", "source_identifier": "identifier"}))
        body = {"import_id": result.batch.pk if result.batch else None,
                "created": result.created, "duplicates": result.duplicates}
        return Response(body, status=status.HTTP_201_CREATED)


class TreatmentDetailView(generics.RetrieveAPIView):
    serializer_class = TreatmentSerializer

    def get_queryset(self):
        return Treatment.objects.for_user(self.request.user)


# --- FHIR -------------------------------------------------------------------------------------


class FHIRBundleView(APIView):
    """POST a FHIR R4 Bundle (collection or transaction) of glucose Observations."""

    throttle_classes = [SettingsRateThrottle]  # POST only: imports
    throttle_scope = "import"

    parser_classes = [BoundedFHIRJSONParser, BoundedJSONParser]

    @extend_schema(
        operation_id="fhir_bundle_create",
        request={fhir.FHIR_JSON: OpenApiTypes.OBJECT, "application/json": OpenApiTypes.OBJECT},
        responses={
            201: ImportSummarySerializer,
            400: REJECTED,
            404: OpenApiResponse(description="An Observation's subject is another patient."),
        },
        description="Bundle.type collection, transaction or batch; each Observation needs a LOINC "
        "glucose code, valueQuantity (UCUM mg/dL or mmol/L) and effectiveDateTime. Validated with "
        "fhir.resources (R4B models).",
    )
    def post(self, request):
        person = person_for(request.user)
        try:
            result = import_fhir_bundle(person, request.data)
        except ImportRejected as exc:
            return rejected(exc)
        schedule_window_refresh(person, batch_span(result.batch))
        body = import_summary(result.batch, fmt=result.format, skipped_reasons=result.skipped_reasons)
        return Response(body, status=status.HTTP_201_CREATED)


FHIR_PAGE_SIZE = 100
FHIR_MAX_PAGE_SIZE = 1000
FHIR_MAX_OFFSET = 10**12  # far beyond any row count, far below PostgreSQL's bigint


def _bounded_int(params, name: str, default: int, maximum: int | None, errors: dict) -> int:
    """A non-negative integer query parameter; above `maximum` is a 400 naming it (None: the
    page size, lowered to FHIR_MAX_PAGE_SIZE as FHIR servers do)."""
    raw = params.get(name)
    if raw is None:
        return default
    if len(raw) > 20 or not ascii_digits(raw):
        errors[name] = [f"{name} must be a non-negative integer"]
        return default
    value = int(raw)
    if maximum is None:
        return min(value, FHIR_MAX_PAGE_SIZE)
    if value > maximum:
        errors[name] = [f"{name} must be at most {maximum}"]
        return default
    return value



def _fhir_page(request, querysets, *, count: int, offset: int):
    """One page over several querysets in turn (readings, then treatment Observations): each is
    counted once and sliced in the database, so a page costs its size, not its offset."""
    total = 0
    rows = []
    for queryset in querysets:
        n = queryset.count()
        start = max(offset - total, 0)
        wanted = count - len(rows)
        if wanted > 0 and start < n:
            rows.extend(queryset[start : start + wanted])
        total += n
    next_url = None
    if offset + count < total:
        query = request.query_params.copy()
        query["_offset"] = str(offset + count)
        query["_count"] = str(count)
        next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
    return rows, total, next_url


FHIR_SEARCH_PARAMETERS = [
    OpenApiParameter(
        "date", str, many=True, explode=True,
        description="FHIR date search, repeatable: ge/gt/le/lt/eq prefix + date or date-time, "
        "e.g. date=ge2024-05-01&date=lt2024-05-02T12:00:00Z (a bare date is your local day).",
    ),
    OpenApiParameter("patient", str, description="Patient id (or Patient/<id>); only your own."),
    OpenApiParameter("_count", int, description=f"Page size (default {FHIR_PAGE_SIZE}, max {FHIR_MAX_PAGE_SIZE})."),
    OpenApiParameter("_offset", int, description="Resources to skip (the `next` link sets it)."),
]
FHIR_SEARCH_RESPONSES = {
    (200, fhir.FHIR_JSON): OpenApiTypes.OBJECT,
    (200, "application/json"): OpenApiTypes.OBJECT,
    404: OpenApiResponse(description="patient is not you."),
}


class _FHIRSearchView(APIView):
    renderer_classes = [FHIRJSONRenderer, JSONRenderer]
    resource_type = ""

    def querysets(self, request, filters: dict, errors: dict) -> list:
        raise NotImplementedError

    def get(self, request):
        person = person_for(request.user)
        patient = request.query_params.get("patient")
        if patient is not None and patient.removeprefix("Patient/") != str(person.pk):
            return Response({"detail": "No such Patient."}, status=status.HTTP_404_NOT_FOUND)
        errors = {}
        filters = {}
        try:
            filters = fhir.date_filters(request.query_params.getlist("date"), person.tz)
        except ValueError as exc:
            errors["date"] = [str(exc)]
        count = _bounded_int(request.query_params, "_count", FHIR_PAGE_SIZE, None, errors)
        offset = _bounded_int(request.query_params, "_offset", 0, FHIR_MAX_OFFSET, errors)
        querysets = self.querysets(request, filters, errors)
        if errors:
            raise ValidationError(errors)
        page, total, next_url = _fhir_page(request, querysets, count=count, offset=offset)
        bundle = fhir.searchset_bundle(
            page,
            total=total,
            self_url=request.build_absolute_uri(),
            next_url=next_url,
            base_url=request.build_absolute_uri(request.path.rsplit(self.resource_type, 1)[0]),
        )
        return Response(bundle)


class FHIRObservationSearchView(_FHIRSearchView):
    """FHIR search: the caller's glucose readings, then their carbohydrate, steps and heart-rate
    Observations, as a searchset Bundle (`code` limits it to some LOINC codes)."""

    resource_type = "Observation"

    @extend_schema(
        operation_id="fhir_observation_search",
        parameters=[*FHIR_SEARCH_PARAMETERS, OpenApiParameter(
            "code", str, description="LOINC code(s), comma-separated (with or without http://loinc.org|): glucose "
            "99504-3, 105272-9, 2339-0, 15074-8, 41653-7, 14743-9; carbs 9059-7, steps 55423-8, heart rate 8867-4.")],
        responses=FHIR_SEARCH_RESPONSES,
    )
    def get(self, request):
        return super().get(request)

    def querysets(self, request, filters, errors):
        readings = Observation.objects.for_user(request.user).filter(**filters).order_by("effective_at", "id")
        treatments = (
            Treatment.objects.for_user(request.user).filter(kind__in=list(LOINC_TO_KIND.values()), **filters)
            .order_by("effective_at", "id")
        )
        raw = request.query_params.get("code")
        if raw is None:
            return [readings, treatments]
        codes = [part.strip().removeprefix(f"{LOINC_SYSTEM}|") for part in raw.split(",") if part.strip()]
        unknown = [c for c in codes if c not in GLUCOSE_CODES and c not in LOINC_TO_KIND]
        if unknown or not codes:
            errors["code"] = [f"{', '.join(unknown)[:60] or 'empty'}: not a LOINC code glucast stores"]
            return []
        return [readings.filter(code__in=[c for c in codes if c in GLUCOSE_CODES]) if any(c in GLUCOSE_CODES for c in codes) else readings.none(),
                treatments.filter(kind__in=[LOINC_TO_KIND[c] for c in codes if c in LOINC_TO_KIND])]


class FHIRMedicationAdministrationSearchView(_FHIRSearchView):
    """FHIR search: the caller's recorded insulin (boluses, basal rates, temporary basals) as
    MedicationAdministrations in a searchset Bundle."""

    resource_type = "MedicationAdministration"

    @extend_schema(operation_id="fhir_medication_administration_search", parameters=FHIR_SEARCH_PARAMETERS,
                   responses=FHIR_SEARCH_RESPONSES)
    def get(self, request):
        return super().get(request)

    def querysets(self, request, filters, errors):
        return [
            Treatment.objects.for_user(request.user)
            .filter(kind__in=list(INSULIN_KINDS_OF_TREATMENT), **filters)
            .order_by("effective_at", "id")
        ]
