"""Plots and tables for reports (`snakemake --report`)."""
