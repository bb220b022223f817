"""govdata test suite."""
