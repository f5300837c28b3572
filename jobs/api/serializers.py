"""Job and job type representations (output only: jobs are created by a spend)."""

from __future__ import annotations

from rest_framework import serializers

from divine_whispers.api.serializers import FieldsOnceMixin, QueryFilterSerializer
from jobs.models import Job, JobStatus, JobType


class JobTypeSerializer(FieldsOnceMixin, serializers.ModelSerializer):
    class Meta:
        model = JobType
        fields = ["code", "name", "description", "price"]
        read_only_fields = fields


class JobSerializer(FieldsOnceMixin, serializers.ModelSerializer):
    job_type = serializers.CharField(source="job_type.code", read_only=True)
    transaction_id = serializers.IntegerField(read_only=True)
    user_id = serializers.IntegerField(read_only=True)

    class Meta:
        model = Job
        fields = [
            "id",
            "user_id",
            "job_type",
            "status",
            "points_used",
            "input",
            "result",
            "error",
            "transaction_id",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class JobFilterSerializer(QueryFilterSerializer):
    status = serializers.ChoiceField(choices=JobStatus.choices, required=False)
