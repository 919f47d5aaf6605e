"""wsjds: WS-JDS (Shen et al., CVPR 2019) as a reproducible, file-backed Snakemake pipeline."""

__version__ = "0.1.0"
