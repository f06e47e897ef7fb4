"""Data stage: tokenize each subset's raw text into MDS shards (`build`) with a manifest beside them
(`manifest`, which `plan` reads for subset sizes)."""
