"""The model registry on disk: versioned model files beside their ledger rows, and pruning of old ones."""
