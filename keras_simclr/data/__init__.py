"""keras_simclr.data"""
