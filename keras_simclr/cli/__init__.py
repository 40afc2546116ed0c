"""keras_simclr.cli"""
