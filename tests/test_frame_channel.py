"""The frame route's channels: a token names one live page, the most recent ``capacity`` are kept, and a page
whose state is gone has no channel."""

from __future__ import annotations

import gc

from teachable.webapp.context import PageState
from teachable.webapp.frame_channel import FrameChannels


class Owner:
    """Stands in for a session: the channels only hold it weakly."""


def test_a_token_names_its_page_and_stays_the_same():
    channels = FrameChannels(capacity=3)
    session, page = Owner(), PageState()
    token = channels.open(session, page)
    assert len(token) >= 20 and page.channel == token
    assert channels.open(session, page) == token
    assert channels.get(token) == (session, page)
    assert channels.get("not-" + token) is None


def test_the_least_recently_used_channel_goes_past_capacity():
    channels = FrameChannels(capacity=2)
    pages = [(Owner(), PageState()) for _ in range(3)]
    first, second = (channels.open(*pair) for pair in pages[:2])
    assert channels.get(first) is not None  # used: now the most recent
    third = channels.open(*pages[2])
    assert channels.get(second) is None and channels.get(first) is not None and channels.get(third) is not None
    assert len(channels) == 2
    # The page that lost its channel gets the same token back on its next frame through the page's event.
    assert channels.open(*pages[1]) == second and channels.get(second) == pages[1]


def test_a_page_whose_state_is_gone_has_no_channel():
    channels = FrameChannels(capacity=5)
    session, page = Owner(), PageState()
    token = channels.open(session, page)
    del session
    gc.collect()
    assert channels.get(token) is None
