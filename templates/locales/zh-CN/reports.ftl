## Messages of the reports pages (zh-CN).
