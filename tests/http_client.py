"""A small HTTP client that keeps cookies like a browser and never follows redirects (tests look at them)."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    set_cookies: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> dict:
        return json.loads(self.body)


class Browser:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, *, form: dict | None = None, json_body=None,
                headers: dict[str, str] | None = None) -> Answer:
        sent = dict(headers or {})
        body = None
        if form is not None:
            body = urlencode(form).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        elif json_body is not None:
            body = json.dumps(json_body).encode()
            sent["Content-Type"] = "application/json"
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=sent)
            resp = conn.getresponse()
            answer = Answer(resp.status, resp.headers, resp.read(), resp.headers.get_all("Set-Cookie") or [])
        finally:
            conn.close()
        for raw in answer.set_cookies:
            for name, morsel in SimpleCookie(raw).items():
                if morsel["max-age"] == "0" or morsel.value == "":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return answer

    def get(self, path: str, **kw) -> Answer:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw) -> Answer:
        return self.request("POST", path, **kw)

    def login(self, username: str, password: str, next_: str = "/", headers: dict | None = None) -> Answer:
        """The sign-in form as a person fills it in: GET /login (its CSRF cookie and field), then POST."""
        page = self.get("/login")
        assert page.status == 200, page.text
        token = self.cookies["zw_login"]
        assert f"value='{token}'" in page.text
        return self.post("/login", form={"username": username, "password": password, "csrf_token": token,
                                         "next": next_}, headers=headers)


def without_expect(case):
    """A schemathesis case without a generated ``Expect`` header: aiohttp (rightly, RFC 9110 §10.1.1) answers
    any value but ``100-continue`` with 417 before a handler runs, an answer no route documents."""
    if case.headers:
        case.headers = {k: v for k, v in case.headers.items() if k.lower() != "expect"}
    return case
