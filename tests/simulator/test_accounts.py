"""Accounts on the simulator's command line: the role is part of the account (any prefix may be an
Admin, as in the seed's `scott@5556661234`), the old USER:PASS form keeps working, and a bad
account is refused at start naming the username and never the password."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

from simulator.cli import _account
from simulator.config import Account
from tests.support.simulator import ROOT, SimulatorHandle, run_simulator

LINE = "5556661234"
ACCOUNTS = {
    LINE: "system",
    f"scott@{LINE}": "admin",  # --account scott@5556661234:pw:admin
    f"amy@{LINE}": "operator",  # a prefixed name without a role: an Operator
    f"admin@{LINE}": "admin",  # the old form: the prefix admin stays an Admin
    f"boss@{LINE}": "operator",  # explicitly an Operator
}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorHandle]:
    args = [
        *("--account", f"{LINE}:pw"),
        *("--account", f"scott@{LINE}:pw:admin"),
        *("--account", f"amy@{LINE}:pw"),
        *("--account", f"admin@{LINE}:pw"),
        *("--account", f"boss@{LINE}:pw:Operator"),
    ]
    with run_simulator(*args) as handle:
        yield handle


def rights(sim: SimulatorHandle, username: str) -> str:
    """The rights a login has: `admin` if it may manage webhooks, `operator` if it may only send
    and read."""
    key = sim.login(username, "pw")
    listed = requests.post(sim.base_url + "webhook/list", data={"session": key}, timeout=10).json()
    read = requests.post(sim.base_url + "message/list", data={"session": key}, timeout=10).json()
    assert read["success"] is True
    return "admin" if listed["success"] else "operator"


@pytest.mark.parametrize(("username", "role"), ACCOUNTS.items())
def test_each_account_has_the_rights_of_its_role(sim: SimulatorHandle, username: str, role: str) -> None:
    assert rights(sim, username) == ("admin" if role == "system" else role)


def test_an_account_not_given_cannot_log_in(sim: SimulatorHandle) -> None:
    answer = requests.post(
        sim.base_url + "user/login", data={"username": f"operator@{LINE}", "password": "demo"}, timeout=10
    ).json()
    assert answer["success"] is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5556661234:pw", Account("5556661234", "pw", "")),
        ("scott@5556661234:pw:admin", Account("scott@5556661234", "pw", "admin")),
        ("amy@5556661234:pa:ss:operator", Account("amy@5556661234", "pa:ss", "operator")),
        ("5556661234:pw:system", Account("5556661234", "pw", "system")),
    ],
)
def test_account_texts_parse(text: str, expected: Account) -> None:
    assert _account(text) == expected


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("scott@5556661234:secret-pw:boss", "boss"),  # not a role
        ("5556661234:secret-pw:admin", "System"),  # the bare number is the System login
        ("scott@5556661234:secret-pw:system", "System"),
        ("scott@nowhere:secret-pw", "phone number"),
        ("secret-pw", "USERNAME:PASSWORD"),
    ],
)
def test_a_bad_account_is_refused_naming_the_problem_not_the_password(text: str, named: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as refused:
        _account(text)
    assert named in str(refused.value) and "secret-pw" not in str(refused.value)


def test_the_simulator_refuses_to_start_with_a_bad_account() -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "simulator", "--account", "scott@5556661234:secret-pw:boss"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 2
    assert "boss" in finished.stderr and "secret-pw" not in finished.stderr + finished.stdout


def test_an_accounts_password_stays_out_of_its_repr() -> None:
    assert "secret-pw" not in repr(Account("5556661234", "secret-pw"))


def test_a_line_range_gives_each_line_its_own_login() -> None:
    with run_simulator("--line-range", "5558000000:3", "--quiet") as sim:
        for number in ("5558000000", "5558000002"):
            assert sim.login(number, "demo")
        answer = requests.post(
            sim.base_url + "user/login", data={"username": "5558000003", "password": "demo"}, timeout=10
        ).json()
        assert answer["success"] is False  # one past the range
