"""The hot dataclasses spell out their ``__init__`` (``init=False``): mypyc builds such an object
natively, about 15x faster than through the ``__init__`` that ``dataclasses`` generates. These
tests hold every hand-written ``__init__`` to its class's fields, so the two cannot drift."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
from typing import Any

import pytest

import keypolicy
from keypolicy._native import is_compiled
from keypolicy.core import Complete, Settled, Submit
from keypolicy.records import UsageRecord


def _spelled_out() -> list[type[Any]]:
    found: list[type[Any]] = []
    for info in pkgutil.walk_packages(keypolicy.__path__, "keypolicy."):
        if info.name.endswith("__main__"):
            continue  # runs the command line
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and value.__module__ == module.__name__
                and dataclasses.is_dataclass(value)
                and not value.__dataclass_params__.init  # type: ignore[attr-defined]
            ):
                found.append(value)
    return found


CLASSES = _spelled_out()


def test_the_hot_classes_are_found() -> None:
    names = {c.__name__ for c in CLASSES}
    assert {"Submit", "Settled", "Send", "Complete", "Pending", "Outcome", "UsageRecord"} <= names


# Sentinels of any type: only plain Python accepts them (compiled classes check types), and the
# sources are the same either way (make test runs the suite on both).
needs_source = pytest.mark.skipif(is_compiled(), reason="checked on the plain-Python run")


@needs_source
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_init_takes_every_field_in_order_and_sets_it(cls: type[Any]) -> None:
    fields = dataclasses.fields(cls)
    params = list(inspect.signature(cls.__init__).parameters)[1:]
    settable = [f.name for f in fields if f.name in params]
    assert params == settable, "the __init__ takes the fields, in the class's order"
    for f in fields:
        if f.name not in params:  # state the class owns: fresh, never passed in
            assert f.default_factory is not dataclasses.MISSING or not f.init, f.name
    values = {name: object() for name in params}
    made = cls(*values.values())
    for name, value in values.items():
        assert getattr(made, name) is value, name


@needs_source
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_defaults_are_the_fields_defaults_and_fresh(cls: type[Any]) -> None:
    required = {
        f.name: object()
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    one, two = cls(**required), cls(**required)
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            assert getattr(one, f.name) == f.default, f.name
        elif f.default_factory is not dataclasses.MISSING:
            assert getattr(one, f.name) == f.default_factory(), f.name
            if isinstance(getattr(one, f.name), list | dict | set):
                assert getattr(one, f.name) is not getattr(two, f.name), f"{f.name} is shared"


def test_frozen_stays_frozen_on_either_build() -> None:
    made = [
        Submit("r1", "chat", 1.0, 10),
        Settled("r1", 2.0, 10, 5),
        Complete("r1", "k", "p", "gpt-4o", 1, 0.5, False),
        UsageRecord(
            *["r1", "chat", "m", "k", "p", "c", 1.0, 1.5, 2.0, 0.5, 1, "ok", ""],
            10,
            0,
            5,
            0.5,
            False,
            False,
            "",
            10,
            0,
        ),
    ]
    for value in made:
        with pytest.raises(dataclasses.FrozenInstanceError):
            value.request_id = "r2"
        assert value == dataclasses.replace(value)
        if not isinstance(value, Settled):  # its headers are a dict
            assert hash(value) == hash(dataclasses.replace(value))
    assert made[1].headers == {}
    assert repr(made[0]).startswith("Submit(request_id='r1'")
