## Messages of the notify pages (en).
