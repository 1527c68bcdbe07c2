"""The model: specs become components (building), components become one ``ZooModel``, shared layers."""
