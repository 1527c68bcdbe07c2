"""Music Zoo's musicnn plugin: the pretrained musicnn taggers (MSD, MagnaTagATune) ported to torch, their front end and a cached embedding.

Components are registered through entry points (see :mod:`zoo_musicnn.specs`); nothing here
imports torch or TensorFlow (the plugin never uses TensorFlow: the checkpoints are read by
:mod:`zoo_musicnn.tfbundle`).
"""

__version__ = "0.1.0"
