"""Property-based tests of the HTTP API against its own OpenAPI document (schemathesis): whatever a
client sends, the answer is one the document describes (its status, content type and schema), and
never a server error. A modest number of examples per operation keeps the file under a minute."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import LINE, make_api
from tests.support.simulator import free_port
from tests.support.stack import wait_for

ROOT = Path(__file__).resolve().parents[2]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


# The checked-in document (a test keeps it equal to the served one): what a client would start from.
schema = schemathesis.openapi.from_path(ROOT / "docs" / "api" / "openapi.json")


@dataclass
class Served:
    """The web app on a real port, and a client's key."""

    base_url: str
    headers: dict[str, str]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, broker_url: str) -> Iterator[Served]:
    database = f"sqlite:///{tmp_path_factory.mktemp('schema') / 'outbox.db'}"
    for api in make_api(database, broker_url):
        for n in range(3):  # a few messages to read back
            message = {"line": LINE, "to": f"206555120{n}", "body": f"hello {n}", "metadata": {"n": n}}
            assert api.client.post("/v1/messages", json=message, headers=api.auth()).status_code == 201
        server = uvicorn.Server(uvicorn.Config(api.client.app, port=free_port(), log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        wait_for(lambda s=server: s.started, 30, 0.05, "the web app to listen")
        try:
            yield Served(f"http://127.0.0.1:{server.config.port}", api.auth())
        finally:
            server.should_exit = True
            thread.join(30)


# One test a documented operation, named by it. (schemathesis' own `schema.parametrize()` gives its
# items one shared node id, and pytest-xdist, which `make test` uses, then ran one of the four.)
OPERATIONS = [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("operation", OPERATIONS, ids=[operation.label for operation in OPERATIONS])
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(data=st.data())
def test_every_answer_is_one_the_document_describes(
    operation: Any, data: st.DataObject, served: Served
) -> None:
    case = data.draw(operation.as_strategy())
    case.call_and_validate(base_url=served.base_url, headers=served.headers, checks=CHECKS, timeout=30)
