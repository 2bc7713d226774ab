"""Promotion and rollback through the API go through the registry's own gates and record the
token's subject as the approver, in MLflow and in the approvals history."""

from __future__ import annotations

from prism.registry import promotion, versions
from prism.strategies import SmaCrossover
from tests.integration.runner_support import LENIENT, research_run


def test_an_approver_promotes_two_runs_and_rolls_back_as_themselves(
    client, auth, api_settings, stocked, bundled_bars, monkeypatch
):
    for name in ("min_sharpe", "max_drawdown", "min_trades", "min_deflated_sharpe"):
        monkeypatch.setenv(f"PRISM_GATE_{name.upper()}", str(getattr(LENIENT, name)))
    first = research_run(api_settings, SmaCrossover(fast=5, slow=20), bundled_bars)
    second = research_run(api_settings, SmaCrossover(fast=10, slow=40), bundled_bars)

    answers = [
        client.post(
            "/api/v1/registry/promotions",
            json={"run_id": run, "reason": "api test"},
            headers=auth("approver"),
        )
        for run in (first, second)
    ]
    assert [a.status_code for a in answers] == [200, 200], answers[0].text
    assert [a.json()["promoted"] for a in answers] == [True, True]
    assert all(g["passed"] for g in answers[1].json()["gates"])
    model = api_settings.model_name
    assert versions.champion(api_settings).run_id == second
    info = versions.version_info(api_settings, answers[1].json()["version"])
    assert info.approved_by == "approver-user"

    back = client.post(
        "/api/v1/registry/rollbacks", json={"reason": "api rollback"}, headers=auth("approver")
    )
    assert back.status_code == 200, back.text
    assert back.json()["to_version"] == answers[0].json()["version"]
    assert versions.champion(api_settings).run_id == first
    decisions = promotion.history(stocked, model)
    assert [d.decided_by for d in decisions] == ["approver-user"] * 3
    listed = client.get("/api/v1/registry/versions", headers=auth("viewer")).json()
    assert {v["run_id"] for v in listed} == {first, second}
    unknown = client.post(
        "/api/v1/registry/promotions", json={"run_id": "no-such-run"}, headers=auth("approver")
    )
    assert unknown.status_code in (400, 404)
    assert "no-such-run" in unknown.json()["detail"]
