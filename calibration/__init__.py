"""seedqa calibration package."""
