"""The shipped model's world: procedurally rendered 3D scenes with exact depth, training and evaluation on them."""
