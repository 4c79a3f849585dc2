## Messages of the admin pages (en).
