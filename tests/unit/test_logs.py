"""Log lines: key=value, tagged with the message id, with anything shaped like a session key masked."""

from __future__ import annotations

import io
import logging

from worker.infra.logs import _ContextFilter, _KeyValueFormatter, message_context

KEY = "0b6f2e8a-3c1d-4e5f-9a7b-123456789abc:309626613"


def _logger() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_KeyValueFormatter())
    handler.addFilter(_ContextFilter())
    logger = logging.getLogger("test.outbox.logs")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_lines_inside_a_message_context_carry_its_id() -> None:
    logger, stream = _logger()
    with message_context(42):
        logger.info("sending part %s", 1)
    logger.info("outside")
    first, second = stream.getvalue().splitlines()
    assert "message_id=42" in first and 'msg="sending part 1"' in first
    assert "message_id" not in second


def test_a_session_key_that_reaches_a_log_call_is_masked() -> None:
    logger, stream = _logger()
    logger.warning("login answered %s", KEY)
    assert KEY not in stream.getvalue() and "[session]" in stream.getvalue()


def test_a_session_key_in_a_traceback_is_masked_too() -> None:
    logger, stream = _logger()
    try:
        raise RuntimeError(f"the driver said: bad value {KEY!r}")
    except RuntimeError:
        logger.exception("claim failed")
    assert KEY not in stream.getvalue() and "[session]" in stream.getvalue()
