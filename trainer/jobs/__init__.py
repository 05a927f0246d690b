"""Independent jobs on a backend (local processes or Ray), their live progress table and the files they send back."""
