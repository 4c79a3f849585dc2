## Messages of the review pages (zh-CN).
