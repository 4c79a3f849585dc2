## Messages of the review pages (en).
