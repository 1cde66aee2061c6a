"""POST /api/predictions/{id}/feedback/ {"helpful": true|false} — the caller's own forecasts only."""

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from persons.services import person_for
from predictions.feedback import BadFeedback, feedback_arguments, record_feedback


class PredictionFeedbackView(APIView):
    @extend_schema(
        operation_id="predictions_feedback",
        request=inline_serializer("FeedbackRequest", {"helpful": serializers.BooleanField()}),
        responses={
            200: inline_serializer(
                "FeedbackResponse",
                {
                    "prediction_id": serializers.IntegerField(),
                    "helpful": serializers.BooleanField(),
                    "updated_at": serializers.DateTimeField(),
                },
            ),
            400: OpenApiResponse(description='The body is not {"helpful": true|false}.'),
            404: OpenApiResponse(description="No such forecast of yours."),
        },
        examples=[OpenApiExample("Helpful", value={"helpful": True}, request_only=True)],
        summary="Tell whether one of my forecasts was helpful (a second answer replaces the first)",
    )
    def post(self, request, pk: int):
        person = person_for(request.user)
        try:
            feedback = record_feedback(person, pk, feedback_arguments(request.data))
        except BadFeedback as exc:
            return Response(exc.detail, status=status.HTTP_400_BAD_REQUEST)
        return Response(
            {
                "prediction_id": feedback.prediction_id,
                "helpful": feedback.helpful,
                "updated_at": feedback.updated_at.isoformat(),
            },
            status=status.HTTP_200_OK,
        )
