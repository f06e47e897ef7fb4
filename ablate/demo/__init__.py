"""The embedded demo: a synthetic corpus with one planted skill per subset (`corpus`) and the whole
study over it in one call (`study`)."""
