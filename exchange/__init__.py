"""The city exchange platform: the versioned store that published data lands in."""
