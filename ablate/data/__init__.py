"""Data stage: tokenize each subset's raw text into MDS shards (`build`) with a manifest beside them
(`manifest`, which `plan` reads for subset sizes); read and check a folder without one, such as
llm-foundry's converter writes (`shards`: its column, sample length and tokens)."""
