"""Music Zoo's Hugging Face plugin: pretrained audio encoders, their front ends and a cached embedding feature.

Components are registered through entry points (see :mod:`zoo_hf.specs`); nothing here imports
torch, torchaudio or transformers until a component is built.
"""

__version__ = "0.1.0"
