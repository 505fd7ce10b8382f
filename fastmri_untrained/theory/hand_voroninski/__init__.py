"""Hand & Voroninski (COLT 2018): the landscape of expansive ReLU generators;
``scripts/reproduce_hand_voroninski.py``."""
