"""Tests of the bundled example departments (datasets/)."""
