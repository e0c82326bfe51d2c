"""Sample quality of text: generative perplexity under a judge, unigram entropy, MAUVE.

Conventions follow the MDLM / BD3-LM / MDM-Prime code bases; each module's docstring
gives its source and what differs.
"""
