"""The demo names the server that did not answer, so a newcomer knows which port is wrong."""

from __future__ import annotations

import socket

import pytest

from api import demo
from common.config import Settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_api_that_does_not_answer_is_named(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    api = f"http://127.0.0.1:{_free_port()}"
    stripe = f"http://127.0.0.1:{_free_port()}"
    assert demo.main(settings, api_url=api, stripe_url=stripe, admin_key="sbk_x") == 1
    err = capsys.readouterr().err
    assert f"the API at {api} did not answer" in err
    assert "STRIPE_EMULATOR_PORT" in err
