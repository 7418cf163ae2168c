"""seedqa ui package."""
