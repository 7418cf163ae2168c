"""seedqa appliance package."""
