from django.contrib import admin

from observations.models import ImportBatch, Observation


@admin.register(Observation)
class ObservationAdmin(admin.ModelAdmin):
    list_display = ["person", "effective_at", "value_mg_dl", "original_value", "original_unit",
                    "kind", "code", "status", "at_sensor_limit", "source"]
    list_filter = ["status", "kind", "code", "source", "at_sensor_limit"]
    search_fields = ["person__display_name", "person__owner__username", "source_identifier"]
    date_hierarchy = "effective_at"
    raw_id_fields = ["person", "import_batch"]
    list_select_related = ["person"]


@admin.register(ImportBatch)
class ImportBatchAdmin(admin.ModelAdmin):
    list_display = ["person", "source", "filename", "n_created", "n_duplicates", "n_skipped", "created_at"]
    list_filter = ["source"]
    search_fields = ["person__display_name", "filename"]
    date_hierarchy = "created_at"
    raw_id_fields = ["person"]


from observations.nightscout.models import NightscoutSource, NightscoutUploadSecret  # noqa: E402


@admin.register(NightscoutUploadSecret)
class NightscoutUploadSecretAdmin(admin.ModelAdmin):
    """Only the hint and dates: the lookup hash is of no use to staff and stays out of view."""

    list_display = ["person", "hint", "created_at", "last_used_at"]
    fields = ["person", "hint", "created_at", "last_used_at"]
    readonly_fields = fields
    raw_id_fields = ["person"]

    def has_add_permission(self, request):
        return False


@admin.register(NightscoutSource)
class NightscoutSourceAdmin(admin.ModelAdmin):
    list_display = ["person", "url", "enabled", "last_success_at", "consecutive_failures", "next_attempt_at"]
    list_filter = ["enabled"]
    exclude = ["access_token"]
    raw_id_fields = ["person"]


from observations.treatments.models import Treatment  # noqa: E402


@admin.register(Treatment)
class TreatmentAdmin(admin.ModelAdmin):
    """Read-only: treatments come from the person's apps and files; staff look, never edit."""

    list_display = ["person", "effective_at", "kind", "amount", "unit", "duration", "insulin_kind",
                    "bolus_type", "is_valid", "source", "modified_at"]
    list_filter = ["kind", "source", "insulin_kind", "bolus_type", "is_valid"]
    search_fields = ["person__display_name", "person__owner__username", "source_identifier"]
    date_hierarchy = "effective_at"
    raw_id_fields = ["person", "import_batch"]
    list_select_related = ["person"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
