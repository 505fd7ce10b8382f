"""Buskulic, Fadili & Queau (2023): convergence of a two-layer DIP; ``scripts/reproduce_buskulic.py``."""
