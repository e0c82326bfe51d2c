"""Metrics of samples: FID (:mod:`.fid`) with its cache of reference features
(:mod:`.fid_reference`) and the Inception Score (:mod:`.inception_score`) for images;
for text, generative perplexity under a judge (:mod:`.gen_ppl`, :mod:`.judge`), unigram
entropy (:mod:`.entropy`) and MAUVE (:mod:`.mauve_metric`).

The text conventions follow the MDLM / BD3-LM / MDM-Prime code bases; each module's
docstring gives its source and what differs.
"""
