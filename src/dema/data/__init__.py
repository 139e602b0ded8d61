"""Offline datasets: collectors, loaders for the common formats, validation, and the sequence batch."""
