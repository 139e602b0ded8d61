"""Analyses of trained models (the paper's figures), each a function returning data plus a plot."""
