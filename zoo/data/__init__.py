"""Data: data-set layouts, audio decoding, feature extraction with an on-disk cache, packing."""
