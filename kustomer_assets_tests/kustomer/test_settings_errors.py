"""Settings validation sentences, error-body parsing and redaction."""

from __future__ import annotations

import httpx
import pytest

from kustomer_assets.kustomer import (
    KustomerConfigError,
    KustomerError,
    KustomerPermissionError,
    KustomerSettings,
    parse_error_body,
    redact,
    roles,
)
from kustomer_assets.kustomer.errors import register_secret


def _error(**kwargs: object) -> str:
    with pytest.raises(KustomerConfigError) as info:
        KustomerSettings(**kwargs).validate()  # type: ignore[arg-type]
    message = str(info.value)
    assert message.count(". ") == 0 or message.endswith(".")  # one sentence
    return message


def test_valid_settings_and_api_root() -> None:
    KustomerSettings(subdomain="acme", api_key="k").validate()
    assert KustomerSettings(subdomain="Acme-2", api_key="k").api_root == (
        "https://acme-2.api.kustomerapp.com"
    )
    pod = KustomerSettings(api_key="k", base_url="https://api.prod2.kustomerapp.com/")
    pod.validate()
    assert pod.api_root == "https://api.prod2.kustomerapp.com"
    assert KustomerSettings(api_key="k", base_url="https://h.example/v1").api_root == (
        "https://h.example"
    )
    for url in (
        "http://127.0.0.1:8755",
        "http://127.9.9.9",
        "http://localhost:1",
        "http://[::1]:80",
    ):
        KustomerSettings(api_key="k", base_url=url).validate()


def test_key_not_in_repr() -> None:
    settings = KustomerSettings(subdomain="acme", api_key="super-secret-value")
    assert "super-secret-value" not in repr(settings)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"subdomain": "acme"}, "KUSTOMER_API_KEY is empty"),
        ({"subdomain": "acme", "api_key": "ab cd"}, "KUSTOMER_API_KEY contains whitespace"),
        ({"subdomain": "acme", "api_key": "Bearer\tx"}, "KUSTOMER_API_KEY contains whitespace"),
        ({"api_key": "k"}, "KUSTOMER_SUBDOMAIN is not set"),
        ({"subdomain": "-acme", "api_key": "k"}, "KUSTOMER_SUBDOMAIN must be a single DNS label"),
        ({"subdomain": "acme-", "api_key": "k"}, "KUSTOMER_SUBDOMAIN must be"),
        ({"subdomain": "acme.kustomerapp.com", "api_key": "k"}, "KUSTOMER_SUBDOMAIN must be"),
        ({"subdomain": "a" * 64, "api_key": "k"}, "KUSTOMER_SUBDOMAIN must be"),
        ({"subdomain": "ac_me", "api_key": "k"}, "KUSTOMER_SUBDOMAIN must be"),
        ({"api_key": "k", "base_url": "http://api.kustomerapp.com"}, "must start with https://"),
        ({"api_key": "k", "base_url": "http://10.0.0.1"}, "KUSTOMER_BASE_URL must start with"),
        ({"api_key": "k", "base_url": "api.kustomerapp.com"}, "KUSTOMER_BASE_URL must be a full"),
        ({"api_key": "k", "base_url": "ftp://x.example"}, "KUSTOMER_BASE_URL must be a full"),
        ({"api_key": "k", "base_url": "https://a..b"}, "KUSTOMER_BASE_URL has an invalid host"),
        ({"subdomain": "a", "api_key": "k", "search_page_size": 0}, "search_page_size must be"),
        ({"subdomain": "a", "api_key": "k", "list_page_size": -1}, "list_page_size must be"),
        ({"subdomain": "a", "api_key": "k", "org_requests_per_minute": 0}, "org_requests"),
        ({"subdomain": "a", "api_key": "k", "search_requests_per_minute": 0}, "search_requests"),
        ({"subdomain": "a", "api_key": "k", "timeout_seconds": 0}, "timeout_seconds must be"),
        ({"subdomain": "a", "api_key": "k", "max_retries": -1}, "max_retries must be"),
    ],
)
def test_invalid_settings_one_sentence(kwargs: dict[str, object], needle: str) -> None:
    message = _error(**kwargs)
    assert needle in message
    assert "\n" not in message


