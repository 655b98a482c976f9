"""Hypothesis: valid policies survive dump -> load; any YAML at all fails only with PolicyError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keypolicy.catalog import CATALOG
from keypolicy.policy import PolicyError, load_policy_text
from keypolicy.policy.dump import dump_policy
from keypolicy.policy.model import Policy

CLINIC = (Path(__file__).parents[2] / "policies" / "clinic-separate.yaml").read_text()
NAMES = st.text("abcdefghij-", min_size=1, max_size=8).filter(lambda s: s[0] != "-")
MODELS = sorted(CATALOG)


def _limits() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "rpm": st.integers(1, 10_000),
            "rpd": st.integers(1, 10**6),
            "tpm": st.integers(1, 10**7),
            "tpd": st.integers(1, 10**9),
            "quantum": st.sampled_from([1, "1s", "500ms", 10]),
        },
    )


@st.composite
def policies(draw: st.DrawFn) -> dict[str, Any]:
    """A valid policy as YAML data, with every cross reference resolved."""
    projects = draw(st.lists(NAMES, min_size=1, max_size=3, unique=True))
    keys = draw(st.lists(NAMES, min_size=1, max_size=4, unique=True))
    pools = draw(st.lists(NAMES, min_size=1, max_size=3, unique=True))
    classes = draw(st.lists(NAMES, min_size=1, max_size=3, unique=True))
    domains = draw(st.lists(NAMES, min_size=1, max_size=4, unique=True))
    models = draw(st.lists(st.sampled_from(MODELS), min_size=1, max_size=3, unique=True))
    data: dict[str, Any] = {
        "version": 1,
        "name": draw(NAMES),
        "description": draw(st.text(max_size=20)),
        "timezone": draw(st.sampled_from(["UTC", "America/New_York", "Asia/Tokyo"])),
        "projects": {p: {"models": {m: draw(_limits()) for m in models}} for p in projects},
        "keys": {
            k: {
                "project": draw(st.sampled_from(projects)),
                "env": f"ENV_{i}",
                "weight": draw(st.floats(0.1, 10)),
            }
            for i, k in enumerate(keys)
        },
        "pools": {
            p: {
                "keys": draw(st.lists(st.sampled_from(keys), min_size=1, unique=True)),
                "strategy": draw(st.sampled_from(["round_robin", "least_loaded", "weighted"])),
            }
            for p in pools
        },
        "priorities": [
            {
                "name": c,
                "reserve": draw(st.sampled_from(["0%", "10%", 0.05])),
                "max_wait": draw(st.sampled_from(["5s", 30, "2m"])),
                "deferrable": True,
            }
            for c in classes
        ],
        "domains": {
            d: {
                "pool": draw(st.sampled_from(pools)),
                "priority": draw(st.sampled_from(classes)),
                "model": draw(st.sampled_from(models)),
                "defer": draw(
                    st.sampled_from(
                        ["never", "batch", {"mode": "queue", "windows": ["19:00-07:00"]}]
                    )
                ),
            }
            for d in domains
        },
        "budgets": {
            "b": {
                "applies_to": draw(st.sampled_from(["all", {"domain": domains[0]}])),
                "usd": draw(st.sampled_from(["$20", 5, "1,000"])),
                "per": draw(st.sampled_from(["day", "month", "24h"])),
            }
        },
    }
    return data


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(policies())
def test_generated_policies_survive_dump_and_load(data: dict[str, Any]) -> None:
    loaded = load_policy_text(yaml.safe_dump(data), "generated.yaml")
    assert loaded.policy == Policy.model_validate(data)
    again = load_policy_text(dump_policy(loaded.policy), "dumped.yaml")
    assert again.policy == loaded.policy


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def _load_only_policy_errors(text: str) -> None:
    try:
        load_policy_text(text, "fuzz.yaml")
    except PolicyError as exc:
        for issue in exc.issues:
            assert str(issue)  # every issue renders


@settings(max_examples=150)
@given(yaml_values)
def test_random_yaml_raises_only_policy_errors(value: Any) -> None:
    _load_only_policy_errors(yaml.safe_dump(value))


@settings(max_examples=200)
@given(st.data())
def test_mutated_clinic_policy_raises_only_policy_errors(data: st.DataObject) -> None:
    text = CLINIC
    for _ in range(data.draw(st.integers(1, 4))):
        start = data.draw(st.integers(0, len(text) - 1))
        end = data.draw(st.integers(start, min(len(text), start + 12)))
        insert = data.draw(
            st.sampled_from(
                [
                    "",
                    ":",
                    " ",
                    "\n",
                    "- ",
                    "{",
                    "]",
                    "x",
                    "null",
                    "&a",
                    "*a",
                    "<<: *a",
                    "'",
                    "\t",
                    "1e999",
                    "%",
                ]
            )
        )
        text = text[:start] + insert + text[end:]
    _load_only_policy_errors(text)


@settings(max_examples=100)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_policy_errors(blob: bytes) -> None:
    _load_only_policy_errors(blob.decode("utf-8", errors="replace"))
