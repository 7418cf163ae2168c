"""The class-conditional GAN builder: generated seeds to rebalance rare classes."""