def test_subdomain_error_names_value_but_key_error_never_does() -> None:
    assert "'-acme'" in _error(subdomain="-acme", api_key="k")
    assert "my secret" not in _error(subdomain="acme", api_key="my secret")


def _response(status: int, body: object = None, text: str | None = None) -> httpx.Response:
    request = httpx.Request("GET", "https://acme.api.kustomerapp.com/v1/x")
    if text is not None:
        return httpx.Response(status, text=text, request=request)
    return httpx.Response(status, json=body, request=request)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (
            _response(400, {"code": "bad_request", "message": "pageSize too big"}),
            "pageSize too big",
        ),
        (
            _response(403, {"errors": [{"status": 403, "code": "forbidden", "detail": "No"}]}),
            "No (forbidden)",
        ),
        (_response(400, {"errors": [{"status": 400, "title": "Bad criteria"}]}), "Bad criteria"),
        (_response(401, {"error": "Unauthorized", "message": "Expired token"}), "Expired token"),
        (_response(401, {"error": "Unauthorized"}), "Unauthorized"),
        (
            _response(
                503,
                text="<html><head><style>p{}</style></head><body><h1>503 Service "
                "Unavailable</h1><p>Back soon &amp; sorry</p></body></html>",
            ),
            "503 Service Unavailable Back soon & sorry",
        ),
        (_response(502, text="upstream connect error"), "upstream connect error"),
        (_response(500, text=""), "Internal Server Error"),
        (_response(500, text="{not json"), "{not json"),
    ],
)
def test_parse_error_body_shapes(response: httpx.Response, expected: str) -> None:
    assert expected in parse_error_body(response)


def test_parse_error_body_truncates_html() -> None:
    body = "<html><body>" + "x" * 5000 + "</body></html>"
    message = parse_error_body(_response(502, text=body))
    assert len(message) <= 300 and message.endswith("...")


def test_redaction() -> None:
    register_secret("zz-registered-secret-123")
    text = redact("a zz-registered-secret-123 b Authorization: Bearer abc.def-ghi token=xyz")
    assert "zz-registered-secret-123" not in text
    assert "abc.def-ghi" not in text and "xyz" not in text
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl"
    assert "eyJ" not in redact(f"bad {jwt}")
    assert str(KustomerError("boom zz-registered-secret-123")) == "boom [REDACTED]"
    # ordinary prose survives
    assert redact("Expired token") == "Expired token"


def test_permission_error_sentence() -> None:
    error = KustomerPermissionError(roles.NOTE_READ, "/v1/notes")
    assert str(error) == (
        "The API key lacks the role org.permission.note.read needed for GET /v1/notes; roles "
        "cannot be edited on a key: create a new key in Kustomer Settings → Security → API Keys "
        "with this role and set KUSTOMER_API_KEY."
    )
    assert error.role == roles.NOTE_READ and error.endpoint == "/v1/notes"
    assert KustomerPermissionError(None, "POST /v1/customers/search").method == "POST"


def test_roles_tables() -> None:
    # Which roles are required is the specs' to say (test_key_check_probes.py); here, names.
    assert len(roles.ALL_ROLES) == len(set(roles.ALL_ROLES)) == 15
    assert set(roles.SEARCH_ROLES) <= set(roles.ALL_ROLES)


def test_errors_pickle_round_trip() -> None:
    import pickle
    from datetime import UTC, datetime

    from kustomer_assets.kustomer import KustomerIncompleteError

    errors = [
        KustomerPermissionError(roles.NOTE_READ, "/v1/notes", status=403, detail="no"),
        KustomerIncompleteError(
            "note",
            datetime(2026, 1, 1, tzinfo=UTC),
            datetime(2026, 1, 2, tzinfo=UTC),
            reported_total=5,
            received=3,
            reason="test",
        ),
        KustomerError("plain", status=500),
    ]
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)
        assert copy.__dict__ == error.__dict__
