"""Unit-test settings: Hypothesis without per-example deadlines (timing on a busy CI box is not a bug)."""
from hypothesis import settings

settings.register_profile("unit", deadline=None, print_blob=True)
settings.load_profile("unit")
