"""nova-consoleauth and nova-novncproxy/nova-serialproxy: console tokens
(:mod:`.tokens`), the websocket proxy and noVNC's pages (:mod:`.proxy`), and the
line protocol the proxy speaks to a compute host's console relay (:mod:`.relay`)."""
