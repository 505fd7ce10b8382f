"""Theory of un-trained convolutional generators: small exact models and the experiments of the papers.

Heckel & Soltanolkotabi (ICLR 2020 denoising, ICML 2020 compressive sensing):

* ``dual_kernel``  -- kernels, circulant matrices, trigonometric basis, dual kernel, Sigma(U)
* ``convgen``      -- the two-layer generator ReLU(UC)v, its Jacobian, plain GD with a fixed step
* ``dynamics``     -- linear GD dynamics, early-stopping time, the theorems' bounds, min-norm CS
* ``experiments_hs`` -- the exact experiments on those small models (JSON-ready dicts)
* ``deepnets_hs``  -- the papers' experiments on deep decoders / DIP / Appendix-B nets (via ``fit``)

Submodules are imported explicitly (``from fastmri_untrained.theory import dual_kernel``) so that
this package stays cheap to import and other theory modules can live beside them.
"""
