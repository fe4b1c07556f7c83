class MaterialError(ValueError):
    """The material cannot be used; the message is shown to the user as the reason."""
