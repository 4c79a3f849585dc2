## Messages of the notify pages (zh-CN).
