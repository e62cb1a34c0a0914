"""unet-repro: the experiments of Ronneberger, Fischer & Brox, U-Net (MICCAI 2015).

Small, importable building blocks (numpy/torch in, numpy/torch out) used by the
Snakemake workflow in ``workflow/`` and usable on their own.
"""

__version__ = "0.1.0"
