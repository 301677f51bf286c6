"""The simulator's README lists every method it serves (with who may call it) and the ones it does
not; the lists match the code, and each method not served is a 404 in the envelope."""

from __future__ import annotations

import re
from pathlib import Path

import requests

from simulator.api import ADMIN_ONLY, HANDLERS
from tests.support.simulator import run_simulator

README = (Path(__file__).resolve().parents[2] / "simulator" / "README.md").read_text()
SECTION = README.split("## Methods", 1)[1].split("\n## ", 1)[0]


def served_rows() -> dict[str, str]:
    """Each method of the table and who may call it."""
    rows = {}
    for first, who in re.findall(r"^\| ([^|]+) \| ([^|]+) \|", SECTION, flags=re.M):
        for method in re.findall(r"`([a-z/]+)`", first):
            rows[method] = who.strip()
    return rows


def not_served() -> list[str]:
    paragraph = SECTION.split("Not served:", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"`([a-z0-9]+(?:/[a-zA-Z]+)+)`", paragraph)


def test_the_table_lists_every_method_served_with_its_rights() -> None:
    rows = served_rows()
    assert set(rows) == {"user/login", *HANDLERS}
    assert {m for m, who in rows.items() if who == "Admin, System"} == ADMIN_ONLY


def test_every_method_listed_as_not_served_is_a_404_in_the_envelope() -> None:
    methods = not_served()
    assert len(methods) > 20 and not set(methods) & set(served_rows())
    with run_simulator() as sim:
        key = sim.login()
        for method in methods:
            response = requests.post(sim.base_url + method, data={"session": key}, timeout=10)
            assert response.status_code == 404, method
            assert response.json() == {"success": False, "response": f"Unknown method {method}"}
