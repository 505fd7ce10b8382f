"""Theory of un-trained generators: small exact models and the experiments of four papers.

One subpackage per paper, each with ``network.py`` (the paper's network and its training loop)
and ``experiments.py`` (the drivers its ``scripts/reproduce_*.py`` calls); other modules are named
for what they hold:

* ``heckel_soltanolkotabi`` -- Heckel & Soltanolkotabi, ICLR 2020 (denoising) and ICML 2020 (CS):
  ``dual_kernel``, ``network`` (the two-layer generator ReLU(UC)v and plain GD), ``dynamics``
  (linear GD, stopping time, the theorems' bounds), ``experiments`` (exact small-model
  experiments), ``deep_experiments`` (deep decoder / DIP / Appendix-B nets, via ``fit``)
* ``hand_voroninski`` -- Hand & Voroninski, COLT 2018: ``closed_forms`` (g, rho_d, h_{x,x0}),
  ``network``, ``experiments``
* ``buskulic`` -- Buskulic, Fadili & Queau, 2023: ``network``, ``experiments``

``sections`` is the command line the four scripts share. Submodules are imported explicitly
(``from fastmri_untrained.theory.buskulic import network``) so that this package stays cheap to
import.
"""
