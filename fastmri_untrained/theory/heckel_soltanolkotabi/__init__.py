"""Heckel & Soltanolkotabi: denoising (ICLR 2020) and compressive sensing (ICML 2020) with
convolutional generators; ``scripts/reproduce_denoising.py`` and ``scripts/reproduce_cs.py``."""
