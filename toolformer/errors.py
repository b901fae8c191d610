"""Errors that stand for a user's mistake: the CLI prints their message on one line."""


class UserError(Exception):
    """A bad file, option or argument; the message says what to do instead."""
