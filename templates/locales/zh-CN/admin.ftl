## Messages of the admin pages (zh-CN).
