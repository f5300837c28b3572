"""The admin home page's own line: how many approval requests wait for this staff member.

A template library (settings TEMPLATES "libraries": `backoffice_home`), read by
wallet/templates/admin/index.html, so the count is fresh on every visit and costs one
indexed COUNT for approvers only.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.utils import timezone

from audit.backoffice.links import changelist_url
from wallet import permissions
from wallet.models import ApprovalRequest, ApprovalStatus

register = template.Library()


@register.inclusion_tag("admin/wallet/approvals_waiting.html", takes_context=True)
def approvals_waiting(context: Any) -> dict[str, Any]:
    user = context["request"].user
    if not user.has_perm(permissions.APPROVE):
        return {"shown": False}
    waiting = (
        ApprovalRequest.objects.with_status(ApprovalStatus.PENDING, timezone.now())
        .exclude(requested_by=user)
        .count()
    )
    return {
        "shown": True,
        "waiting": waiting,
        "url": changelist_url(ApprovalRequest, whose="to_decide"),
    }
