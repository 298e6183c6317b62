"""Committed autoencoder weights (``graph_vae.pt``); a package only so that the file ships as package data."""
