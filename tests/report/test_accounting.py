"""The report on how the provider counts: the rules in the basis table, the range beside the
answer."""

from __future__ import annotations

from typing import Any

from keypolicy.policy.model import Policy, ProviderAccounting
from keypolicy.report import render_html
from keypolicy.report.render import build_context
from keypolicy.sim.ranges import outcome_range
from keypolicy.upstream import Accounting
from tests.report.builders import row, summary


def _with_range(policy: Policy, rejected: tuple[int, int]) -> dict[str, Any]:
    """A one-domain summary under two refund rules, rejecting ``rejected`` in each."""
    results = [
        (Accounting(refund_unused=refund), summary("p", {"xray": row(500, rejected=n)}))
        for refund, n in zip((True, False), rejected, strict=True)
    ]
    main = results[0][1]
    main["about"]["provider"] = {
        "assumed": Accounting(refund_unused=True).as_dict(),
        "simulated": Accounting(refund_unused=True).as_dict(),
    }
    main["range"] = outcome_range(policy, results)
    return main


def _policy(policy: Policy) -> Policy:
    refunds = ProviderAccounting(refund_unused=True)
    return policy.model_copy(update={"name": "p", "provider": refunds})


def test_a_range_shows_in_the_answer_and_the_basis(clinic: dict[str, Policy]) -> None:
    policy = _policy(clinic["clinic-separate"])
    result = _with_range(policy, (0, 340))
    assert result["range"]["sentences"][1] == (
        "0 to 340 rejections in all depending on whether OpenAI gives unused max_tokens back "
        "(refund_unused=true: 0; refund_unused=false: 340)"
    )
    ctx = build_context({"p": result})
    assert ctx["ranges"][0] == (
        "How OpenAI counts matters for p: 0 to 340 rejections in all depending on whether "
        "OpenAI gives unused max_tokens back (refund_unused=true: 0; refund_unused=false: 340)."
    )
    rows = dict(ctx["variants"][0]["basis"]["rows"])
    assert rows["Provider accounting assumed"] == (
        "unused max_tokens given back; refused requests count"
    )
    assert rows["Provider simulated"] == (
        "refund_unused=true / refund_unused=false (outcome as a range)"
    )
    html = render_html({"p": result})
    assert "Provider accounting assumed" in html
    assert "0 to 340 rejections in all" in html


def test_no_difference_is_said_too(clinic: dict[str, Policy]) -> None:
    result = _with_range(_policy(clinic["clinic-separate"]), (12, 12))
    ctx = build_context({"p": result})
    assert ctx["ranges"][0] == (
        "For p, rejections and 429s are the same whichever way OpenAI counts (refund_unused)."
    )


def test_without_a_range_the_basis_says_what_was_assumed() -> None:
    plain = summary("p", {"xray": row(500)})
    assert "Provider accounting assumed" not in dict(
        build_context({"p": plain})["variants"][0]["basis"]["rows"]
    )
    plain["about"]["provider"] = {
        "assumed": Accounting().as_dict(),
        "simulated": Accounting(quantum_tokens=1.0).as_dict(),
    }
    rows = dict(build_context({"p": plain})["variants"][0]["basis"]["rows"])
    assert rows["Provider accounting assumed"] == "unused max_tokens kept; refused requests count"
    assert rows["Provider simulated"] == (
        "unused max_tokens kept; refused requests count; tokens in 1s slices"
    )
