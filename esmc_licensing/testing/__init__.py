"""Helpers for products' own test suites: stores, strategies, a pytest plugin."""
