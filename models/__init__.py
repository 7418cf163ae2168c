"""seedqa models package."""
