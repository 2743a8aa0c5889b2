"""Shared pytest configuration: fixtures live in tests/fixtures/, one module per concern."""

pytest_plugins = [
    "tests.fixtures.data",
    "tests.fixtures.model",
    "tests.fixtures.server",  # before moto, which imports its process helpers
    "tests.fixtures.moto",
]
