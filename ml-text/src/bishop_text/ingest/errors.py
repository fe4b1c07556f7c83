class MaterialError(ValueError):
    """The material cannot be used; the message is shown to the user as the reason."""

    def __init__(self, message: str, senders: list[tuple[str, int]] | None = None) -> None:
        super().__init__(message)
        # A chat export's senders with their message counts, so the user can pick the person.
        self.senders = senders or []
