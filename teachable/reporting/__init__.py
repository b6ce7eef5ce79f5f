"""Figures (matplotlib) and tables (pandas) built from result records."""
