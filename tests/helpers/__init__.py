"""Helpers of the test suite: files in the real data formats, running hol, the sweep test app."""
