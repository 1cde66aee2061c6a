"""Model registry API: request training (202 + job URL), follow the job, list own versions.

Every query starts from `.for_user(request.user)`: another person's ids answer 404.
"""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from mlmodels.models import MLModel, TrainingJob
from mlmodels.serializers import MLModelSerializer, TrainingJobSerializer, TrainRequestResponseSerializer
from mlmodels.services import request_training
from observations.bounds import SettingsRateThrottle
from persons.services import person_for


class TrainView(APIView):
    throttle_classes = [SettingsRateThrottle]
    throttle_scope = "train"

    @extend_schema(
        operation_id="models_train",
        request=None,
        responses={
            202: OpenApiResponse(
                TrainRequestResponseSerializer,
                description="Training is queued. The job URL is in the Location header and in "
                "`url`. While a job is queued or running, every further request answers 202 "
                "with that same job (`created` false) instead of starting another.",
            ),
            429: OpenApiResponse(description="Too many training requests (GLUCAST_TRAIN_RATE)"),
        },
        summary="Train a new version of my model in the background",
    )
    def post(self, request):
        person = person_for(request.user)
        job, created = request_training(person, trigger="api")
        serializer = TrainRequestResponseSerializer(
            job, context={"request": request, "created": created}
        )
        data = serializer.data
        return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": data["url"]})


class TrainingJobListView(generics.ListAPIView):
    serializer_class = TrainingJobSerializer

    def get_queryset(self):
        return TrainingJob.objects.for_user(self.request.user).select_related("model")

    @extend_schema(summary="My training jobs, newest first")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class TrainingJobDetailView(APIView):
    @extend_schema(
        responses={200: TrainingJobSerializer, 404: OpenApiResponse(description="No such job of yours.")},
        summary="Status of a training job: queued, running, succeeded, failed or skipped",
    )
    def get(self, request, pk: int):
        job = get_object_or_404(
            TrainingJob.objects.for_user(request.user).select_related("model"), pk=pk
        )
        return Response(TrainingJobSerializer(job, context={"request": request}).data)


class MLModelListView(generics.ListAPIView):
    serializer_class = MLModelSerializer

    def get_queryset(self):
        return (
            MLModel.objects.for_user(self.request.user)
            .select_related("parent")
            .order_by("model_type", "-version_major", "-version_minor", "-version_patch")
        )

    @extend_schema(summary="My model versions with their held-out metrics, newest first")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class MLModelDetailView(APIView):
    @extend_schema(
        responses={200: MLModelSerializer, 404: OpenApiResponse(description="No such model of yours.")},
        summary="One of my model versions",
    )
    def get(self, request, pk: int):
        mlmodel = get_object_or_404(
            MLModel.objects.for_user(request.user).select_related("parent"), pk=pk
        )
        return Response(MLModelSerializer(mlmodel, context={"request": request}).data)
