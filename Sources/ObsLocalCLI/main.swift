print("obs-local: not yet implemented")
