from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from persons.models import Person
from persons.services import person_for


class PersonSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="owner.username", read_only=True)

    class Meta:
        model = Person
        fields = ["id", "username", "display_name", "time_zone", "preferred_unit", "created_at", "updated_at"]
        read_only_fields = ["id", "username", "created_at", "updated_at"]


class MeView(APIView):
    """The caller's own Person: read and update display name, time zone and unit."""

    @extend_schema(responses=PersonSerializer)
    def get(self, request):
        person = person_for(request.user)
        return Response(PersonSerializer(person).data)

    @extend_schema(request=PersonSerializer, responses=PersonSerializer)
    def patch(self, request):
        person = person_for(request.user)
        serializer = PersonSerializer(person, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response(serializer.data)
