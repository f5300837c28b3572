"""What every staff flow view of the wallet admin shares: the flow's own permission and
its object, the confirmation page's rendering, the signed plan it carries, and the
admin-log entry of what was done.

The refund and adjust flows (refund_flow.py, adjust_flow.py) and the approval decisions
(approvals.py) are ModelAdmin methods built on these mixins. Admin views run under
`admin_view()`, which marks every page never_cache (no-store): Back re-asks the server.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.utils import unquote
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from audit.backoffice.links import admin_url
from wallet.admin import confirmations
from wallet.admin.forms import StaffOperationForm

CONFIRM_TEMPLATE = "admin/wallet/confirm_operation.html"


def confirm_url(obj: Any, view: str, token: str) -> str:
    return f"{admin_url(obj, view)}?{urlencode({'token': token})}"


class StaffOperationMixin:
    """The shared mechanics of a staff flow view: permission, object, form, service call."""

    def _operation_object(self, request: HttpRequest, object_id: str, permission: str) -> Model:
        # The admin site already requires an active staff user; the flow needs its own
        # permission on top, checked before anything about the object is revealed.
        if not request.user.has_perm(permission):
            raise PermissionDenied(permission)
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(f"{self.opts.verbose_name} {object_id!r} does not exist.")
        return obj


class ConfirmedFlowMixin:
    """Rendering and bookkeeping shared by the two-step flows (and the approval views)."""

    def _render_page(self, request: HttpRequest, template: str, **context: Any) -> HttpResponse:
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request,
            template,
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "is_popup": False,
                "has_view_permission": True,
                **context,
            },
        )

    @staticmethod
    def _confirm_page(obj: Any, title: str, operation: str, start_over_url: str) -> dict:
        """What a confirmation page says about itself: its title, the object, the way
        back to the form (start over) and to the object (cancel)."""
        return {
            "title": title,
            "original": obj,
            "operation_name": operation,
            "start_over_url": start_over_url,
            "cancel_url": admin_url(obj),
        }

    def _render_form(
        self, request: HttpRequest, template: str, form: StaffOperationForm, **context: Any
    ) -> HttpResponse:
        return self._render_page(request, template, form=form, **context)

    def _read_plan(self, request: HttpRequest, kind: str, obj: Any) -> tuple[str, dict | None]:
        """(token, its payload) from the page's GET or POST; (why not, None) when unusable."""
        token = request.POST.get("token") if request.method == "POST" else request.GET.get("token")
        try:
            return token, confirmations.read(
                token, kind, object_id=obj.pk, staff_id=request.user.pk
            )
        except confirmations.ConfirmationError as problem:
            return str(problem), None

    def _log_action(self, request: HttpRequest, obj: Any, message: str) -> None:
        """Django's admin log, read by the home page's "Recent actions": the entry links
        to `obj` (the row booked, or the approval request) and reads as what was done,
        not as the object's name. The audit trail stays the record of truth."""
        LogEntry.objects.create(
            user_id=request.user.pk,
            content_type=ContentType.objects.get_for_model(obj),
            object_id=str(obj.pk),
            object_repr=message[: LogEntry._meta.get_field("object_repr").max_length],
            action_flag=CHANGE,
            change_message=message,
        )
