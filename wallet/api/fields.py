"""API fields that name the wallet's own records (job types and point packages on sale),
with their schema."""

from __future__ import annotations

from typing import Any

from django.db import DatabaseError
from drf_spectacular.extensions import OpenApiSerializerFieldExtension

from divine_whispers.api.fields import StrictTextField
from jobs.models import JobType
from wallet.models import PointPackage


class JobTypeCodeField(StrictTextField):
    """A job type code: a string naming a row of `JobType` (staff edit them in the admin)."""


class JobTypeCodeFieldSchema(OpenApiSerializerFieldExtension):
    """The codes that exist when the schema is generated, as an enum.

    An unknown code is refused (400 `validation_error`), so the schema lists the codes the
    server knows; an inactive one is listed too (400 `inactive_job_type`, a state that can
    change). The schema is generated per request, so it follows the admin's edits. Without
    a reachable database (a system check run offline) the field is a plain string.
    """

    target_class = JobTypeCodeField
    model: Any = JobType

    def map_serializer_field(self, auto_schema, direction):
        schema: dict[str, Any] = {"type": "string", "maxLength": self.target.max_length}
        try:
            codes = sorted(self.model.objects.values_list("code", flat=True))
        except DatabaseError:  # generated without a database (e.g. `check --deploy` offline)
            codes = []
        if codes and direction == "request":
            schema["enum"] = codes
        return schema


class PackageCodeField(StrictTextField):
    """A point package code: a string naming a row of `PointPackage` (finance edits them)."""


class PackageCodeFieldSchema(JobTypeCodeFieldSchema):
    """The package codes that exist, as an enum (inactive ones answer `inactive_package`)."""

    target_class = PackageCodeField
    model = PointPackage
