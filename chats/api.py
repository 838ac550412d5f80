from __future__ import annotations

from django.conf import settings
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from rest_framework import serializers, status
from rest_framework.exceptions import AuthenticationFailed, NotFound
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import bearer_secret, token_user
from accounts.sessions import read_ahead_session
from chats import answering, chat_detail, chat_list, direct
from chats.chat_detail import OldestFirst
from chats.chat_list import ChatSearchSerializer, NewestFirst
from chats.direct import DirectGet, StreamNegotiation, json_response, rendered
from chats.models import CHAT_DETAIL_CACHE, CHAT_LIST_CACHE, Chat, Citation, Message, Vote
from chats.rendering import render_answer
from chats.selectors import hide_unreadable_sources, own_chat, readable_chat
from rra import querycache, telemetry
from rra.api import json_error
from rra.ratelimit import limit_request, too_many_requests_json


class ChatSerializer(serializers.ModelSerializer):
    is_owner = serializers.SerializerMethodField()

    class Meta:
        model = Chat
        fields = ["id", "title", "visibility", "is_owner", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]

    def get_is_owner(self, chat: Chat) -> bool:
        request = self.context.get("request")
        return bool(request and request.user.is_authenticated and chat.owner_id == request.user.pk)

    def validate_title(self, value: str) -> str:
        value = " ".join(value.split())
        if not value:
            raise serializers.ValidationError("A chat needs a title.")
        return value

    def update(self, instance: Chat, validated_data: dict) -> Chat:
        for field, value in validated_data.items():
            setattr(instance, field, value)
        instance.save(update_fields=[*validated_data, "updated_at"])
        return instance


class CitationSerializer(serializers.ModelSerializer):
    pages = serializers.SerializerMethodField()
    location = serializers.SerializerMethodField()
    private = serializers.SerializerMethodField()
    source_removed = serializers.SerializerMethodField()

    class Meta:
        model = Citation
        fields = [
            "number",
            "document_id",
            "document_name",
            "chunk_id",
            "first_page",
            "last_page",
            "pages",
            "location",
            "section",
            "quote",
            "score",
            "private",
            "source_removed",
        ]

    def get_source_removed(self, citation: Citation) -> bool:
        """True when the cited passage was gone when the answer was saved (its document
        deleted or processed again) or its document was deleted since (no text then)."""
        return citation.source_removed and not getattr(citation, "private", False)

    def get_private(self, citation: Citation) -> bool:
        """True when the viewer cannot read the cited document: only the number is
        shown (chats.selectors.hide_unreadable_sources)."""
        return getattr(citation, "private", False)

    def get_pages(self, citation: Citation) -> str:
        return "" if self.get_private(citation) else citation.pages

    def get_location(self, citation: Citation) -> str:
        """The page label ("p. 3"), or "§ Setup" for a document without pages."""
        return "" if self.get_private(citation) else citation.location


class MessageSerializer(serializers.ModelSerializer):
    citations = CitationSerializer(many=True, read_only=True)
    votes = serializers.SerializerMethodField()
    html = serializers.SerializerMethodField()

    class Meta:
        model = Message
        fields = [
            "id",
            "role",
            "content",
            "html",
            "status",
            "error",
            "prompt_tokens",
            "completion_tokens",
            "model",
            "created_at",
            "citations",
            "votes",
        ]

    def get_html(self, message: Message) -> str:
        """Sanitized HTML of the Markdown answer; questions are plain text."""
        if message.role == Message.Role.ASSISTANT:
            return render_answer(message.content)
        return ""

    def get_votes(self, message: Message) -> dict:
        return {
            "up": getattr(message, "up_votes", 0),
            "down": getattr(message, "down_votes", 0),
            "mine": getattr(message, "my_vote", None),
        }


class NewChatSerializer(serializers.Serializer):
    """POST /api/chats: an optional title and an optional first question (the title is
    checked again by ChatSerializer, the question by QuestionSerializer's rules)."""

    title = serializers.CharField(required=False, allow_blank=True, trim_whitespace=True)
    question = serializers.CharField(required=False, allow_blank=True, trim_whitespace=True)

    def validate_question(self, value: str) -> str:
        return QuestionSerializer().validate_question(value) if value else value


class QuestionSerializer(serializers.Serializer):
    question = serializers.CharField(max_length=None, trim_whitespace=True)

    def validate_question(self, value: str) -> str:
        if len(value) > settings.MAX_QUESTION_CHARS:
            raise serializers.ValidationError(
                f"Keep the question under {settings.MAX_QUESTION_CHARS} characters."
            )
        return value


class StreamingView(APIView):
    content_negotiation_class = StreamNegotiation


