"""Where desired state leaves the API: the backend seam (issue 7) and its backends."""
