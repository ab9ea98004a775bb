"""How `logs -t` renders the times the json-file log keeps."""

from __future__ import annotations

import pytest

from dockyard.engine.logs import fixed_nano


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ("2024-05-06T07:08:09.123456789Z", "2024-05-06T07:08:09.123456789Z"),
        ("2024-05-06T07:08:09.12345678Z", "2024-05-06T07:08:09.123456780Z"),
        ("2024-05-06T07:08:09.1Z", "2024-05-06T07:08:09.100000000Z"),
        ("2024-05-06T07:08:09Z", "2024-05-06T07:08:09.000000000Z"),
    ],
)
def test_logs_t_shows_nine_fraction_digits(stored: str, shown: str) -> None:
    assert fixed_nano(stored) == shown
