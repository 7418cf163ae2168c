"""seedqa drivers package."""
