"""Overlay core."""
