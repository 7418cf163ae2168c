"""The seed classifier builder: data, training, evaluation and bundles."""
