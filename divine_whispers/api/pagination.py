"""Pagination: cursors for histories (stable while new rows arrive), pages for admin lists."""

from __future__ import annotations

from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination, PageNumberPagination


class NewestFirstCursorPagination(CursorPagination):
    """Newest first; `id` breaks ties between rows created in the same microsecond.

    A cursor is a position in (created_at, id) order, so rows inserted while a client
    pages through its history appear on page one and never shift later pages.
    """

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except NotFound as exc:  # a malformed cursor is a bad request, not a missing page
            raise ValidationError({"cursor": ["Invalid cursor."]}) from exc


class AdminPagePagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
