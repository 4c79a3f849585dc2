## Messages of the reports pages (en).