def _vote_count(value: int) -> Coalesce:
    """The outer message's votes of one value, as a subquery. (A Count over joined votes
    groups every message of the chat before the page's LIMIT, so a long chat was read
    and sorted whole for each page; this way a page is read off message_chat_created_idx.)"""
    votes = (
        Vote.objects.filter(message=OuterRef("pk"), value=value)
        .order_by()
        .values("message")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(votes), 0)


def _chat_list_lookup(request, user_id: int) -> querycache.Lookup:
    return querycache.Lookup(
        CHAT_LIST_CACHE,
        scopes=(Chat.list_cache_scope(user_id),),
        viewer=querycache.UserId(user_id),
        request=request,
    )


# The request attribute that keeps the list's lookup named when its session was read.
_READ_AHEAD_LOOKUP = "_rra_chat_list_lookup"


def _read_ahead_lookup(request, user_id: int) -> querycache.Lookup:
    """The list's lookup named with the session's read, kept on the request for the view
    (ChatListView._lookup_for)."""
    lookup = _chat_list_lookup(request, user_id)
    setattr(request, _READ_AHEAD_LOOKUP, lookup)
    return lookup


class ChatListView(DirectGet, StreamingView):
    _list_lookup: querycache.Lookup | None = None

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponseBase:
        # The list most clients read again and again, with an API token, from the query
        # cache: answered here when it is a hit (_hit), with no DRF request wrapper or
        # content negotiation around it; while Redis is unreachable, a first page from
        # one statement (_without_redis). Everything else (a miss, a token or a request
        # the view's classes do not pass, any other method) goes through DRF, which
        # decides and answers it as it always did.
        return self._hit(request, kwargs) or super().dispatch(request, *args, **kwargs)

    def _hit(self, request: HttpRequest, kwargs: dict) -> HttpResponseBase | None:
        """The answer DRF would give to a GET with an API token or a session whose list
        is in the query cache, or None, decided by the view's own DRF classes
        (chats.direct): the token by the view's first authenticator's functions (one
        that fails is left to DRF, which refuses it with its 401); without a token
        header, the session when the second authenticator is DRF's
        SessionAuthentication; then every permission and throttle class of the view;
        one that does not pass leaves the request to DRF, which asks them again and
        answers its way."""
        if not self.direct(request, kwargs):
            return None
        if querycache.unreachable():  # no hit to find
            return self._without_redis(request, kwargs)
        try:
            secret = bearer_secret(request)
            if secret is None:  # a session, or nobody
                user, token = self.session_user(request), None
                if user is None:
                    return None
            else:
                user, token = token_user(secret, view=self, request=request)
        except AuthenticationFailed:
            return None
        found = querycache.cached(self._lookup_for(request, user.pk))  # a peek
        if found is None or not self.passes(request, user, token, kwargs):
            return None
        return self.answer(request, found)

    def _without_redis(self, request: HttpRequest, kwargs: dict) -> HttpResponseBase | None:
        """While Redis's circuit breaker is open: a first page (chats.chat_list) read in
        one statement with the API token and its user (token_user_with), or with the
        session and its user (read ahead by read_ahead_user), decided as _hit decides;
        else None (DRF answers: a cursor, a bad query string, a token or session that
        does not pass)."""
        query = chat_list.page_query(request)
        found = self.caller_rows(request, query) if query is not None else None
        if found is None:
            return None
        user, token, rows = found
        if rows is None or not self.passes(request, user, token, kwargs):
            return None
        body = rendered(chat_list.page(request, query, rows))
        # As cached() computes it without Redis: no write time known.
        return self.answer(request, querycache.Entry(body, hit=False, changed_at=None))

    @classmethod
    def read_ahead_user(cls, request: HttpRequest) -> None:
        """Before the session's user is loaded (RequestObservabilityMiddleware loads it
        before the view): a GET's session, user and list in one round trip, from Redis
        or, while it is unreachable, from PostgreSQL (chats.chat_list)."""
        if request.method != "GET":
            return
        if querycache.unreachable():
            direct.read_with_session(request, chat_list.page_query(request))
        else:
            read_ahead_session(request, lambda user_id: [_read_ahead_lookup(request, user_id)])

    def cache_ahead(self, request, user_id: int) -> list[querycache.Lookup]:
        """The list's entry, read with the API token's (accounts.authentication)."""
        if request.method != "GET":
            return []
        self._list_lookup = _chat_list_lookup(request, user_id)
        return [self._list_lookup]

    def _lookup_for(self, request, user_id: int) -> querycache.Lookup:
        """The list's lookup for this user: the one read ahead with the token, or with
        the session (read_ahead_user), when it was named for this user (it always is: a
        token never changes hands, and a session's user is the one read ahead or none),
        else anew. Reused, its key (a hash of the request's query, host and scheme) is
        not derived twice."""
        lookup = self._list_lookup or getattr(request, _READ_AHEAD_LOOKUP, None)
        if lookup is None or lookup.viewer != user_id:
            lookup = _chat_list_lookup(request, user_id)
        return lookup

    def get(self, request: Request) -> HttpResponse:
        search = ChatSearchSerializer(data=request.query_params)
        search.is_valid(raise_exception=True)  # a 400 for what the database cannot take

        def compute() -> dict:
            chats = Chat.objects.owned_by(request.user)
            if query := search.validated_data.get("q", ""):
                chats = chats.filter(title__icontains=query)
            paginator = NewestFirst()
            page = paginator.paginate_queryset(chats, request, view=self)
            return paginator.get_paginated_response(
                ChatSerializer(page, many=True, context={"request": request}).data
            ).data

        lookup = self._lookup_for(request, request.user.pk)
        return json_response(querycache.cached(lookup, compute=lambda: rendered(compute())))

    def post(self, request: Request):
        new = NewChatSerializer(data=request.data)
        new.is_valid(raise_exception=True)  # a 400 for a body that is not {title, question}
        limited = limit_request(request, group="chat-create", rate=settings.CHAT_CREATE_RATE)
        if limited:
            return too_many_requests_json(limited, "new chats")
        question = new.validated_data.get("question", "")
        title = new.validated_data.get("title") or (
            answering.title_from(question) if question else "New chat"
        )
        meta = ChatSerializer(data={"title": title}, context={"request": request})
        meta.is_valid(raise_exception=True)

        def create() -> Chat:
            return Chat.objects.create(owner=request.user, title=meta.validated_data["title"])

        if not question:
            body = ChatSerializer(create(), context={"request": request}).data
            return Response(body, status=status.HTTP_201_CREATED)

        created: list[Chat] = []

        def prepare() -> Message:
            created.append(create())  # only once the answer's slot is held
            return answering.question_save(chat=created[0], question=question)

        def head(asked: Message) -> list[str]:
            body = ChatSerializer(asked.chat, context={"request": request}).data
            # The id is the start of the answer's stream: a client that reconnects with it
            # as Last-Event-ID reads the answer from its first event.
            data = {k: str(v) if k == "id" else v for k, v in body.items()}
            return [answering.sse("chat", data, event_id="0-0")]

        response = answering.answer_response(request=request, prepare=prepare, head=head)
        if created and isinstance(response, StreamingHttpResponse):
            response.status_code = 201
            response["Location"] = f"/api/chats/{created[0].pk}"
        return response


