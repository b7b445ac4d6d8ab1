import pytest

from autoscaler.api.quantity import parse_quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [(2, 2.0), ("500m", 0.5), ("16Gi", 16 * 2**30), ("1.5", 1.5), ("1k", 1000.0), ("1e3", 1000.0)],
    ids=["int", "milli", "binary giga", "decimal", "kilo", "exponent"],
)
def test_quantities_parse_like_kubernetes(text: object, value: float) -> None:
    assert parse_quantity(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["abc", "1Q", True, None, float("nan"), "inf"], ids=str)
def test_non_quantities_are_rejected(text: object) -> None:
    with pytest.raises(ValueError):
        parse_quantity(text)
