"""Code that runs inside the serving and training images, with their Docker build contexts."""
