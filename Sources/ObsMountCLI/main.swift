print("obsmount: not yet implemented")
