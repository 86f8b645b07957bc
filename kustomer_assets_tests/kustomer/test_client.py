"""Client behaviour against the fake server: auth vs role, retries, 429s, paging, no key leaks."""

from __future__ import annotations

import email.utils
import logging

import httpx
import pytest

from kustomer_assets.kustomer import (
    KustomerAuthError,
    KustomerError,
    KustomerNotFoundError,
    KustomerPermissionError,
    KustomerRateLimitError,
    KustomerResponseError,
    KustomerServerError,
    roles,
)
from kustomer_assets_tests.kustomer.fake_server import (
    KEY,
    WINDOW_START,
    FakeClock,
    FakeKustomer,
    make_client,
    resource,
)


def _users(n: int) -> list[dict]:
    return [resource("user", i, WINDOW_START, WINDOW_START) for i in range(n)]


def test_headers_and_current_user() -> None:
    server = FakeKustomer()
    with make_client(server) as client:
        assert client.current_user()["id"] == "u1"
    request = server.requests[0]
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["accept"] == "application/json"
    assert request.headers["user-agent"].startswith("kustomer-assets/")
    assert request.url.host == "acme.api.kustomerapp.com"
    assert KEY not in repr(client)


@pytest.mark.parametrize("status", [401, 403])
def test_missing_role_probes_once_and_names_role(status: int) -> None:
    server = FakeKustomer(missing_roles={roles.NOTE_READ}, permission_status=status)
    server.lists["/v1/notes"] = []
    with make_client(server) as client:
        for _ in range(2):
            with pytest.raises(KustomerPermissionError) as info:
                list(client.iter_list("/v1/notes", role=roles.NOTE_READ))
    error = info.value
    assert error.role == roles.NOTE_READ and error.endpoint == "/v1/notes"
    text = str(error)
    assert "org.permission.note.read" in text and "GET /v1/notes" in text
    assert "create a new key" in text and "KUSTOMER_API_KEY" in text
    assert server.count("/v1/users/current") == 1


def test_users_current_forbidden_still_means_valid_key() -> None:
    server = FakeKustomer(missing_roles={roles.USER_READ, roles.NOTE_READ})
    server.lists["/v1/notes"] = []
    original = server._handle

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/users/current":
            return httpx.Response(403, json={"message": "Forbidden: org.permission.user.read"})
        return original(request)

    server._handle = handle  # type: ignore[method-assign]
    with make_client(server) as client:
        with pytest.raises(KustomerPermissionError) as info:
            list(client.iter_list("/v1/notes", role=roles.NOTE_READ))
        assert info.value.role == roles.NOTE_READ
        with pytest.raises(KustomerPermissionError):
            client.current_user()


def test_bad_key_is_auth_error() -> None:
    server = FakeKustomer(key="another-key-entirely")
    with make_client(server) as client, pytest.raises(KustomerAuthError) as info:
        list(client.iter_list("/v1/tags", role=roles.TAG_READ))
    assert "rejected the API key" in str(info.value)
    assert "KUSTOMER_API_KEY" in str(info.value)


def test_expired_key() -> None:
    server = FakeKustomer(auth_failure={"error": "Unauthorized", "message": "Expired token"})
    with make_client(server) as client, pytest.raises(KustomerAuthError) as info:
        client.current_user()
    assert "expired" in str(info.value)


def test_wrong_pod_message() -> None:
    server = FakeKustomer(
        auth_failure={
            "code": "unauthorized",
            "message": "Auth token associated with pod prod2 but request is being handled by prod1",
        }
    )
    with make_client(server) as client, pytest.raises(KustomerAuthError) as info:
        client.get_resource("/v1/brands/1")
    assert info.value.pod == "prod2"
    assert "your org is on prod2: set KUSTOMER_BASE_URL to https://api.prod2.kustomerapp.com" in (
        str(info.value)
    )