class ChatDetailView(DirectGet, APIView):
    def get_permissions(self):
        # A public chat is readable by anyone with its link.
        return [AllowAny()] if self.request.method == "GET" else super().get_permissions()

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponseBase:
        # While Redis is unreachable, a first page from one statement (_without_redis);
        # everything else goes through DRF, which decides and answers it as always.
        return self._without_redis(request, kwargs) or super().dispatch(request, *args, **kwargs)

    def _without_redis(self, request: HttpRequest, kwargs: dict) -> HttpResponseBase | None:
        """While Redis's circuit breaker is open: the chat and its first page of messages
        (chats.chat_detail) read in one statement with the API token and its user
        (token_user_with), or with the session and its user (read ahead by
        read_ahead_user), or alone without either (a public chat), decided by the view's
        own DRF classes (chats.direct); else None (DRF answers: a cursor, a chat the
        viewer may not read or that does not exist, a token or session that does not
        pass, an Accept header it refuses)."""
        if not querycache.unreachable() or not self.direct(request, kwargs):
            return None
        query = chat_detail.detail_query(request, kwargs.get("chat_id"))
        if query is None:
            return None
        # Without a token header or a session: as DRF finds nobody (a public chat).
        found = self.caller_rows(request, query, nobody=lambda: chat_detail.anonymous_rows(query))
        if found is None:
            return None
        user, token, rows = found
        if not rows or not self.passes(request, user, token, kwargs):
            return None
        body = rendered(chat_detail.detail(request, user, query, rows))
        # As cached() computes it without Redis: no write time known.
        return self.answer(request, querycache.Entry(body, hit=False, changed_at=None))

    @classmethod
    def read_ahead_user(cls, request: HttpRequest) -> None:
        """Before the session's user is loaded (RequestObservabilityMiddleware loads it
        before the view), while Redis is unreachable: a GET's session, user and chat in
        one statement (chats.chat_detail)."""
        if request.method == "GET" and querycache.unreachable():
            direct.read_with_session(request, chat_detail.request_query(request))

    def get(self, request: Request, chat_id) -> HttpResponse:
        # Access first, from the database (inside the cache, before anything goes out);
        # then the body, from the cache.
        entry = querycache.cached(
            CHAT_DETAIL_CACHE,
            scopes=[Chat.cache_scope(chat_id)],
            viewer=request.user,
            request=request,
            access=lambda: readable_chat(request.user, chat_id),
            compute=lambda chat: rendered(self._detail(request, chat)),
        )
        return json_response(entry)

    def _detail(self, request: Request, chat: Chat) -> dict:
        user_id = request.user.pk if request.user.is_authenticated else None
        messages = chat.messages.prefetch_related("citations").annotate(
            up_votes=_vote_count(Vote.Value.UP), down_votes=_vote_count(Vote.Value.DOWN)
        )
        if user_id:  # the viewer's own vote, in the same statement (one per message and user)
            mine = Vote.objects.filter(message=OuterRef("pk"), user_id=user_id).values("value")
            messages = messages.annotate(my_vote=Subquery(mine[:1]))
        paginator = OldestFirst()
        page = paginator.paginate_queryset(messages, request, view=self)
        hide_unreadable_sources(page, request.user)
        data = ChatSerializer(chat, context={"request": request}).data
        data["messages"] = MessageSerializer(page, many=True).data
        data["next"] = paginator.get_next_link()
        data["previous"] = paginator.get_previous_link()
        return data

    def patch(self, request: Request, chat_id) -> Response:
        chat = own_chat(request.user, chat_id)
        was_public = chat.visibility == Chat.Visibility.PUBLIC
        serializer = ChatSerializer(
            chat, data=request.data, partial=True, context={"request": request}
        )
        serializer.is_valid(raise_exception=True)
        serializer.save()
        if not was_public and chat.visibility == Chat.Visibility.PUBLIC:
            telemetry.shared("chat")
        return Response(serializer.data)

    def delete(self, request: Request, chat_id) -> Response:
        own_chat(request.user, chat_id).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class MessagesView(StreamingView):
    def post(self, request: Request, chat_id):
        chat = own_chat(request.user, chat_id)
        serializer = QuestionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        question = serializer.validated_data["question"]
        return answering.answer_response(
            request=request, prepare=lambda: answering.question_save(chat=chat, question=question)
        )


