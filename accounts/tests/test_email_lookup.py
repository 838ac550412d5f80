"""Addresses are looked up case-insensitively through the lower(email) unique index."""

import pytest
from django.db import IntegrityError, connection, transaction

from accounts.models import User

pytestmark = pytest.mark.django_db


def _plan(queryset) -> str:
    with connection.cursor() as cursor:
        # A handful of rows make a sequential scan cheapest; ask whether the index *can*
        # serve the query, which it cannot for email__iexact (UPPER(...) LIKE UPPER(...)).
        cursor.execute("SET LOCAL enable_seqscan = off")
        sql, params = queryset.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_it_finds_a_user_by_email_in_any_case(owner):
    assert User.objects.with_email("OWNER@Example.com").get() == owner
    assert User.objects.get_by_natural_key("Owner@EXAMPLE.COM") == owner


def test_the_lookup_uses_the_lower_email_index(owner):
    with transaction.atomic():
        plan = _plan(User.objects.with_email("Owner@Example.com"))
    assert "user_email_lower_uniq" in plan, plan
    with transaction.atomic():
        old = _plan(User.objects.filter(email__iexact="Owner@Example.com"))
    assert "user_email_lower_uniq" not in old, old


def test_two_accounts_cannot_differ_only_in_case(owner):
    with pytest.raises(IntegrityError), transaction.atomic():
        # Saved around the manager (which lowercases): the database still refuses it.
        User(email="OWNER@example.com").save()


def _user_lookups(queries) -> list[str]:
    return [q["sql"] for q in queries if 'FROM "accounts_user"' in q["sql"] and "email" in q["sql"]]


@pytest.mark.parametrize("path", ["accounts:login", "accounts:password_reset"])
def test_sign_in_and_password_reset_look_addresses_up_by_lower_email(client, owner, path):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from conftest import PASSWORD

    data = {"username": "Owner@Example.COM", "password": PASSWORD, "email": "Owner@Example.COM"}
    with CaptureQueriesContext(connection) as queries:
        response = client.post(reverse(path), data)
    assert response.status_code == 302
    lookups = _user_lookups(queries.captured_queries)
    assert lookups, queries.captured_queries
    assert all('LOWER("accounts_user"."email")' in sql for sql in lookups), lookups
    assert not any("UPPER(" in sql for sql in lookups), lookups