def test_pod_base_url_is_used() -> None:
    server = FakeKustomer(host="api.prod2.kustomerapp.com")
    with make_client(server, subdomain="", base_url="https://api.prod2.kustomerapp.com") as client:
        client.current_user()
    assert server.requests[0].url.host == "api.prod2.kustomerapp.com"


def test_other_4xx_and_404() -> None:
    server = FakeKustomer()
    server.faults = [
        httpx.Response(422, json={"errors": [{"status": 422, "detail": "bad criteria"}]})
    ]
    with make_client(server) as client:
        with pytest.raises(KustomerResponseError) as info:
            client.get_resource("/v1/conversations/abc")
        assert str(info.value) == "Kustomer answered 422 to GET /v1/conversations/abc: bad criteria"
        with pytest.raises(KustomerNotFoundError):
            client.get_resource("/v1/satisfaction-responses/nope")
    assert client.stats.retries == 0


def test_retries_every_transient_fault_then_succeeds() -> None:
    server = FakeKustomer(resources={"/v1/tags/1": {"type": "tag", "id": "1"}})
    server.faults = [
        httpx.Response(500, json={"code": "internal", "message": "boom"}),
        httpx.Response(503, text="<html><body><h1>503 Service Unavailable</h1></body></html>"),
        httpx.Response(200, content=b'{"data": {"type": "tag", "id'),  # truncated JSON
        httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadTimeout("timed out"),
        httpx.Response(200, text="<html>proxy page</html>"),
        httpx.Response(200, json=["not", "an", "object"]),
        httpx.Response(200, json={"meta": {}}),
        httpx.ConnectError("connection refused"),
    ]
    clock = FakeClock()
    with make_client(server, clock, max_retries=10) as client:
        assert client.get_resource("/v1/tags/1") == {"type": "tag", "id": "1"}
    stats = client.stats.as_dict()
    assert stats["retries"] == 10 and stats["requests"] == 11
    assert stats["backoff_seconds"] > 0
    assert len(clock.sleeps) == 10
    assert all(s <= 30.0 for s in clock.sleeps)


def test_backoff_gives_up_with_server_error() -> None:
    server = FakeKustomer()
    server.faults = [httpx.Response(502, text="<html>Bad Gateway</html>")] * 20
    clock = FakeClock()
    client = make_client(server, clock, max_retries=3, backoff_max_seconds=1.0)
    with client, pytest.raises(KustomerServerError) as info:
        client.current_user()
    assert "GET /v1/users/current failed after 4 attempts" in str(info.value)
    assert "502" in str(info.value) and "Bad Gateway" in str(info.value)
    assert client.stats.retries == 3 and client.stats.requests == 4
    assert all(s <= 1.0 for s in clock.sleeps)


def test_bad_json_gives_up_with_response_error() -> None:
    server = FakeKustomer()
    server.faults = [httpx.Response(200, text="nope")] * 5
    with make_client(server, max_retries=2) as client, pytest.raises(KustomerResponseError):
        client.current_user()


def _rl(status: int = 429, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers, json={"message": "Too Many Requests"})


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"x-ratelimit-reset": "12"}, 12.0),
        ({"x-ratelimit-reset": str(1_800_000_000 + 20)}, 20.0),
        ({"Retry-After": email.utils.formatdate(1_800_000_000 + 30, usegmt=True)}, 30.0),
    ],
)
def test_429_waits(headers: dict[str, str], expected: float) -> None:
    server = FakeKustomer()
    server.faults = [_rl(**headers)]
    clock = FakeClock()
    with make_client(server, clock) as client:
        client.current_user()
    assert clock.now == pytest.approx(expected, abs=0.01)
    assert client.stats.rate_limit_waits == 1
    assert client.stats.wait_seconds == pytest.approx(expected, abs=0.01)
    assert client.stats.retries == 0


