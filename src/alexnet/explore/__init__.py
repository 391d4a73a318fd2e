"""`alexnet explore`: the network opened up in a browser, for learners.

explorer.py holds what one network shows (web-free, tested directly), network.py the pictures
and numbers it is made of, folder.py the images a learner picks from, app.py the Starlette app
and its page (page.html, page.js, page.css: package data). Needs `pip install 'alexnet[explore]'`.
"""

from .explorer import Explorer

__all__ = ["Explorer"]
