"""The ViT and everything that loads one: vitviz checkpoints, converted pretrained checkpoints, the zoo, downloads."""
