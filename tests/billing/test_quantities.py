"""How quantities are shown: one rule per metric; parts of a total add up to it as shown."""

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.catalogue import METRICS
from billing.quantities import format_metric_quantity, format_parts, format_usage
from usage.models import Metric

CATALOGUE = {spec["code"]: Metric(**spec) for spec in METRICS}
STORAGE, MESSAGES, TENANTS, USERS = (CATALOGUE[c] for c in ("storage_gb", "messages", "tenants", "active_users"))


@pytest.mark.parametrize(
    ("value", "metric", "shown"),
    [
        (D("36.72811234"), STORAGE, "36.73"),
        (D("40.00000000"), STORAGE, "40.00"),
        (D("6.10000000"), STORAGE, "6.10"),
        (D("0.00400000"), STORAGE, "0.00"),
        (D("1234.565"), STORAGE, "1,234.57"),
        (D("31000.00000000"), MESSAGES, "31,000"),
        (D("2.50000000"), MESSAGES, "2.5"),
        (D("11666.66666667"), MESSAGES, "11,666.67"),
        (D("12.00000000"), TENANTS, "12"),
        (D("1045.00000000"), USERS, "1,045"),
        (D("15.71"), None, "15.71"),
        (D("20.000"), None, "20"),
        (None, STORAGE, ""),
    ],
)
def test_each_metric_has_one_display_rule(value, metric, shown):
    assert format_metric_quantity(value, metric) == shown


def test_tenant_shares_add_up_to_the_total_as_shown():
    # 0.654 + 0.653 + 1.563 = 2.869: rounded on their own 0.65 + 0.65 + 1.56 = 2.86, not the 2.87 shown.
    shares = {"a": D("0.65416667"), "b": D("0.65277778"), "c": D("1.56250000")}
    assert format_parts(shares, STORAGE) == {"a": "0.66", "b": "0.65", "c": "1.56"}
    assert format_metric_quantity(sum(shares.values()), STORAGE) == "2.87"


def test_unique_values_seen_in_several_tenants_are_not_made_to_add_up():
    # One user active in two tenants counts in each, and once for the account.
    assert format_parts({"a": D(3), "b": D(2)}, USERS) == {"a": "3", "b": "2"}


def test_billable_reads_as_the_quantity_less_the_included_one():
    # 20.12345 GB-months, 4.66666667 included (prorated): 15.45678333 billable, shown as 20.12 − 4.67.
    assert format_usage(
        quantity=D("20.12345000"), included=D("4.66666667"), billable=D("15.45678333"), metric=STORAGE
    ) == {"quantity": "20.12", "included": "4.67", "billable": "15.45"}
    assert format_usage(quantity=D(1), included=None, billable=None, metric=None) == {
        "quantity": "1",
        "included": "",
        "billable": "",
    }


@given(st.lists(st.decimals(min_value=0, max_value=10_000, places=8), min_size=1, max_size=30))
def test_shown_shares_of_storage_always_add_up_to_the_shown_total(values):
    shown = format_parts(dict(enumerate(values)), STORAGE)
    assert all(len(text.rsplit(".", 1)[1]) == 2 for text in shown.values())
    total = sum((D(text.replace(",", "")) for text in shown.values()), D(0))
    assert f"{total:,.2f}" == format_metric_quantity(sum(values, D(0)), STORAGE)
    # No share moves by a hundredth or more from its own value.
    assert all(abs(D(shown[k].replace(",", "")) - v) < D("0.01") for k, v in enumerate(values))


@given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=30))
def test_whole_counts_are_shown_as_they_are(values):
    shown = format_parts({n: D(v) for n, v in enumerate(values)}, MESSAGES)
    assert shown == {n: f"{v:,}" for n, v in enumerate(values)}
