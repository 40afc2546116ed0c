"""keras_simclr.export"""
