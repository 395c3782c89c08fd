"""The error a person's request meets when it cannot be done, shared by the session and the parts it owns."""

__all__ = ["SessionError"]


class SessionError(ValueError):
    """Something the person asked for that cannot be done, with a message that says why (shown on the page as it
    is). Raised by :class:`teachable.session.Session` and the collaborators it owns (live views, insights)."""