def test_429_without_hints_backs_off() -> None:
    server = FakeKustomer()
    server.faults = [_rl(), _rl()]
    clock = FakeClock()
    with make_client(server, clock) as client:
        client.current_user()
    assert client.stats.rate_limit_waits == 2 and 0 < clock.now < 5


def test_429_gives_up_after_max_wait() -> None:
    server = FakeKustomer()
    server.faults = [_rl(**{"Retry-After": "600"})] * 5
    clock = FakeClock()
    client = make_client(server, clock, max_rate_limit_wait_seconds=900)
    with client, pytest.raises(KustomerRateLimitError) as info:
        client.current_user()
    assert clock.now == pytest.approx(600)
    assert "max_rate_limit_wait_seconds" in str(info.value)


def test_key_never_leaks_into_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    echo = f"Invalid token {KEY}; Authorization: Bearer {KEY}"
    server = FakeKustomer()
    server.faults = [
        httpx.Response(500, text=f"<html><body>{echo}</body></html>"),
        httpx.Response(500, json={"message": echo}),
        httpx.Response(500, json={"errors": [{"detail": echo}]}),
        httpx.Response(400, json={"error": "bad", "message": echo}),
        httpx.Response(500, text=echo),
        httpx.Response(500, text=echo),
        httpx.ConnectError(f"could not connect with {KEY}"),
        httpx.Response(500, text=echo),
    ]
    logger = logging.getLogger("kustomer-leak-test")
    caught: list[KustomerError] = []
    with caplog.at_level(logging.DEBUG), make_client(server, logger=logger, max_retries=3) as c:
        for _ in range(2):
            try:
                c.get_resource("/v1/brands/1")
            except KustomerError as error:
                caught.append(error)
    assert len(caught) == 2
    texts = [str(e) for e in caught] + [repr(e) for e in caught]
    texts += [r.getMessage() for r in caplog.records]
    assert caplog.records, "retries should have been logged"
    for text in texts:
        assert KEY not in text
        assert "sk-test-SECRETKEY" not in text


def test_iter_list_follows_next_and_caps_page_size() -> None:
    server = FakeKustomer(lists={"/v1/users": _users(250)}, max_page_size=100)
    with make_client(server) as client:
        pages = list(client.iter_list("/v1/users", page_size=500, role=roles.USER_READ))
    assert [len(p) for p in pages] == [100, 100, 50]
    assert server.requests[0].url.params["pageSize"] == "500"
    assert client.stats.pages == 3


@pytest.mark.parametrize("style", ["absolute_other_host", "absolute_same_host", "query_only"])
def test_next_links_never_leave_our_host(style: str) -> None:
    server = FakeKustomer(lists={"/v1/teams": _users(230)}, next_style=style)
    with make_client(server) as client:
        ids = [r["id"] for page in client.iter_list("/v1/teams") for r in page]
    assert len(ids) == len(set(ids)) == 230
    assert {r.url.host for r in server.requests} == {"acme.api.kustomerapp.com"}


def test_iter_list_without_total_and_page_size() -> None:
    server = FakeKustomer(lists={"/v1/tags": _users(120)}, omit_total=True, hide_page_size=True)
    with make_client(server) as client:
        assert sum(len(p) for p in client.iter_list("/v1/tags")) == 120


def test_base_url_path_prefix_is_kept() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        page = int(request.url.params.get("page", "1"))
        nxt = "/proxy/v1/tags?page=2&pageSize=1" if page == 1 else None
        return httpx.Response(200, json={"data": [{"id": str(page)}], "links": {"next": nxt}})

    from kustomer_assets.kustomer import KustomerClient, KustomerSettings

    settings = KustomerSettings(api_key=KEY, base_url="http://127.0.0.1:9/proxy")
    with KustomerClient(settings, transport=httpx.MockTransport(handler)) as client:
        assert len(list(client.iter_list("/v1/tags", page_size=1))) == 2
    assert seen == ["/proxy/v1/tags", "/proxy/v1/tags"]
