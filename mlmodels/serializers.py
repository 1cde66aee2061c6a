from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from mlmodels.models import MLModel, TrainingJob, metric_value
from mlmodels.services import DEPLOY_HORIZONS


class MetricSummarySerializer(serializers.Serializer):
    horizon_min = serializers.IntegerField()
    mae = serializers.FloatField(allow_null=True)
    baseline_mae = serializers.FloatField(allow_null=True)


class MLModelSerializer(serializers.ModelSerializer):
    parent_version = serializers.CharField(source="parent.version", read_only=True, allow_null=True)
    summary = serializers.SerializerMethodField(
        help_text="Held-out MAE (mg/dL) at 30 and 60 minutes, next to the AR2 baseline's."
    )
    url = serializers.SerializerMethodField()

    class Meta:
        model = MLModel
        fields = [
            "id", "url", "model_type", "version", "algorithm", "status", "is_active",
            "trained_at", "data_start", "data_end", "n_readings", "parent_version",
            "summary", "metrics", "comparison", "hyperparameters", "feature_schema",
            "artifact_sha256", "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(MetricSummarySerializer(many=True))
    def get_summary(self, obj) -> list[dict]:
        return [
            {
                "horizon_min": h,
                "mae": metric_value(obj.metrics, h, "mae"),
                "baseline_mae": metric_value(obj.metrics, h, "mae", baseline=True),
            }
            for h in DEPLOY_HORIZONS
        ]

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, obj) -> str:
        return _absolute(self.context.get("request"), reverse("api-model-detail", args=[obj.pk]))


class JobModelSerializer(serializers.ModelSerializer):
    class Meta:
        model = MLModel
        fields = ["id", "version", "algorithm", "status", "is_active", "metrics", "comparison"]
        read_only_fields = fields


class TrainingJobSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    model = serializers.SerializerMethodField(
        help_text="The version this job produced and its metrics; null until the job is done."
    )
    version = serializers.SerializerMethodField()

    class Meta:
        model = TrainingJob
        fields = [
            "id", "url", "status", "reason", "detail", "trigger", "attempts", "version", "model",
            "created_at", "started_at", "finished_at", "error",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, obj) -> str:
        return _absolute(self.context.get("request"), reverse("api-training-job", args=[obj.pk]))

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_version(self, obj) -> str | None:
        return obj.model.version if obj.model_id and not obj.is_open else None

    @extend_schema_field(JobModelSerializer(allow_null=True))
    def get_model(self, obj):
        if obj.is_open or obj.model_id is None:
            return None
        return JobModelSerializer(obj.model).data


class TrainRequestResponseSerializer(TrainingJobSerializer):
    created = serializers.SerializerMethodField(
        help_text="False when an already queued or running job is returned."
    )

    class Meta(TrainingJobSerializer.Meta):
        fields = TrainingJobSerializer.Meta.fields + ["created"]
        read_only_fields = fields

    def get_created(self, obj) -> bool:
        return bool(self.context.get("created"))


def _absolute(request, path: str) -> str:
    return request.build_absolute_uri(path) if request is not None else path
