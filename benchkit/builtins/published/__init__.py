"""Published inpainting models loaded from local files, through one convention adapter."""
