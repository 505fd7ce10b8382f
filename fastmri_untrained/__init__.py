"""Un-trained convolutional network reconstruction for fastMRI and linear inverse problems."""

__version__ = "0.1.0"
