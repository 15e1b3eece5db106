"""Finding model files on this machine, and `kb models`.

`kb.models.locate` is the bottom layer (files inside installed packages, the Hugging Face cache; stdlib only),
`kb.models.loading` quiets the libraries while a model loads, `kb.models.hub` is `kb models pull` (the only
network access), and `kb.models.overview` is what `kb models` lists. The embedders live in `kb.embedders`,
the LLM in `kb.llm`. Nothing is imported here, so importing a submodule stays cheap and cycle-free.
"""
