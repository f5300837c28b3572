"""Job type representation and the job list filter. A job's own representation lives
with the spend that creates it (wallet.api.serializers), which answers with it."""

from __future__ import annotations

from rest_framework import serializers

from divine_whispers.api.serializers import FieldsOnceMixin, QueryFilterSerializer
from jobs.models import JobStatus, JobType
from wallet.api.serializers import JobSerializer

__all__ = ["JobFilterSerializer", "JobSerializer", "JobTypeSerializer"]


class JobTypeSerializer(FieldsOnceMixin, serializers.ModelSerializer):
    class Meta:
        model = JobType
        fields = ["code", "name", "description", "price"]
        read_only_fields = fields


class JobFilterSerializer(QueryFilterSerializer):
    status = serializers.ChoiceField(choices=JobStatus.choices, required=False)
