"""The chat list's query (its search and its pages) and, while Redis is unreachable, its
first page in one statement with the request's user.

With Redis up a signed-in client's list is one MGET: the API token (or the session and
its user) and the cached page (chats/api.py, ChatListView._hit). While Redis's circuit
breaker is open nothing is cached, and DRF's path took two round trips to PostgreSQL
(the token with its user, or the session with its user; then the page) plus the ORM and
the serializers building them: 3-4x the cached list's time. For the request the PWA and
API clients send most (GET /api/chats, ``q`` and ``page_size`` allowed, no cursor) the
page is instead read in the same statement as the token or the session and its user
(``page_query().sql()`` as a LATERAL join: accounts.authentication.token_user_with,
accounts.sessions.read_session_with), and built as DRF builds it: ChatSerializer's
fields, NewestFirst's next link, the same JSON bytes (chats/tests/test_chat_list_db.py
compares them). Later pages (a cursor) and anything unusual go through DRF as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

from django.db import connection
from rest_framework import serializers
from rest_framework.pagination import CursorPagination

from chats.models import Chat


class NewestFirst(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 30
    page_size_query_param = "page_size"
    max_page_size = 100


class ChatSearchSerializer(serializers.Serializer):
    """?q= of the chat list: words of a title (CharField refuses NUL characters, which
    PostgreSQL text cannot hold, and trims)."""

    q = serializers.CharField(required=False, allow_blank=True, max_length=500)


# ChatSerializer's fields, in its order; is_owner is True for every chat of one's own list.
_COLUMNS = ("id", "title", "visibility", "created_at", "updated_at")
_DATETIME = serializers.DateTimeField()


@dataclass(frozen=True)
class PageQuery:
    """The first page of a user's list: its size and title search, as DRF reads them."""

    page_size: int
    q: str

    def sql(self) -> tuple[str, list]:
        """A SELECT of the page's chats, one more to know whether a next page exists,
        for the user ``u."id"`` (ChatListView.get's queryset, NewestFirst's order)."""
        meta = Chat._meta
        columns = ", ".join(f'c."{meta.get_field(name).column}"' for name in _COLUMNS)
        where, params = "", []
        if self.q:  # title__icontains, as the ORM writes it for PostgreSQL
            where = ' AND UPPER(c."title"::text) LIKE UPPER(%s)'
            params.append(f"%{connection.ops.prep_for_like_query(self.q)}%")
        # Column and table names from the model; every value is a parameter.
        sql = (
            f'SELECT {columns} FROM "{meta.db_table}" c WHERE c."owner_id" = u."id"{where} '  # noqa: S608
            'ORDER BY c."created_at" DESC, c."id" DESC LIMIT %s'
        )
        return sql, [*params, self.page_size + 1]


def page_query(request) -> PageQuery | None:
    """The page a GET asks for when it is a first page (no cursor) whose query string DRF
    accepts; None otherwise (DRF answers it, a 400 included)."""
    params = request.GET
    if NewestFirst.cursor_query_param in params:
        return None
    q = ""
    if "q" in params:
        search = ChatSearchSerializer(data=params)
        if not search.is_valid():
            return None
        q = search.validated_data.get("q", "")
    paginator = NewestFirst()
    page_size = paginator.get_page_size(SimpleNamespace(query_params=params))
    return PageQuery(page_size=page_size, q=q)


def first_page(paginator: CursorPagination, request, items: list[dict]) -> tuple[list, str | None]:
    """A first page (no cursor) as DRF's cursor pagination makes it of ``items``, dicts in
    the paginator's order holding its ordering's fields, one more than its page_size
    when there is a next page: the page's items and the next link
    (CursorPagination.paginate_queryset and get_next_link)."""
    size = paginator.page_size
    paginator.base_url = request.build_absolute_uri()
    paginator.cursor = None
    paginator.page = items[:size]
    paginator.has_previous = False
    paginator.has_next = len(items) > size
    if paginator.has_next:
        paginator.next_position = paginator._get_position_from_instance(
            items[size], paginator.ordering
        )
    return paginator.page, paginator.get_next_link()


def page(request, query: PageQuery, rows: list[tuple]) -> dict:
    """The body DRF's path makes of this page (ChatListView.get): NewestFirst's next and
    previous links around ChatSerializer's fields of each chat."""
    chats = sorted(
        (dict(zip(_COLUMNS, row, strict=True)) for row in rows),
        key=lambda chat: (chat["created_at"], chat["id"]),
        reverse=True,
    )
    paginator = NewestFirst()
    paginator.page_size = query.page_size
    shown, next_link = first_page(paginator, request, chats)
    return {
        "next": next_link,
        "previous": None,
        "results": [
            {
                "id": str(chat["id"]),
                "title": chat["title"],
                "visibility": chat["visibility"],
                "is_owner": True,
                "created_at": _DATETIME.to_representation(chat["created_at"]),
                "updated_at": _DATETIME.to_representation(chat["updated_at"]),
            }
            for chat in shown
        ],
    }
