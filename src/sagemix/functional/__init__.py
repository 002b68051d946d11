"""Pure tensor kernels. Nothing here imports from the rest of sagemix."""
