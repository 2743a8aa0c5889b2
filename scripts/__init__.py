"""Project scripts (run as files; importable as ``scripts.*`` by the tests)."""
