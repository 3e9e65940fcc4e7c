"""What every bad-input test asserts of a CLI result (tests only)."""

from __future__ import annotations


def assert_one_error_line(result, needle: str) -> None:
    """Exit status 2 and a single non-empty output line that contains ``needle``."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], result.output