class AnswerEventsView(StreamingView):
    """GET an answer's events (from the start, or after the Last-Event-ID header or the
    last_event_id parameter): any process continues the same answer."""

    def get(self, request: Request, answer_id: str):
        replay = answering.events_replay(
            user=request.user,
            answer_id=answer_id,
            last_event_id=request.headers.get("Last-Event-ID")
            or request.query_params.get("last_event_id"),
        )
        if replay is None:
            raise NotFound()
        return replay


class StopView(APIView):
    def post(self, request: Request, chat_id) -> Response:
        answering.answer_stop(chat=own_chat(request.user, chat_id))
        return Response({"stopping": True}, status=status.HTTP_202_ACCEPTED)


class RegenerateView(StreamingView):
    def post(self, request: Request, chat_id):
        chat = own_chat(request.user, chat_id)
        question, _ = answering.last_exchange(chat)
        if question is None:
            return json_error(
                409, "nothing_to_regenerate", "This chat has no question to answer again."
            )
        return answering.answer_response(
            request=request, prepare=lambda: answering.regenerate_prepare(chat=chat)
        )


class EditLastView(StreamingView):
    def post(self, request: Request, chat_id):
        chat = own_chat(request.user, chat_id)
        serializer = QuestionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        question, _ = answering.last_exchange(chat)
        if question is None:
            return json_error(409, "nothing_to_edit", "This chat has no question to edit yet.")
        text = serializer.validated_data["question"]
        return answering.answer_response(
            request=request, prepare=lambda: answering.edit_last_prepare(chat=chat, question=text)
        )


class VoteSerializer(serializers.Serializer):
    value = serializers.ChoiceField(choices=["up", "down"])


class VoteView(APIView):
    def _message(self, request: Request, message_id: int) -> Message:
        message = (
            Message.objects.filter(pk=message_id, role=Message.Role.ASSISTANT)
            .filter(chat__in=Chat.objects.readable_by(request.user))
            .first()
        )
        if message is None:
            raise NotFound()
        return message

    def put(self, request: Request, message_id: int) -> Response:
        message = self._message(request, message_id)
        serializer = VoteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        value = Vote.Value.UP if serializer.validated_data["value"] == "up" else Vote.Value.DOWN
        mine = Vote.objects.filter(message=message, user=request.user)
        before = mine.values_list("value", flat=True).first()
        Vote.objects.update_or_create(message=message, user=request.user, defaults={"value": value})
        if before != value:  # a new vote or a changed mind, not the same one again
            telemetry.voted(serializer.validated_data["value"])
        return Response({"message_id": message.pk, "value": serializer.validated_data["value"]})

    def delete(self, request: Request, message_id: int) -> Response:
        message = self._message(request, message_id)
        Vote.objects.filter(message=message, user=request.user).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
